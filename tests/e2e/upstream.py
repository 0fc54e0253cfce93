"""A small HTTP/1.1 origin server for end-to-end tests, written on h11 directly (independent of our codec).

Routes (the path decides):
- `/echo...`: 200 with a JSON body describing the request (method, path, headers, body).
- `/slow?delay=S`: waits S seconds before answering.
- `/chunked`: a chunked response with a trailer `x-checksum: done`.
- `/status/N`: answers status N with an empty body.
- `/big?size=N`: N bytes of body.
- `/truncated`: promises 1000 bytes of body, sends 10 and closes the connection.
- `/close-after`: a normal keep-alive answer, then the connection is closed (an idle timeout on the origin).
- `/text?size=N&type=T`: N bytes of repeated English text as T (default text/plain), with a strong ETag
  and `Accept-Ranges`; `&chunked=1` sends it chunked, in two pieces.
- `/encoded?coding=C&size=N`: the `/text` body compressed with gzip, br or zstd, with `Content-Encoding`;
  `coding=broken-gzip` sends a gzip header followed by garbage.
- `/drip`: a chunked text body whose first piece goes at once; the rest waits for `release` (and sets
  `held` when it starts waiting).
- `/drop-on-reuse...`: answered as `/echo` on a new connection; on a reused one the connection is closed
  without an answer (the origin's idle timer fired just as the request arrived).
- `/cache...`: a response with the caching fields the query asks for (each value URL-encoded): `cc`
  (Cache-Control), `etag` (a strong ETag, answered 304 when If-None-Match names it), `lm` (Last-Modified,
  seconds from now), `expires` (seconds from now), `age`, `vary`, `status`, `location`; always a Date
  (from `clock`) and `x-asked`, the requests for the path so far (304s included). The body names the
  path and how many times it was served (`/cache/a #2`) and, with `vary`, the request's values of those
  fields; `size=N` sends N bytes of text instead, in 64 KiB pieces never held whole; `hold=1` waits for
  `release` before the head (setting `held`), `drip=1` after the first half of the body.
Counts the connections it accepted and the requests it served. Serves plain TCP (`serve`), TLS (`serve` with
an `ssl_context`) or a Unix socket (`serve_unix`); answers `100 Continue` to a client that waits for it.
"""

from __future__ import annotations

import gzip
import json
import ssl
import time
from collections import Counter
from collections.abc import Callable
from email.utils import formatdate
from typing import Any
from urllib.parse import unquote_plus

import brotli
import h11
import trio
import zstandard

#: The text `/text` repeats: compressible, as a page or a JSON document is.
TEXT = b"The quick brown fox jumps over the lazy dog; pack my box with five dozen liquor jugs. "
_ENCODERS = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
    "broken-gzip": lambda data: b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03" + b"not deflate" * 10,
}


def text_body(size: int) -> bytes:
    """`size` bytes of `TEXT`, repeated."""
    return (TEXT * (size // len(TEXT) + 1))[:size]


class Upstream:
    def __init__(self, name: str = "up") -> None:
        self.name = name
        self.connections = 0
        self.dropped = 0  # requests closed without an answer (`/drop-on-reuse`)
        self.requests: list[dict[str, Any]] = []
        self.port = 0
        #: When set, every request is answered with this status and an empty body.
        self.force_status: int | None = None
        #: `/hold` requests set `held` on arrival and wait for `release`.
        self.held = trio.Event()
        self.release = trio.Event()
        #: `/cache` requests received and whole responses served (not 304s), by path; and the clock their
        #: Date comes from.
        self.asked: Counter[str] = Counter()
        self.served: Counter[str] = Counter()
        self.clock: Callable[[], float] = time.time

    async def serve(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        port: int = 0,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners: list[Any] = await trio.open_tcp_listeners(port, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        if ssl_context is not None:
            listeners = [trio.SSLListener(listener, ssl_context) for listener in listeners]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def serve_unix(
        self, path: str, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
    ) -> None:
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(path)
        sock.listen(128)
        task_status.started(path)
        await trio.serve_listeners(self._handle, [trio.SocketListener(sock)])

    async def _handle(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        served = 0
        try:
            while True:
                request, body, trailers = await self._read(conn, stream)
                if request is None:
                    return
                if served and request.target.startswith(b"/drop-on-reuse"):
                    self.dropped += 1
                    return
                served += 1
                await self._answer(conn, stream, request, body, trailers)
                if conn.our_state is h11.MUST_CLOSE or request.target in (b"/truncated", b"/close-after"):
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            await trio.aclose_forcefully(stream)

    async def _read(self, conn: h11.Connection, stream: trio.abc.Stream) -> Any:
        request = None
        body = b""
        trailers: list[tuple[bytes, bytes]] = []
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = bytes(await stream.receive_some(65536))
                if not data and conn.their_state is h11.IDLE:
                    return None, b"", []
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Request):
                request = event
                if conn.they_are_waiting_for_100_continue:
                    continue_ = h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue")
                    await stream.send_all(conn.send(continue_))
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
        stream: trio.abc.Stream,
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
        if self.force_status is not None:
            await self._send(conn, stream, self.force_status, [("content-length", "0")], b"")
            return
        if path == "/hold":
            self.held.set()
            await self.release.wait()
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
        if path.startswith("/cache"):
            await self._cache(conn, stream, request, path, params)
            return
        if path in ("/text", "/encoded", "/drip"):
            await self._text(conn, stream, request, path, params)
            return
        if path == "/truncated":
            head = h11.Response(status_code=200, headers=[("content-length", "1000")])
            await stream.send_all(conn.send(head) + conn.send(h11.Data(data=b"0123456789")))
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

    async def _text(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        request: h11.Request,
        path: str,
        params: dict[str, str],
    ) -> None:
        payload = text_body(int(params.get("size", "4096")))
        content_type = params.get("type", "text/plain; charset=utf-8")
        headers = [("content-type", content_type), ("x-upstream", self.name)]
        if path == "/encoded":
            coding = params.get("coding", "gzip")
            payload = _ENCODERS[coding](payload)
            headers.append(("content-encoding", coding.removeprefix("broken-")))
        elif path == "/text":
            headers += [("etag", '"v1"'), ("accept-ranges", "bytes")]
        if path == "/drip" or params.get("chunked"):
            await self._send(conn, stream, 200, [*headers, ("transfer-encoding", "chunked")], None)
            half = len(payload) // 2
            await stream.send_all(conn.send(h11.Data(data=payload[:half])))
            if path == "/drip":
                self.held.set()
                await self.release.wait()
            await stream.send_all(conn.send(h11.Data(data=payload[half:])) + conn.send(h11.EndOfMessage()))
            return
        headers.append(("content-length", str(len(payload))))
        await self._send(conn, stream, 200, headers, b"" if request.method == b"HEAD" else payload)

    async def _cache(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        request: h11.Request,
        path: str,
        params: dict[str, str],
    ) -> None:
        query = {name: unquote_plus(value) for name, value in params.items()}
        now = self.clock()
        self.asked[path] += 1
        headers = [
            ("date", formatdate(now, usegmt=True)),
            ("x-upstream", self.name),
            ("x-asked", str(self.asked[path])),
        ]
        for name, field in (
            ("cc", "cache-control"),
            ("vary", "vary"),
            ("age", "age"),
            ("location", "location"),
        ):
            if name in query:
                headers.append((field, query[name]))
        for name, field in (("lm", "last-modified"), ("expires", "expires")):
            if name in query:
                headers.append((field, formatdate(now + float(query[name]), usegmt=True)))
        etag = query.get("etag")
        if etag is not None:
            headers.append(("etag", f'"{etag}"'))
            asked = dict(request.headers).get(b"if-none-match", b"").decode()
            if f'"{etag}"' in asked:
                await self._send(conn, stream, 304, headers, b"")
                return
        if query.get("hold"):
            self.held.set()
            await self.release.wait()
        self.served[path] += 1
        status = int(query.get("status", "200"))
        size = query.get("size")
        if size is None:
            varied = [
                dict(request.headers).get(name.strip().lower().encode(), b"-").decode()
                for name in query.get("vary", "").split(",")
                if name.strip()
            ]
            payload = " ".join([f"{path} #{self.served[path]}", *varied]).encode()
            headers.append(("content-length", str(len(payload))))
            await self._send(conn, stream, status, headers, b"" if request.method == b"HEAD" else payload)
            return
        total = int(size)
        headers.append(("content-length", str(total)))
        await stream.send_all(conn.send(h11.Response(status_code=status, headers=headers)))
        piece = text_body(len(TEXT) * (64 * 1024 // len(TEXT)))  # whole sentences: the text runs on
        sent = 0
        drip = bool(query.get("drip"))
        while sent < total and request.method != b"HEAD":
            if drip and sent >= total // 2:
                drip = False
                self.held.set()
                await self.release.wait()
            data = piece[: total - sent]
            await stream.send_all(conn.send(h11.Data(data=data)))
            sent += len(data)
        await stream.send_all(conn.send(h11.EndOfMessage()))

    async def _send(
        self,
        conn: h11.Connection,
        stream: trio.abc.Stream,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes | None,
    ) -> None:
        data = conn.send(h11.Response(status_code=status, headers=headers))
        if body is not None:
            data += conn.send(h11.Data(data=body)) if body else b""
            data += conn.send(h11.EndOfMessage())
        await stream.send_all(data)
