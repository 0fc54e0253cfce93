"""The declared proxy's router: which route a request takes, table by table. Pure: no sockets, no loop."""

from __future__ import annotations

import pytest

from actorproxy.config import RouteConf
from actorproxy.declared import RouteRule, RouteTable, normalize_host, request_host
from actorproxy.declared import _router as router
from actorproxy.http import RequestHeader


def request(target: str = "/", host: str | None = "example.com", **headers: str) -> RequestHeader:
    fields = [] if host is None else [("Host", host)]
    fields += [(name.replace("_", "-"), value) for name, value in headers.items()]
    return RequestHeader("GET", target, fields)


@pytest.mark.parametrize(
    ("authority", "host"),
    [
        ("example.com", "example.com"),
        ("Example.COM", "example.com"),
        ("example.com:8080", "example.com"),
        ("example.com.", "example.com"),
        ("example.com.:80", "example.com"),
        ("user@example.com:80", "example.com"),
        ("[::1]:8080", "[::1]"),
        ("[::1]", "[::1]"),
        ("127.0.0.1:6188", "127.0.0.1"),
        ("", None),
        (None, None),
        (":80", None),
    ],
)
def test_a_host_is_normalized(authority: str | None, host: str | None) -> None:
    assert normalize_host(authority) == host


@pytest.mark.parametrize(
    ("target", "host_header", "host"),
    [
        ("/a", "Api.Example.com:443", "api.example.com"),
        ("http://other.example/a?b", "api.example.com", "other.example"),  # absolute form wins (RFC 9112)
        ("http://other.example:8080", None, "other.example"),
        ("http://other.example?x", None, "other.example"),
        ("/a", None, None),
        ("*", "example.com", "example.com"),
    ],
)
def test_the_request_host_comes_from_an_absolute_target_before_the_host_header(
    target: str, host_header: str | None, host: str | None
) -> None:
    assert request_host(request(target, host_header)) == host


# Each row: a route's conditions, then (target, Host, headers) -> whether it matches.
MATCHES = [
    # path prefixes are segment-aware
    ({"path_prefix": "/api"}, "/api", "h", {}, True),
    ({"path_prefix": "/api"}, "/api/", "h", {}, True),
    ({"path_prefix": "/api"}, "/api/v1/users", "h", {}, True),
    ({"path_prefix": "/api"}, "/api?x=1", "h", {}, True),
    ({"path_prefix": "/api"}, "/apiary", "h", {}, False),
    ({"path_prefix": "/api"}, "/ap", "h", {}, False),
    ({"path_prefix": "/api"}, "/API", "h", {}, False),
    ({"path_prefix": "/api"}, "/v1/api", "h", {}, False),
    # ... and a prefix ending with "/" matches what starts with it
    ({"path_prefix": "/static/"}, "/static/a.css", "h", {}, True),
    ({"path_prefix": "/static/"}, "/static/", "h", {}, True),
    ({"path_prefix": "/static/"}, "/static", "h", {}, False),
    ({"path_prefix": "/"}, "/", "h", {}, True),
    ({"path_prefix": "/"}, "/anything/at/all", "h", {}, True),
    ({"path_prefix": "/"}, "*", "h", {}, False),
    # the raw path: no decoding, no normalization
    ({"path_prefix": "/api"}, "/%61pi", "h", {}, False),
    ({"path_prefix": "/api"}, "/api/../admin", "h", {}, True),
    ({"path_prefix": "/a"}, "http://example.com/a/b", "h", {}, True),
    # exact hosts: any case, port and trailing dot ignored
    ({"host": "api.example.com"}, "/", "api.example.com", {}, True),
    ({"host": "api.example.com"}, "/", "API.Example.Com:8443", {}, True),
    ({"host": "api.example.com"}, "/", "api.example.com.", {}, True),
    ({"host": "API.example.com"}, "/", "api.example.com", {}, True),
    ({"host": "api.example.com"}, "/", "www.api.example.com", {}, False),
    ({"host": "api.example.com"}, "/", "example.com", {}, False),
    ({"host": "api.example.com"}, "/", None, {}, False),
    # wildcards: subdomains at any depth, never the bare name
    ({"host": "*.example.com"}, "/", "a.example.com", {}, True),
    ({"host": "*.example.com"}, "/", "a.b.example.com:80", {}, True),
    ({"host": "*.example.com"}, "/", "example.com", {}, False),
    ({"host": "*.example.com"}, "/", "badexample.com", {}, False),
    ({"host": "*.example.com"}, "/", ".example.com", {}, False),
    ({"host": "*.example.com"}, "/", None, {}, False),
    # headers: name in any case, the value exactly
    ({"header": {"x-canary": "1"}}, "/", "h", {"X-Canary": "1"}, True),
    ({"header": {"X-Canary": "1"}}, "/", "h", {"x-canary": "1"}, True),
    ({"header": {"x-canary": "1"}}, "/", "h", {"x-canary": "10"}, False),
    ({"header": {"x-env": "Beta"}}, "/", "h", {"x-env": "beta"}, False),
    ({"header": {"x-canary": "1"}}, "/", "h", {}, False),
    ({"header": {"a": "1", "b": "2"}}, "/", "h", {"a": "1", "b": "2"}, True),
    ({"header": {"a": "1", "b": "2"}}, "/", "h", {"a": "1"}, False),
    # every condition must hold
    ({"host": "a.example", "path_prefix": "/x", "header": {"k": "v"}}, "/x/1", "a.example", {"k": "v"}, True),
    ({"host": "a.example", "path_prefix": "/x", "header": {"k": "v"}}, "/y", "a.example", {"k": "v"}, False),
    ({"host": "a.example", "path_prefix": "/x", "header": {"k": "v"}}, "/x", "b.example", {"k": "v"}, False),
    ({"host": "a.example", "path_prefix": "/x", "header": {"k": "v"}}, "/x", "a.example", {}, False),
    # no condition: everything
    ({}, "/", None, {}, True),
    ({}, "*", "h", {}, True),
]


@pytest.mark.parametrize(("conditions", "target", "host", "headers", "expected"), MATCHES)
def test_a_route_matches_when_every_condition_holds(
    conditions: dict[str, object], target: str, host: str | None, headers: dict[str, str], expected: bool
) -> None:
    table = RouteTable([(RouteRule.build(**conditions), "hit")])  # type: ignore[arg-type]
    req = RequestHeader("GET", target, ([("Host", host)] if host else []) + list(headers.items()))
    assert (table.match(req) == "hit") is expected


ROUTES = (
    RouteConf(host="api.example.com", path_prefix="/v2", upstream="v2"),
    RouteConf(host="api.example.com", upstream="api"),
    RouteConf(header={"x-canary": "1"}, upstream="canary"),
    RouteConf(host="*.example.com", path_prefix="/static/", upstream="static"),
    RouteConf(path_prefix="/static/", upstream="shared-static"),
    RouteConf(path_prefix="/", upstream="web"),
)


@pytest.mark.parametrize(
    ("target", "host", "headers", "upstream"),
    [
        ("/v2/users", "api.example.com", {}, "v2"),
        ("/v1/users", "api.example.com", {}, "api"),
        ("/v2", "API.EXAMPLE.COM:443", {"x-canary": "1"}, "v2"),  # first match wins over later ones
        ("/v1", "api.example.com", {"x-canary": "1"}, "api"),
        ("/v1", "www.example.com", {"x-canary": "1"}, "canary"),
        ("/static/a.css", "www.example.com", {}, "static"),
        ("/static/a.css", "other.org", {}, "shared-static"),
        ("/static", "www.example.com", {}, "web"),
        ("/", None, {}, "web"),
    ],
)
def test_the_first_matching_route_wins_in_file_order(
    target: str, host: str | None, headers: dict[str, str], upstream: str
) -> None:
    table = RouteTable.from_routes(ROUTES, lambda index, route: route.upstream)
    req = RequestHeader("GET", target, ([("Host", host)] if host else []) + list(headers.items()))
    assert table.match(req) == upstream


def test_no_match_is_none_and_targets_carry_their_index() -> None:
    routes = (RouteConf(path_prefix="/a", upstream="one"), RouteConf(host="b.example", upstream="two"))
    table = RouteTable.from_routes(routes, lambda index, route: (index, route.upstream))
    assert table.match(request("/b", "c.example")) is None
    assert table.match(request("/a/x", "c.example")) == (0, "one")
    assert table.match(request("/x", "B.example")) == (1, "two")
    assert table.targets() == [(0, "one"), (1, "two")]
    assert table.map(lambda target: target[1]).match(request("/a")) == "one"
    assert len(table) == 2


def test_the_host_is_not_read_when_no_route_names_one(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[RequestHeader] = []
    real = router.request_host

    def counting(req: RequestHeader) -> str | None:
        calls.append(req)
        return real(req)

    monkeypatch.setattr(router, "request_host", counting)
    by_path = RouteTable([(RouteRule.build(path_prefix="/a"), "a")])
    by_host = RouteTable([(RouteRule.build(host="example.com"), "h")])
    assert by_path.match(request("/a")) == "a"
    assert calls == []
    assert by_host.match(request("/a")) == "h"
    assert len(calls) == 1


def test_rules_are_compiled_once() -> None:
    rule = RouteRule.build(host="*.Example.COM.", path_prefix="/x", header={"X-Env": "beta"})
    assert (rule.host, rule.host_suffix, rule.headers) == (None, ".example.com", (("x-env", "beta"),))
    assert RouteRule.build(host="API.example.com").host == "api.example.com"
    assert RouteRule.from_conf(RouteConf(path_prefix="/x", upstream="u")) == RouteRule(path_prefix="/x")
