"""`Session`: what every phase sees of one downstream request.

Rules:
- The session owns the request header (mutable; field-name case preserved) and the downstream codec. Filters
  that answer themselves write through it; `response_written()` tells later phases what went out.
- Request body pieces read through the session are kept in a retry buffer of up to `RETRY_BUFFER_SIZE`
  bytes, so a failed upstream attempt can be replayed. Past that size the buffer is truncated and the
  request can no longer be retried once body bytes went upstream.
- Keep-alive is on by default (idle timeout from the service); `set_keepalive(None)` closes the connection
  after this response.
- Response compression (`downstream_compression`, Pingora's) exists only once a phase asks for it: a
  request that never touches it pays nothing for it. It applies to what the proxy relays and to what a
  filter writes through `write_response_header` / `write_response_body`.
- `enter_context(cm)` ties a synchronous context manager (an `Inflight` guard) to the request: the engine
  exits it when the request ends, whatever way it ends (an answer, an error, a cancellation, a crash of the
  connection), last entered first. A request that enters none pays nothing for it.
- `set_abort_on_close(True)` makes the proxy watch the client while the upstream answers: a client that
  closes its connection ends the request at once (Pingora's `abort_on_close`, off here by default because
  the watch costs a task per request; see docs/pingora.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

import trio

from actorproxy.config import DEFAULT_KEEPALIVE_TIMEOUT
from actorproxy.http import (
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    RequestHeader,
    ResponseCompression,
    ResponseHeader,
    has_body,
    is_upgrade_request,
)
from actorproxy.http.h2 import H2ServerStream

from ._httpcache import HttpCache

if TYPE_CHECKING:
    from actorproxy.http import ServerSide

__all__ = ["RETRY_BUFFER_SIZE", "Session"]

T = TypeVar("T")

# Pingora's retry buffer: request bodies up to 64 KiB can be replayed on a retry.
RETRY_BUFFER_SIZE = 64 * 1024


class Session:
    """One downstream request: its header, its body, and the response written for it."""

    __slots__ = (
        "_cache",
        "_compression",
        "_exits",
        "_retry_buffer",
        "_retry_size",
        "abort_on_close",
        "cache_status",
        "client_addr",
        "downstream",
        "keepalive_timeout",
        "req_header",
        "request_body_timeout",
        "request_id",
        "request_id_header",
        "retries",
        "retry_buffer_truncated",
        "route",
        "server_addr",
        "upstream_addr",
        "upstream_ttfb",
        "wire_start",
    )

    def __init__(
        self,
        downstream: ServerSide,
        req_header: RequestHeader,
        *,
        client_addr: Any = None,
        server_addr: Any = None,
        keepalive_timeout: float | None = DEFAULT_KEEPALIVE_TIMEOUT,
        request_body_timeout: float | None = None,
    ) -> None:
        self.downstream = downstream
        #: Seconds the client may leave between two pieces of the request body; None: no limit.
        self.request_body_timeout = request_body_timeout
        self.req_header = req_header
        self.client_addr = client_addr
        self.server_addr = server_addr
        self.keepalive_timeout = keepalive_timeout
        self._retry_buffer: list[bytes] = []
        self._retry_size = 0
        self.retry_buffer_truncated = False
        self._compression: ResponseCompression | None = None
        self._cache: HttpCache | None = None
        self._exits: list[AbstractContextManager[Any]] | None = None
        #: End the request when the client closes its connection before the response is complete.
        self.abort_on_close = False
        #: The request's id (the service's `request_id_header`), sent upstream and back; None: no ids.
        self.request_id: str | None = None
        self.request_id_header: str | None = None
        #: The route the request took, for logs and metrics (the declared proxy's `service.routes[i]`).
        self.route: str | None = None
        #: The cache's verdict on the request (HIT, MISS, ...), for logs; None: no cache looked.
        self.cache_status: str | None = None
        #: The last upstream tried (its `HttpPeer.address`), the retries made, and seconds to its response
        #: head.
        self.upstream_addr: Any = None
        self.retries = 0
        self.upstream_ttfb: float | None = None
        #: The connection's bytes read and written before this request's head, for its access log line.
        self.wire_start = (0, 0)

    def __repr__(self) -> str:
        return f"<Session {self.req_header.method} {self.req_header.uri} from {self.client_addr}>"

    # -- request -------------------------------------------------------------------------------------------

    def req_header_mut(self) -> RequestHeader:
        """Pingora's name for the mutable request header (the same object as `req_header`)."""
        return self.req_header

    def get_header(self, name: str) -> str | None:
        """The first value of the request field `name` (any case), or None."""
        return self.req_header.headers.get(name)

    def get_header_bytes(self, name: str) -> bytes:
        """The first value of the request field `name` as bytes; empty when absent (Pingora's)."""
        value = self.req_header.headers.get(name)
        return b"" if value is None else value.encode("latin-1")

    def is_body_empty(self) -> bool:
        """The request has no body (no Content-Length above 0, no Transfer-Encoding)."""
        return not has_body(self.req_header)

    def is_body_done(self) -> bool:
        """Pingora's name for `request_body_done`."""
        return self.downstream.body_done

    async def drain_request_body(self) -> None:
        """Read the rest of the request body and drop it (so the connection can carry another request)."""
        while await self.read_request_body() is not None:
            pass

    def enable_retry_buffering(self) -> None:
        """Pingora's switch; here the first `RETRY_BUFFER_SIZE` bytes of a body are always kept."""

    def get_retry_buffer(self) -> bytes | None:
        """What the retry buffer holds of the body, joined; None once it was truncated (Pingora's)."""
        return None if self.retry_buffer_truncated else b"".join(self._retry_buffer)

    def request_summary(self) -> str:
        """`METHOD /path, Host: host`, and the request id when there is one: for logs (what
        `ProxyHttp.request_summary` returns by default)."""
        header = self.req_header
        summary = f"{header.method} {header.uri}, Host: {header.headers.get('host') or ''}"
        if self.request_id is not None:
            summary += f", request id {self.request_id}"
        return summary

    def stamp_response(self, header: ResponseHeader) -> None:
        """Put the request id on a response going to the client (when the service gives requests ids)."""
        if self.request_id_header is not None and self.request_id is not None:
            # Both were checked (the setting is a token, the id matches REQUEST_ID_PATTERN or was made here).
            header.headers.set_valid(self.request_id_header, self.request_id)

    def is_http2(self) -> bool:
        """Whether the client speaks HTTP/2 to the proxy."""
        return isinstance(self.downstream, H2ServerStream)

    @property
    def request_body_done(self) -> bool:
        """The whole request body has been read (true at once for a request without a body)."""
        return self.downstream.body_done

    async def read_request_body(self) -> bytes | None:
        """The next piece of the request body, or None once it has all been read."""
        if self.downstream.body_done:
            return None
        # The client waits for this before sending the body (RFC 9110 §10.1.1); send it on the first read.
        await self.downstream.send_continue()
        waits = False
        try:
            # What is buffered already needs no wait, so no deadline (a cancel scope costs about 5 µs).
            data = self.downstream.read_body_nowait()
        except trio.WouldBlock:
            waits = True  # waited for outside the handler, which would keep the exception while it waits
        if waits:
            data = await self._wait_for_body()
        if data is None:
            return None
        if not self.retry_buffer_truncated:
            if self._retry_size + len(data) <= RETRY_BUFFER_SIZE:
                self._retry_buffer.append(data)
                self._retry_size += len(data)
            else:
                self.retry_buffer_truncated = True
                self._retry_buffer.clear()
        return data

    async def _wait_for_body(self) -> bytes | None:
        """The next piece of the request body, waiting for it within `request_body_timeout`."""
        if self.request_body_timeout is None:
            data = await self.downstream.read_body()
        else:
            with trio.move_on_after(self.request_body_timeout) as scope:
                data = await self.downstream.read_body()
            if scope.cancelled_caught:
                # 408 while no response has started (RFC 9110 §15.5.9); the connection cannot go on.
                self.downstream.set_keepalive(False)
                raise Error(
                    ErrorType.READ_TIMEDOUT,
                    ErrorSource.DOWNSTREAM,
                    context=f"no request body data from the client within {self.request_body_timeout:g} s",
                )
        return data

    def retry_buffer(self) -> list[bytes]:
        """Body pieces read so far (empty once truncated)."""
        return self._retry_buffer

    def set_abort_on_close(self, abort: bool) -> None:
        """Watch the client while the upstream answers, and end the request if it closes (Pingora's name;
        off by default here, see the module rules)."""
        self.abort_on_close = abort

    # -- request-scoped resources --------------------------------------------------------------------------

    def enter_context(self, cm: AbstractContextManager[T]) -> T:
        """Enter `cm` and exit it when this request ends, whatever way it ends; return what it entered.

        `cm` must be synchronous: its exit runs in the engine's `finally`, where a cancelled request cannot
        wait for anything.
        """
        value = cm.__enter__()
        exits = self._exits
        if exits is None:
            exits = self._exits = []
        exits.append(cm)
        return value

    @property
    def has_contexts(self) -> bool:
        """Whether `enter_context` entered anything still to exit."""
        return self._exits is not None

    def exit_contexts(self) -> None:
        """Exit what `enter_context` entered, last first (the engine calls this when the request ends)."""
        exits = self._exits
        if exits is None:
            return
        self._exits = None
        error: BaseException | None = None
        while exits:
            try:
                exits.pop().__exit__(None, None, None)
            except Exception as exc:  # every context still exits; the first failure is raised after
                error = error or exc
        if error is not None:
            raise error

    def is_upgrade_req(self) -> bool:
        """The client asked to switch protocols (WebSocket and the like)."""
        return is_upgrade_request(self.req_header)

    @property
    def request_trailers(self) -> Headers | None:
        return self.downstream.request_trailers

    # -- response ------------------------------------------------------------------------------------------

    @property
    def cache(self) -> HttpCache:
        """This request's HTTP cache (Pingora's `session.cache`): off until `request_cache_filter` calls
        `session.cache.enable(response_cache)`. Made when first used: a request that never touches it pays
        nothing for it."""
        cache = self._cache
        if cache is None:
            cache = self._cache = HttpCache()
        return cache

    @property
    def downstream_compression(self) -> ResponseCompression:
        """This response's compression (Pingora's), off until a level is set: call
        `session.downstream_compression.adjust_level(6)` in a phase before the response head to turn it on.
        It reads the client's `Accept-Encoding` when first used."""
        compression = self._compression
        if compression is None:
            compression = self._compression = ResponseCompression()
            compression.request_filter(self.req_header)
        return compression

    def active_compression(self) -> ResponseCompression | None:
        """The compression context when one was made and may change the response, else None."""
        compression = self._compression
        if compression is None or not compression.is_enabled():
            return None
        return compression

    def response_written(self) -> ResponseHeader | None:
        """The response header already sent downstream, if any."""
        return self.downstream.response_header

    async def write_response_header(self, header: ResponseHeader, end_of_stream: bool = False) -> None:
        """Send a response header (a filter answering by itself)."""
        if self.keepalive_timeout is None:
            self.downstream.set_keepalive(False)
        compression = self.active_compression()
        if compression is not None:
            compression.response_header_filter(header, end_of_stream or self.req_header.method == "HEAD")
        if self.request_id is not None:
            self.stamp_response(header)
        await self.downstream.write_response(header, end=end_of_stream)

    async def write_response_header_ref(self, header: ResponseHeader, end_of_stream: bool = False) -> None:
        """Pingora's name for `write_response_header` when the header is borrowed."""
        await self.write_response_header(header, end_of_stream)

    async def write_continue_response(self) -> None:
        """Send `100 Continue` now, if the client asked for it and nothing was answered yet."""
        await self.downstream.send_continue()

    async def write_response_body(self, data: bytes | None, end_of_stream: bool = False) -> None:
        """Send a piece of the response body (None or b"" sends nothing); `end_of_stream` ends it."""
        compression = self.active_compression()
        if compression is not None:
            for piece in compression.response_body_pieces(data, end_of_stream):
                await self.downstream.write_body(piece)
        elif data:
            await self.downstream.write_body(data)
        if end_of_stream:
            await self.downstream.finish()

    async def write_response_trailers(self, trailers: Headers) -> None:
        await self.downstream.finish(trailers)

    async def respond_error(self, code: int) -> None:
        """Answer with an empty error response of status `code` (no-op if a response already started)."""
        if self.response_written() is not None:
            return
        header = ResponseHeader.build(code)
        header.insert_header("Content-Length", "0")
        header.insert_header("Cache-Control", "private, no-store")
        if not self.downstream.body_done:
            # The rest of the request body was never read: the connection cannot carry another request.
            self.set_keepalive(None)
        await self.write_response_header(header, end_of_stream=True)

    async def respond_error_with_body(self, code: int, body: bytes) -> None:
        """Answer with status `code` and `body` (no-op if a response already started), Pingora's call."""
        if self.response_written() is not None:
            return
        header = ResponseHeader.build(code)
        header.insert_header("Content-Length", str(len(body)))
        header.insert_header("Cache-Control", "private, no-store")
        if not self.downstream.body_done:
            self.set_keepalive(None)
        if self.keepalive_timeout is None:
            self.downstream.set_keepalive(False)
        if self.request_id is not None:
            self.stamp_response(header)
        await self.downstream.write_response(header, body, end=True)

    async def respond_text(self, status: int, text: str, headers: Iterable[tuple[str, str]] = ()) -> None:
        """Answer with `status`, `headers` and a short plain-text body (no-op if a response already started).

        The proxy's own answers (no route, rate limited) use it: `Cache-Control: private, no-store`, no body
        for HEAD, and the connection closes after it if the request body was never read.
        """
        if self.response_written() is not None:
            return
        body = text.encode()
        header = ResponseHeader.build(status)
        for name, value in headers:
            header.insert_header(name, value)
        header.insert_header("Content-Type", "text/plain; charset=utf-8")
        header.insert_header("Content-Length", str(len(body)))
        header.insert_header("Cache-Control", "private, no-store")
        if not self.request_body_done:
            # The rest of the request body was never read: the connection cannot carry another request.
            self.set_keepalive(None)
        if self.req_header.method == "HEAD":
            await self.write_response_header(header, end_of_stream=True)
            return
        await self.write_response_header(header)
        await self.write_response_body(body, end_of_stream=True)

    async def shutdown(self) -> None:
        """Close the downstream connection now (Pingora's `shutdown`); nothing more is sent on it."""
        self.set_keepalive(None)
        await self.downstream.close()

    def set_keepalive(self, timeout: float | None) -> None:
        """Keep the connection open for `timeout` seconds after this response; None closes it."""
        self.keepalive_timeout = timeout
        if timeout is None:
            self.downstream.set_keepalive(False)

    @property
    def body_bytes_read(self) -> int:
        return self.downstream.bytes_read

    @property
    def body_bytes_sent(self) -> int:
        return self.downstream.bytes_written
