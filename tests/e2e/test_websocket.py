"""Upgrade / WebSocket: a raw tunnel only after the upstream answers 101."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from trio_websocket import WebSocketRequest, open_websocket_url, serve_websocket
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session


async def echo(request: WebSocketRequest) -> None:
    ws = await request.accept()
    while True:
        try:
            message = await ws.get_message()
        except Exception:
            return
        await ws.send_message(f"echo: {message}")


class ToPort(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def test_websocket_echo_through_the_proxy(nursery: trio.Nursery, start_proxy: Any) -> None:
    server = await nursery.start(serve_websocket, echo, "127.0.0.1", 0, None)
    port = server.port
    base, _ = await start_proxy(ToPort(port))
    url = base.replace("http://", "ws://") + "/chat"
    async with open_websocket_url(url) as ws:
        for n in range(5):
            await ws.send_message(f"hello {n}")
            assert await ws.get_message() == f"echo: hello {n}"
        big = "x" * 200_000
        await ws.send_message(big)
        assert await ws.get_message() == f"echo: {big}"


async def test_refused_upgrade_is_forwarded_without_a_tunnel(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    # The origin ignores the Upgrade header and answers 200: the client gets that answer, and the
    # connection is not kept alive (h11 cannot reuse it after an unanswered upgrade request).
    base, _ = await start_proxy(ToPort(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert response.status_code == 200
    assert response.headers.get("connection") == "close"
    forwarded = dict((k.lower(), v) for k, v in upstreams[0].requests[0]["headers"])
    assert forwarded["upgrade"] == "websocket"
