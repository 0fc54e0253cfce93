"""What the proxy adds to what it forwards, and what it answers itself, end to end (raw client, real
listener, recording upstream): hop-by-hop fields, Via, X-Forwarded-*, Max-Forwards on TRACE and OPTIONS."""

from __future__ import annotations

from typing import Any

import httpx
from rawhttp import send_raw
from upstream import Upstream

from actorproxy.config import Forwarding
from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


def fields(record: dict[str, Any], name: str) -> list[str]:
    return [value for key, value in record["headers"] if key.lower() == name]


def raw(line: str, *headers: str) -> bytes:
    return (
        line + "\r\nHost: localhost\r\nConnection: close\r\n" + "".join(h + "\r\n" for h in headers) + "\r\n"
    ).encode()


async def test_hop_by_hop_fields_and_those_connection_names_are_not_forwarded(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    reply = await send_raw(
        base,
        b"POST /echo HTTP/1.1\r\nHost: localhost\r\nConnection: close, X-Secret, Content-Length, Host\r\n"
        b"X-Secret: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nProxy-Connection: keep-alive\r\n"
        b"Upgrade-Insecure-Requests: 1\r\nContent-Length: 2\r\n\r\nab",
    )
    assert reply.statuses == [200]
    [record] = upstreams[0].requests
    names = {name.lower() for name, _ in record["headers"]}
    assert not names & {"connection", "x-secret", "keep-alive", "te", "proxy-connection"}
    # Framing and Host are never dropped by a Connection option: the body and its authority still arrive.
    assert fields(record, "host") == ["localhost"]
    assert record["body"] == "ab"
    assert fields(record, "upgrade-insecure-requests") == ["1"]


async def test_via_is_added_to_the_request_and_the_response(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo", headers={"Via": "1.0 corporate-proxy"})
    assert response.headers["via"] == "1.1 actorproxy"
    [record] = upstreams[0].requests
    assert fields(record, "via") == ["1.0 corporate-proxy, 1.1 actorproxy"]


async def test_via_pseudonym_is_configurable(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), forwarding=Forwarding(via="edge-7"))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.headers["via"] == "1.1 edge-7"
    assert fields(upstreams[0].requests[0], "via") == ["1.1 edge-7"]


async def test_via_can_be_turned_off(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), forwarding=Forwarding(via=None))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert "via" not in response.headers
    assert fields(upstreams[0].requests[0], "via") == []


async def test_x_forwarded_headers_are_off_by_default(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        await client.get("/echo", headers={"X-Forwarded-For": "203.0.113.7"})
    [record] = upstreams[0].requests
    assert fields(record, "x-forwarded-for") == ["203.0.113.7"]  # as the client sent it, not added to
    assert fields(record, "x-forwarded-proto") == []
    assert fields(record, "x-forwarded-host") == []


async def test_x_forwarded_headers_when_the_service_asks(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), forwarding=Forwarding(x_forwarded=True))
    async with httpx.AsyncClient(base_url=base) as client:
        await client.get(
            "/echo",
            headers={"X-Forwarded-For": "203.0.113.7", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "x"},
        )
        await client.get("/echo")
    first, second = upstreams[0].requests
    assert fields(first, "x-forwarded-for") == ["203.0.113.7, 127.0.0.1"]
    assert fields(first, "x-forwarded-proto") == ["http"]
    host = base.removeprefix("http://")
    assert fields(first, "x-forwarded-host") == [host]
    assert fields(second, "x-forwarded-for") == ["127.0.0.1"]


async def test_options_with_max_forwards_0_is_answered_by_the_proxy(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    reply = await send_raw(base, raw("OPTIONS * HTTP/1.1", "Max-Forwards: 0"))
    assert reply.statuses == [200]
    allow = reply.header(0, "allow") or ""
    assert "GET" in allow and "OPTIONS" in allow and "TRACE" not in allow
    assert reply.responses[0][2] == b""
    assert upstreams[0].requests == []


async def test_options_with_max_forwards_above_0_goes_on_decremented(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    reply = await send_raw(base, raw("OPTIONS /echo HTTP/1.1", "Max-Forwards: 5"))
    assert reply.statuses == [200]
    [record] = upstreams[0].requests
    assert (record["method"], fields(record, "max-forwards")) == ("OPTIONS", ["4"])


async def test_max_forwards_on_other_methods_is_carried_through(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    reply = await send_raw(base, raw("GET /echo HTTP/1.1", "Max-Forwards: 0"))
    assert reply.statuses == [200]
    assert fields(upstreams[0].requests[0], "max-forwards") == ["0"]


async def test_invalid_max_forwards_on_options_is_400(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    reply = await send_raw(base, raw("OPTIONS /echo HTTP/1.1", "Max-Forwards: many"))
    assert reply.statuses == [400]
    assert upstreams[0].requests == []


async def test_trace_is_refused_by_default(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    for max_forwards in ("Max-Forwards: 0", "Max-Forwards: 9", "X-None: 1"):
        reply = await send_raw(base, raw("TRACE /echo HTTP/1.1", max_forwards, "Cookie: session=secret"))
        assert reply.statuses == [405]
        assert "TRACE" not in (reply.header(0, "allow") or "x")
        assert b"secret" not in reply.raw
    assert upstreams[0].requests == []


async def test_allowed_trace_is_echoed_at_max_forwards_0_without_cookies(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), forwarding=Forwarding(allow_trace=True))
    reply = await send_raw(
        base, raw("TRACE /echo?x HTTP/1.1", "Max-Forwards: 0", "Cookie: s=secret", "X-A: b")
    )
    assert reply.statuses == [200]
    assert reply.header(0, "content-type") == "message/http"
    echo = reply.responses[0][2]
    assert echo.startswith(b"TRACE /echo?x HTTP/1.1\r\n")
    assert b"X-A: b\r\n" in echo and b"secret" not in echo
    assert upstreams[0].requests == []


async def test_allowed_trace_goes_on_decremented(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), forwarding=Forwarding(allow_trace=True))
    reply = await send_raw(base, raw("TRACE /echo HTTP/1.1", "Max-Forwards: 2"))
    assert reply.statuses == [200]
    [record] = upstreams[0].requests
    assert (record["method"], fields(record, "max-forwards")) == ("TRACE", ["1"])
