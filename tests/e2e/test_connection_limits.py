"""Connection limits per listener: accepting pauses at `max_connections`; an address over
`max_connections_per_client` gets a 503 and is closed."""

from __future__ import annotations

from typing import Any

import trio
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session


class To(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


def limited(**limits: int) -> Any:
    def listen(service: HttpProxyService) -> None:
        service.add_tcp("127.0.0.1:0", **limits)

    return listen


async def test_accepting_pauses_at_the_limit_and_resumes_when_a_connection_closes(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    upstream = upstreams[0]
    base, _ = await start_proxy(To(upstream.port), listen=limited(max_connections=2))
    with trio.fail_after(10):
        first, second = await open_stream(base), await open_stream(base)
        assert (await exchange(first, "GET", "/one")).status == 200
        assert (await exchange(second, "GET", "/two")).status == 200
        third = await open_stream(base)  # the kernel completes the handshake; the proxy does not accept
        await third.send_all(b"GET /three HTTP/1.1\r\nHost: localhost\r\n\r\n")
        assert (await exchange(second, "GET", "/two-again")).status == 200
        assert [r["target"] for r in upstream.requests] == ["/one", "/two", "/two-again"]
        await first.aclose()  # a slot frees: the third connection is accepted and served
        answer = await third.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        assert [r["target"] for r in upstream.requests][-1] == "/three"
        await second.aclose()
        await third.aclose()


async def test_a_client_over_its_own_limit_gets_503_and_others_are_served(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(To(upstreams[0].port), listen=limited(max_connections_per_client=1))
    with trio.fail_after(10):
        first = await open_stream(base)
        assert (await exchange(first, "GET", "/one")).status == 200
        second = await open_stream(base)
        refused = b""
        while data := await second.receive_some(65536):
            refused += data
        assert refused.startswith(b"HTTP/1.1 503")
        await first.aclose()
        # Its slot is back: the same address may connect again.
        again = await open_stream(base)
        assert (await exchange(again, "GET", "/again")).status == 200
        await again.aclose()
        await second.aclose()
