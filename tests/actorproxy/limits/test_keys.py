"""Keys: the sources a route names, and the client's address behind trusted proxies (never a spoofed one)."""

from __future__ import annotations

import ipaddress

import pytest

from actorproxy.http import Headers, RequestHeader
from actorproxy.limits import KeyFunction, client_ip, forwarded_for

LB = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("2001:db8::/32")]


def headers(*pairs: tuple[str, str]) -> Headers:
    return Headers(pairs)


def test_without_trusted_proxies_the_peer_is_the_client_whatever_the_headers_say() -> None:
    assert client_ip(("203.0.113.9", 5555), headers(("x-forwarded-for", "1.2.3.4")), []) == "203.0.113.9"


def test_a_header_from_an_untrusted_peer_is_ignored() -> None:
    spoofed = headers(("x-forwarded-for", "1.2.3.4"))
    assert client_ip(("203.0.113.9", 5555), spoofed, LB) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_address_is_the_client() -> None:
    # The client sent "1.2.3.4" itself; the load balancer appended the address it saw.
    forwarded = headers(("x-forwarded-for", "1.2.3.4, 198.51.100.7"), ("x-forwarded-for", "10.1.1.1"))
    assert client_ip(("10.0.0.5", 80), forwarded, LB) == "198.51.100.7"


def test_only_trusted_hops_leave_the_leftmost_address() -> None:
    assert client_ip(("10.0.0.5", 80), headers(("x-forwarded-for", "10.9.9.9, 10.1.1.1")), LB) == "10.9.9.9"
    assert client_ip(("10.0.0.5", 80), headers(), LB) == "10.0.0.5"


def test_the_forwarded_header_is_read_only_when_named() -> None:
    both = headers(
        ("forwarded", 'for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"'),
        ("x-forwarded-for", "198.51.100.1"),
    )
    assert forwarded_for(both, "forwarded") == ["192.0.2.60", "2001:db8:cafe::17"]
    assert client_ip(("10.0.0.5", 80), both, LB, "forwarded") == "192.0.2.60"
    assert client_ip(("10.0.0.5", 80), both, LB) == "198.51.100.1"


def test_an_obfuscated_hop_is_a_key_as_it_is() -> None:
    assert client_ip(("10.0.0.5", 80), headers(("forwarded", "for=_hidden")), LB, "forwarded") == "_hidden"


@pytest.mark.parametrize(
    ("addr", "key"), [("/run/proxy.sock", "unix"), (None, ""), (("::1", 80, 0, 0), "::1")]
)
def test_peers_without_an_ip_have_a_key_too(addr: object, key: str) -> None:
    assert client_ip(addr, headers(), LB) == key


def test_a_key_joins_the_sources_after_the_label() -> None:
    request = RequestHeader.build("GET", "/a?user=ann&x=1", headers=[("Host", "API.example.com:8080")])
    request.insert_header("X-Api-Key", "k1")
    key = KeyFunction(["client_ip", "header:x-api-key", "query:user", "host", "route"], "svc.routes[0]")
    assert key(("192.0.2.1", 1234), request) == "\x1f".join(
        ["svc.routes[0]", "192.0.2.1", "k1", "ann", "api.example.com", ""]
    )


def test_a_missing_header_or_parameter_is_the_empty_value() -> None:
    key = KeyFunction(["header:x-api-key", "query:user"], "r")
    assert key(None, RequestHeader.build("GET", "/")) == "r\x1f\x1f"
