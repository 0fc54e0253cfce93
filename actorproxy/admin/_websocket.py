"""The admin page's WebSocket: the request's connection handed to trio-websocket once its head is parsed.

Rules:
- The proxy's codec has already read the request head, so the handshake bytes are written again in front of
  the stream (`ReplayStream`): trio-websocket (wsproto) parses and answers the handshake itself.
- The WebSocket lives in a nursery scoped to the request, as the proxy's body pump does: when the handler
  returns, the socket is closed and so is the connection (it never carries another HTTP request).
- A page that goes away (`ConnectionClosed`) is the normal end of a WebSocket, not an error.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable

import trio
import trio_websocket

from actorproxy.http import RequestHeader
from actorproxy.proxy import Session

__all__ = ["ReplayStream", "is_websocket_request", "request_head", "serve_websocket"]

#: The largest message a page may send; it sends none, so anything larger is a misbehaving client.
MAX_CLIENT_MESSAGE = 4096


class ReplayStream(trio.abc.Stream):
    """`stream`, whose first reads return `prefix` (bytes already taken off it) before its own bytes."""

    def __init__(self, stream: trio.abc.Stream, prefix: bytes) -> None:
        self.stream = stream
        self._prefix = prefix

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self._prefix:
            await trio.lowlevel.checkpoint()
            size = len(self._prefix) if max_bytes is None else max_bytes
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            return data
        return bytes(await self.stream.receive_some(max_bytes))

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def aclose(self) -> None:
        await self.stream.aclose()


def request_head(header: RequestHeader) -> bytes:
    """The request head as it came on the wire (names and values as parsed), ending with the empty line."""
    lines = [f"{header.method} {header.uri} HTTP/{header.version}"]
    lines += [f"{name}: {value}" for name, value in header.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def is_websocket_request(header: RequestHeader) -> bool:
    """An HTTP/1.1 GET asking to upgrade to a WebSocket, with a key (RFC 6455 section 4.2.1)."""
    upgrade = (header.headers.get("upgrade") or "").lower()
    return (
        header.method == "GET"
        and header.version == "1.1"
        and upgrade == "websocket"
        and header.headers.get("sec-websocket-key") is not None
    )


async def serve_websocket(
    session: Session, handler: Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]
) -> None:
    """Accept the WebSocket `session`'s request asks for and run `handler` on it until either side ends."""
    session.set_keepalive(None)
    head = request_head(session.req_header)
    stream, early = session.downstream.detach()
    try:
        async with trio.open_nursery() as nursery:
            request = await trio_websocket.wrap_server_stream(
                nursery, ReplayStream(stream, head + early), max_message_size=MAX_CLIENT_MESSAGE
            )
            socket = await request.accept()
            with contextlib.suppress(trio_websocket.ConnectionClosed):  # the page went away
                await handler(socket)
            # trio-websocket's reader task ends with the connection; a page that never closes its end
            # must not keep this request alive.
            nursery.cancel_scope.cancel()
    finally:
        await trio.aclose_forcefully(stream)
