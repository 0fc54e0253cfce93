"""Cache keys, secondary (Vary) keys, and invalidation by unsafe methods (RFC 9111 §4.1, §4.4)."""

from __future__ import annotations

import pytest
from heads import request, response

from actorproxy.cache import CacheKeyParts, cache_key, invalidated_keys, secondary_key, vary_fields
from actorproxy.http import Headers, RequestHeader


@pytest.mark.parametrize(
    ("method", "uri", "host", "scheme", "key"),
    [
        ("GET", "/a?b=1", "example.com", "http", "GET http://example.com/a?b=1"),
        ("HEAD", "/a", "example.com", "http", "GET http://example.com/a"),  # HEAD shares the GET's key
        ("PURGE", "/a", "example.com", "http", "GET http://example.com/a"),  # PURGE names the GET's
        ("GET", "/a", "Example.COM:80", "http", "GET http://example.com/a"),  # default port dropped
        ("GET", "/a", "example.com:443", "https", "GET https://example.com/a"),
        ("GET", "/a", "example.com:8080", "http", "GET http://example.com:8080/a"),
        ("GET", "/a", "[::1]:80", "http", "GET http://[::1]/a"),
        ("GET", "http://other.org/a?", "example.com", "http", "GET http://other.org/a?"),  # absolute form
        ("POST", "/a", "example.com", "https", "POST https://example.com/a"),
    ],
)
def test_the_default_key(method: str, uri: str, host: str, scheme: str, key: str) -> None:
    assert cache_key(RequestHeader(method, uri, [("Host", host)]), scheme=scheme) == key


def test_the_key_parts_are_configurable() -> None:
    client = RequestHeader("GET", "/a?b=1", [("Host", "example.com"), ("X-Tenant", "t1")])
    parts = CacheKeyParts(scheme=False, query=False, headers=("x-tenant", "x-missing"))
    assert cache_key(client, parts=parts) == "GET example.com/a x-tenant=t1 x-missing!"


def test_vary_fields_and_the_secondary_key() -> None:  # §4.1
    assert vary_fields(Headers([("Vary", "Accept-Encoding"), ("vary", "accept, Accept-Encoding")])) == (
        "accept",
        "accept-encoding",
    )
    assert vary_fields(Headers()) == ()
    assert vary_fields(Headers([("Vary", "accept, *")])) is None
    fields = ("accept-encoding",)
    gzip = secondary_key(fields, request("GET", "/", ("Accept-Encoding", "gzip, br")))
    assert gzip == secondary_key(fields, request("GET", "/", ("Accept-Encoding", "gzip,br")))
    assert gzip != secondary_key(fields, request("GET", "/", ("Accept-Encoding", "br")))
    assert gzip != secondary_key(fields, request())
    assert secondary_key((), request()) == ""
    assert secondary_key(None, request()) is None  # Vary: * never matches


@pytest.mark.parametrize(
    ("method", "status", "headers", "keys"),
    [
        ("POST", 200, [], ["GET http://example.com/page"]),
        ("DELETE", 204, [], ["GET http://example.com/page"]),
        ("PUT", 302, [], ["GET http://example.com/page"]),
        ("POST", 500, [], []),  # an error invalidates nothing
        ("POST", 404, [], []),
        ("GET", 200, [], []),  # safe methods invalidate nothing
        ("OPTIONS", 200, [], []),
        (
            "POST",
            201,
            [("Location", "/items/7"), ("Content-Location", "http://example.com:80/page?v=2")],
            [
                "GET http://example.com/page",
                "GET http://example.com/items/7",
                "GET http://example.com/page?v=2",
            ],
        ),
        (
            "POST",
            201,
            [("Location", "https://example.com/x")],
            ["GET http://example.com/page"],
        ),  # other origin
        ("POST", 201, [("Location", "http://evil.org/x")], ["GET http://example.com/page"]),
    ],
)
def test_invalidation(
    method: str, status: int, headers: list[tuple[str, str]], keys: list[str]
) -> None:  # §4.4
    assert invalidated_keys(request(method, "/page"), response(status, *headers)) == keys
