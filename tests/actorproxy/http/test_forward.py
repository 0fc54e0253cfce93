"""What the proxy adds to forwarded requests and answers itself, as pure functions over heads."""

from __future__ import annotations

import pytest

from actorproxy.config import Forwarding
from actorproxy.http import (
    Error,
    Headers,
    RequestHeader,
    ResponseHeader,
    allowed_methods,
    answer_here,
    forward_request,
    forward_response,
    status_for,
)
from actorproxy.http._forward import (
    add_via,
    add_x_forwarded,
    decrement_max_forwards,
    max_forwards,
    options_response,
    trace_echo,
    trace_refused,
)


def test_via_is_added_with_the_received_version() -> None:
    headers = Headers([("Host", "h")])
    add_via(headers, "1.0", "edge")
    assert headers.items() == [("Host", "h"), ("Via", "1.0 edge")]


def test_via_is_appended_to_an_existing_list_in_one_field() -> None:
    headers = Headers([("Via", "1.1 a"), ("Host", "h"), ("via", "1.0 b, 1.1 c")])
    add_via(headers, "1.1", "actorproxy")
    assert headers.items() == [("Via", "1.1 a, 1.0 b, 1.1 c, 1.1 actorproxy"), ("Host", "h")]


def test_x_forwarded_appends_the_client_and_replaces_proto_and_host() -> None:
    headers = Headers(
        [("X-Forwarded-For", "203.0.113.9"), ("X-Forwarded-Proto", "https"), ("X-Forwarded-Host", "evil")]
    )
    add_x_forwarded(headers, ("192.0.2.1", 5555), "http", "example.com")
    assert headers.get_all("x-forwarded-for") == ["203.0.113.9, 192.0.2.1"]
    assert headers.get_all("x-forwarded-proto") == ["http"]
    assert headers.get_all("x-forwarded-host") == ["example.com"]


def test_x_forwarded_for_from_a_unix_socket_adds_no_address() -> None:
    headers = Headers()
    add_x_forwarded(headers, "/run/proxy.sock", "http", "h")
    assert "x-forwarded-for" not in headers
    assert headers.get("x-forwarded-proto") == "http"


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ([], None),
        ([("Max-Forwards", "0")], 0),
        ([("Max-Forwards", " 7 ")], 7),
        ([("max-forwards", "3")] * 2, 3),
    ],
)
def test_max_forwards(fields: list[tuple[str, str]], expected: int | None) -> None:
    assert max_forwards(RequestHeader("OPTIONS", "*", fields)) == expected


@pytest.mark.parametrize("values", [["x"], ["-1"], ["1, 2"], ["1", "2"], [""]])
def test_invalid_max_forwards_answers_400(values: list[str]) -> None:
    header = RequestHeader("TRACE", "/", [("Max-Forwards", value) for value in values])
    with pytest.raises(Error) as caught:
        max_forwards(header)
    assert status_for(caught.value) == 400


def test_max_forwards_is_decremented_on_the_way() -> None:
    header = RequestHeader("OPTIONS", "*", [("Host", "h"), ("Max-Forwards", "5")])
    decrement_max_forwards(header)
    assert header.headers.items() == [("Host", "h"), ("Max-Forwards", "4")]


def test_stopped_options_lists_what_the_proxy_forwards() -> None:
    response = options_response(Forwarding())
    assert response.status == 200
    assert "TRACE" not in (response.headers.get("allow") or "")
    assert "TRACE" in (options_response(Forwarding(allow_trace=True)).headers.get("allow") or "")
    refused = trace_refused(Forwarding())
    assert (refused.status, refused.headers.get("allow")) == (405, allowed_methods(Forwarding()))


def test_trace_echo_leaves_out_credentials_and_cookies() -> None:
    header = RequestHeader(
        "TRACE",
        "/a?b",
        [("Host", "h"), ("Cookie", "s=1"), ("Authorization", "Basic x"), ("X-A", "caf\xe9")],
        version="1.1",
    )
    response, body = trace_echo(header)
    assert response.headers.get("content-type") == "message/http"
    assert response.headers.get("content-length") == str(len(body))
    assert body == b"TRACE /a?b HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9\r\n\r\n"


@pytest.mark.parametrize("pseudonym", ["", "two words", "a,b", "x\r\n"])
def test_a_via_pseudonym_is_one_token(pseudonym: str) -> None:
    with pytest.raises(ValueError, match="via"):
        Forwarding(via=pseudonym)


def test_forwarding_defaults() -> None:
    forwarding = Forwarding()
    assert (forwarding.via, forwarding.x_forwarded, forwarding.allow_trace) == ("actorproxy", False, False)


def test_forwarding_adds_to_the_request_going_upstream() -> None:
    received = RequestHeader(
        "OPTIONS",
        "/",
        [("Host", "example.com"), ("Max-Forwards", "3"), ("X-Forwarded-For", "10.0.0.1")],
        "1.0",
    )
    upstream = received.copy()
    forward_request(Forwarding(via="edge", x_forwarded=True), received, upstream, ("192.0.2.1", 1), "https")
    assert upstream.headers.items() == [
        ("Host", "example.com"),
        ("Max-Forwards", "2"),
        ("X-Forwarded-For", "10.0.0.1, 192.0.2.1"),
        ("Via", "1.0 edge"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "example.com"),
    ]
    assert received.headers.get("via") is None  # the client's request is left as it came


def test_forwarding_off_adds_nothing_but_the_max_forwards_step() -> None:
    received = RequestHeader("TRACE", "/", [("Host", "h"), ("Max-Forwards", "1")])
    upstream = received.copy()
    forward_request(Forwarding(via=None, allow_trace=True), received, upstream, ("192.0.2.1", 1), "http")
    assert upstream.headers.items() == [("Host", "h"), ("Max-Forwards", "0")]


@pytest.mark.parametrize(
    ("method", "fields", "forwarding", "status"),
    [
        ("GET", [("Max-Forwards", "0")], Forwarding(), None),
        ("OPTIONS", [], Forwarding(), None),
        ("OPTIONS", [("Max-Forwards", "1")], Forwarding(), None),
        ("OPTIONS", [("Max-Forwards", "0")], Forwarding(), 200),
        ("TRACE", [], Forwarding(), 405),
        ("TRACE", [("Max-Forwards", "0")], Forwarding(), 405),
        ("TRACE", [], Forwarding(allow_trace=True), None),
        ("TRACE", [("Max-Forwards", "0")], Forwarding(allow_trace=True), 200),
    ],
)
def test_what_the_proxy_answers_itself(
    method: str, fields: list[tuple[str, str]], forwarding: Forwarding, status: int | None
) -> None:
    answer = answer_here(
        forwarding, RequestHeader(method, "*" if method == "OPTIONS" else "/", [("Host", "h"), *fields])
    )
    assert (None if answer is None else answer[0].status) == status


def test_via_on_the_response() -> None:
    response = ResponseHeader(200, [("Via", "1.0 origin-cache")], version="1.0")
    forward_response(Forwarding(), response)
    assert response.headers.get_all("via") == ["1.0 origin-cache, 1.0 actorproxy"]


@pytest.mark.parametrize(
    ("version", "pseudonym", "trusted"),
    [("1.1", "edge", True), ("1.0", "edge", True), ("1.1", "ed\x0bge", False), ("x", "edge", False)],
)
def test_a_via_entry_keeps_a_parsed_head_trusted_only_when_it_is_valid_text(
    version: str, pseudonym: str, trusted: bool
) -> None:
    for fields in ([("Host", "h")], [("Host", "h"), ("Via", "1.0 first")]):
        headers = Headers._from_parsed(fields, [name.lower() for name, _ in fields])
        add_via(headers, version, pseudonym)
        assert headers._trusted is trusted
