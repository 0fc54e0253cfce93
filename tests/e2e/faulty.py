"""Upstreams that misbehave on cue.

`FaultyUpstream` reads a request head, then sends scripted bytes and ends the connection the way the test
asks (reset, clean close, stall), at a chosen byte of its answer; each accepted connection takes the next
`Script` (the last one repeats). `FaultRelay` sits in front of a real upstream and breaks its answers the
same ways at a chosen byte.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import Any, Literal

import attrs
import trio

Ending = Literal["close", "reset", "stall", "keep"]


@attrs.frozen
class Script:
    """What to send after the request head, and how to end.

    Args:
        data: the bytes to send (a response, or garbage).
        cut: send only this many bytes of `data` (None: all of it).
        ending: "close" (FIN), "reset" (RST), "stall" (send nothing more, never close), "keep" (wait for
            the client to close).
    """

    data: bytes
    cut: int | None = None
    ending: Ending = "close"


def ok(body: bytes = b"hello") -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def chunked(*pieces: bytes) -> bytes:
    out = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    for piece in pieces:
        out += b"%x\r\n%s\r\n" % (len(piece), piece)
    return out + b"0\r\n\r\n"


@attrs.define
class FaultyUpstream:
    scripts: list[Script]
    port: int = 0
    connections: int = 0
    heads: list[bytes] = attrs.Factory(list)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners: list[Any] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        index = min(self.connections, len(self.scripts) - 1)
        self.connections += 1
        script = self.scripts[index]
        head = b""
        try:
            while b"\r\n\r\n" not in head:
                data = await stream.receive_some(65536)
                if not data:
                    return
                head += data
            self.heads.append(head)
            await stream.send_all(script.data[: script.cut])
            if script.ending == "reset":
                # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
                stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            elif script.ending == "stall":
                await trio.sleep_forever()
            elif script.ending == "keep":
                while await stream.receive_some(65536):
                    pass
        except trio.BrokenResourceError:
            pass
        finally:
            stream.socket.close()


@attrs.define
class FaultRelay:
    """A TCP relay in front of a real upstream that breaks the answer at byte `cut`, as `ending` says.

    The request goes through whole; the upstream's answer is relayed until `cut` bytes have passed, then
    the relay resets, closes or stalls the connection to the proxy (and drops the upstream one).
    """

    target_port: int
    cut: int
    ending: Ending = "reset"
    port: int = 0
    relayed: int = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners: list[Any] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, client: trio.SocketStream) -> None:
        upstream = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._forward_requests, client, upstream)
                sent = 0
                while sent < self.cut:
                    data = await upstream.receive_some(min(65536, self.cut - sent))
                    if not data:
                        break
                    await client.send_all(data)
                    sent += len(data)
                    self.relayed += len(data)
                if self.ending == "reset":
                    client.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                elif self.ending == "stall":
                    await trio.sleep_forever()
                nursery.cancel_scope.cancel()
        except trio.BrokenResourceError:
            pass
        finally:
            client.socket.close()
            await trio.aclose_forcefully(upstream)

    async def _forward_requests(self, client: trio.SocketStream, upstream: trio.SocketStream) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            while data := await client.receive_some(65536):
                await upstream.send_all(data)
