"""A small HTTP/1.1 origin server for end-to-end tests, written on h11 directly (independent of our codec).

Routes (the path decides):
- `/echo...`: 200 with a JSON body describing the request (method, path, headers, body).
- `/slow?delay=S`: waits S seconds before answering.
- `/chunked`: a chunked response with a trailer `x-checksum: done`.
- `/status/N`: answers status N with an empty body.
- `/big?size=N`: N bytes of body.
Counts the connections it accepted and the requests it served.
"""

from __future__ import annotations

import json
from typing import Any

import h11
import trio


class Upstream:
    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request, body, trailers = await self._read(conn, stream)
                if request is None:
                    return
                await self._answer(conn, stream, request, body, trailers)
                if conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _read(self, conn: h11.Connection, stream: trio.SocketStream) -> Any:
        request = None
        body = b""
        trailers: list[tuple[bytes, bytes]] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data and conn.their_state is h11.IDLE:
                    return None, b"", []
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                trailers = list(event.headers)
                return request, body, trailers
            elif isinstance(event, h11.ConnectionClosed):
                return None, b"", []

    async def _answer(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        request: h11.Request,
        body: bytes,
        trailers: list[tuple[bytes, bytes]],
    ) -> None:
        target = request.target.decode()
        path, _, query = target.partition("?")
        params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
        record = {
            "upstream": self.name,
            "method": request.method.decode(),
            "target": target,
            "headers": [(k.decode(), v.decode()) for k, v in request.headers.raw_items()],
            "body": body.decode("latin-1"),
            "trailers": [(k.decode(), v.decode()) for k, v in trailers],
        }
        self.requests.append(record)
        if path.startswith("/slow"):
            await trio.sleep(float(params.get("delay", "1")))
        if path.startswith("/status/"):
            code = int(path.rsplit("/", 1)[1])
            await self._send(conn, stream, code, [("content-length", "0")], b"")
            return
        if path == "/chunked":
            await self._send(
                conn, stream, 200, [("transfer-encoding", "chunked"), ("trailer", "x-checksum")], None
            )
            for piece in (b"hello ", b"chunked ", b"world"):
                await stream.send_all(conn.send(h11.Data(data=piece)))
            await stream.send_all(conn.send(h11.EndOfMessage(headers=[("x-checksum", "done")])))
            return
        if path.startswith("/big"):
            payload = b"x" * int(params.get("size", "65536"))
        else:
            payload = json.dumps(record).encode()
        headers = [
            ("content-type", "application/json"),
            ("content-length", str(len(payload))),
            ("x-upstream", self.name),
        ]
        await self._send(conn, stream, 200, headers, b"" if request.method == b"HEAD" else payload)

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.SocketStream,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        data = conn.send(h11.Response(status_code=status, headers=headers))
        if body is not None:
            data += conn.send(h11.Data(data=body)) if body else b""
            data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
