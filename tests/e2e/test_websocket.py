"""Upgrade / WebSocket: a raw tunnel only after the upstream answers 101."""

from __future__ import annotations

from functools import partial
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


class EarlySwitch:
    """An origin that answers 101 as soon as it has a request head, before reading the request's body, and
    then records every byte that follows on the connection."""

    SWITCH = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"

    def __init__(self) -> None:
        self.done, self.received = trio.open_memory_channel[bytes](100)

    async def handle(self, stream: trio.SocketStream) -> None:
        buffer = b""
        while b"\r\n\r\n" not in buffer:
            data = await stream.receive_some(65536)
            if not data:
                return
            buffer += data
        after = buffer.partition(b"\r\n\r\n")[2]
        await stream.send_all(self.SWITCH)
        try:
            while data := await stream.receive_some(65536):
                after += data
        except trio.BrokenResourceError:
            pass
        await self.done.send(after)


async def test_a_body_sent_around_an_early_101_reaches_the_upstream_exactly_once(
    nursery: trio.Nursery, start_proxy: Any
) -> None:
    # The upstream switches before it reads the 5,120-byte body; the body then goes on through the tunnel.
    # Whatever the timing, every byte the client sent arrives once and in order: repeated to catch a race.
    origin = EarlySwitch()
    [listener] = await nursery.start(partial(trio.serve_tcp, origin.handle, 0, host="127.0.0.1"))
    base, _ = await start_proxy(ToPort(listener.socket.getsockname()[1]))
    host, port = base.removeprefix("http://").split(":")
    body = bytes(range(256)) * 20
    tunnel = b"hello"
    rounds = 30
    for n in range(rounds):
        stream = await trio.open_tcp_stream(host, int(port))
        head = (
            b"GET /chat HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body)
        )
        # The head and the body in one write, then in two: the body is then in the proxy's buffer, or
        # still on its way, when the 101 comes.
        answer = b""
        if n % 3 == 0:
            await stream.send_all(head + body)
        elif n % 3 == 1:
            await stream.send_all(head + body[:1000])
            await stream.send_all(body[1000:])
        else:
            await stream.send_all(head)
            while b"\r\n\r\n" not in answer:
                answer += await stream.receive_some(65536)
            await stream.send_all(body)
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some(65536)
        assert answer.startswith(b"HTTP/1.1 101 ")
        await stream.send_all(tunnel)
        await stream.send_eof()
        with trio.fail_after(10):
            while await stream.receive_some(65536):
                pass
        await stream.aclose()
    with trio.fail_after(10):
        received = [await origin.received.receive() for _ in range(rounds)]
    assert [len(got) for got in received] == [len(body) + len(tunnel)] * rounds
    assert all(got == body + tunnel for got in received)
