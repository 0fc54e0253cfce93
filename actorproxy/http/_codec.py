"""HTTP/1.1 over a trio stream: `ServerConnection` faces the client, `ClientConnection` faces the upstream.

Rules:
- h11 is the protocol state machine; this module is the thin I/O adapter around it and the one place where
  h11, trio and OS exceptions become `Error` (`raise Error(...) from exc`). `trio.Cancelled` always
  propagates untouched.
- The interface is messages, never h11 types: `RequestHeader` / `ResponseHeader` heads, body chunks as
  non-empty `bytes` (None marks the end), trailers as `Headers`. A faster parser can replace h11 behind it.
- One stream write per call: a head goes out together with the first body piece and, with `end=True`, the
  end of the message (measured +4-21%, DESIGN "The request path"). Reads are `read_size` bytes (64 KiB).
- Framing follows the headers, as h11 decides it (RFC 9112 §6): Transfer-Encoding: chunked, else
  Content-Length, else (responses to HTTP/1.1 clients) chunked, else (HTTP/1.0) close-delimited. A head
  written with `end=True` and no framing header gets `Content-Length` of its body. A response that has no
  body (to HEAD, 1xx, 204, 304, 2xx to CONNECT) drops body bytes; trailers are dropped unless chunked.
  Responses are always written as HTTP/1.1.
- Requests are checked in front of h11 for what h11 accepts and a proxy must not forward (request
  smuggling): Content-Length together with Transfer-Encoding (RFC 9112 §6.3), Transfer-Encoding on an
  HTTP/1.0 request (RFC 9112 §6.1). An upstream response with both is read (Transfer-Encoding wins) but
  its connection is not reused.
- A peer's protocol violation raises `ProtocolError`, an `Error` with the status to answer the client with:
  h11's hint (400, 431, 501) for a bad request, 502 for a bad response. A violation of our own (an invalid
  header set by a filter, body after the end) is an `INTERNAL` `Error`.
- After an error on the wire (I/O, timeout, protocol, cancellation mid-write) the connection serves no
  further request and is never reused; the caller closes it. A head refused before anything was sent
  (an invalid header) leaves the connection as it was, so the caller can still answer 500.
- Keep-alive is HTTP/1.1's: a `Connection: close` on either side, or HTTP/1.0, ends the connection after
  the exchange (h11 does not do HTTP/1.0 keep-alive).
- `bytes_read` / `bytes_written` count wire bytes: heads, framing and bodies.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Iterable
from typing import Any, cast

import h11
import trio

from ._error import Error, ErrorSource, ErrorType, RetryType
from ._header import Headers, RequestHeader, ResponseHeader

__all__ = [
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "ClientConnection",
    "ProtocolError",
    "ServerConnection",
]

# 64 KiB reads: the buffer size measured best on the trio skeleton (DESIGN, "The request path").
DEFAULT_READ_SIZE = 65536
# Largest head buffered before answering 431. h11 defaults to 16 KiB, Pingora allows 1 MiB; 64 KiB fits
# real traffic (large cookies and tokens) while bounding memory per connection.
DEFAULT_MAX_HEAD_SIZE = 65536

# What a broken or closed transport raises: trio wraps socket and TLS errors in BrokenResourceError;
# ClosedResourceError means the stream was closed under us; plain OSError comes from raw streams.
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)
# What building an h11 event from our heads raises for a bad name, value, method or target.
_HEAD_ERRORS = (h11.LocalProtocolError, UnicodeEncodeError)


class ProtocolError(Error):
    """A peer broke HTTP/1.1.

    Attributes:
        status_hint: the status to answer the client with: h11's hint for a bad request (400, 431 for a head
            over `max_head_size`, 501 for an unsupported transfer coding), 502 for a bad upstream response.
    """

    def __init__(
        self,
        etype: ErrorType,
        source: ErrorSource,
        *,
        status_hint: int,
        context: str,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(etype, source, context=context, cause=cause)
        self.status_hint = status_hint


class _H1Connection:
    """What both sides share: the h11 state machine, the event loop over the stream, detach and close.

    Attributes:
        bytes_read: wire bytes received on this connection.
        bytes_written: wire bytes sent on this connection.
    """

    def __init__(self, stream: trio.abc.Stream, conn: h11.Connection, read_size: int) -> None:
        self._stream = stream
        self._h11 = conn
        self._read_size = read_size
        self._failed = False  # an error happened: no further exchange on this connection
        self._eof = False  # the peer closed its side
        self._detached = False
        self._in_body = False  # a body is being read: read_body may return data
        self._chunked = False  # the message we are writing is chunked (may carry trailers)
        self._trailers: Headers | None = None
        self.bytes_read = 0
        self.bytes_written = 0

    @property
    def body_done(self) -> bool:
        """The current message's body has been read to its end (at once for a message without a body)."""
        return not self._in_body

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying stream (for a pool's idle watch); reading or writing it directly breaks framing."""
        return self._stream

    # -- I/O, specialised by each side -----------------------------------------------------------------

    async def _receive(self) -> bytes | bytearray:
        raise NotImplementedError

    async def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        raise NotImplementedError

    # -- shared machinery ------------------------------------------------------------------------------

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        conn = self._h11
        while True:
            try:
                event = conn.next_event()
            except h11.ProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is not h11.NEED_DATA:
                return event
            # h11 takes any bytes-like object (its docstring), though it annotates `bytes`.
            conn.receive_data(cast(bytes, await self._receive()))

    def _encode(self, events: Iterable[h11.Event]) -> bytes:
        send = self._h11.send_with_data_passthrough
        parts: list[bytes] = []
        try:
            for event in events:
                parts += send(event) or ()
        except h11.LocalProtocolError as exc:
            self._failed = True
            raise Error(ErrorType.H1_ERROR, ErrorSource.INTERNAL, context=str(exc), cause=exc) from exc
        # A single part (a Content-Length body chunk) is returned as is by join, without a copy.
        return b"".join(parts)

    def _raw_headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        try:
            return headers.raw()
        except UnicodeEncodeError as exc:
            raise Error(
                ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context="header not latin-1", cause=exc
            ) from exc

    def _end_of_message(self, trailers: Headers | None) -> h11.EndOfMessage:
        if not trailers or not self._chunked:
            return h11.EndOfMessage()
        try:
            return h11.EndOfMessage(headers=trailers.raw())
        except _HEAD_ERRORS as exc:
            raise Error(
                ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context=str(exc), cause=exc
            ) from exc

    async def _take_empty_body(self) -> None:
        # h11 yields the end of an empty body without reading anything. Taking it with the head spares
        # the caller a read_body for every GET and lets the cycle complete without one.
        event = await self._next_event()
        if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            self._in_body = False
        else:  # h11 never yields anything else here; refuse to lose it silently
            raise Error.explain(ErrorType.H1_ERROR, f"unexpected {event!r}", ErrorSource.INTERNAL)

    async def _read_body(self) -> bytes | None:
        while self._in_body:
            data = self._body_event(await self._next_event())
            if data:
                return data
        return None

    def read_body_nowait(self) -> bytes | None:
        """The next body piece if it is already buffered, or None at the end of the body.

        Lets a caller send a head together with the body that arrived with it, in one write.

        Raises:
            trio.WouldBlock: nothing is buffered; `read_body` would wait for the peer.
        """
        while self._in_body:
            try:
                event = self._h11.next_event()
            except h11.ProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is h11.NEED_DATA:
                raise trio.WouldBlock
            data = self._body_event(event)
            if data:
                return data
        return None

    def _body_event(self, event: Any) -> bytes | None:
        if isinstance(event, h11.Data):
            return bytes(event.data) if event.data else None
        # EndOfMessage, or PAUSED after a switch of protocols (101, CONNECT): no more body.
        self._in_body = False
        if isinstance(event, h11.EndOfMessage) and event.headers:
            self._trailers = Headers.from_raw(event.headers.raw_items())
        return None

    async def _finish(self, trailers: Headers | None) -> None:
        state = self._h11.our_state
        if state is h11.DONE or state is h11.MUST_CLOSE or state is h11.SWITCHED_PROTOCOL:
            return  # already ended: finishing twice is harmless, as in Pingora
        data = self._encode((self._end_of_message(trailers),))
        if data:  # the end of a Content-Length body is no bytes at all
            await self._send(data)

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        """Give up the stream, for a raw tunnel after a 101 or a CONNECT.

        Returns:
            The stream, and the bytes already read from it that belong to the tunnel.
        """
        self._detached = True
        leftover, _closed = self._h11.trailing_data
        return self._stream, leftover

    async def close(self) -> None:
        """Close the stream gracefully (a TLS close_notify, if any); a detached stream is left alone."""
        if self._detached:
            return
        # The peer may be gone already; trio's aclose releases the stream whatever it raises.
        with contextlib.suppress(*_IO_ERRORS):
            await self._stream.aclose()

    async def abort(self) -> None:
        """Close the stream at once, without a graceful shutdown; a detached stream is left alone."""
        if self._detached:
            return
        with contextlib.suppress(*_IO_ERRORS):
            await trio.aclose_forcefully(self._stream)


class ServerConnection(_H1Connection):
    """The downstream side of one client connection: read requests, write responses.

    One request/response cycle at a time: `read_request`, `read_body` until None, `write_response`,
    `write_body`, `finish`, then `start_next_cycle` to keep the connection alive (or close it).

    Args:
        stream: the accepted connection.
        read_size: bytes per read.
        max_head_size: largest request head accepted; a larger one raises `ProtocolError` with hint 431.

    Attributes:
        expects_continue: the request carried `Expect: 100-continue` (HTTP/1.1) and has a body; the client
            may wait for `send_continue` before sending it.
        upgrade_requested: the request asks to switch protocols: an `Upgrade` header on HTTP/1.1 (Pingora's
            `is_upgrade_req`), or CONNECT.
        response_started: a final response head (or a 101) has been written, so no other response can be.
        response_header: that head, as given to `write_response`.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    ) -> None:
        super().__init__(
            stream, h11.Connection(h11.SERVER, max_incomplete_event_size=max_head_size), read_size
        )
        self._keepalive = True  # ours to decide: set_keepalive
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._method: str | None = None  # of the request being served; None until its head is read
        self._version: str | None = None
        self._peer_keepalive = True  # the request allows another one after it
        self._body_allowed = True  # the response being written may have a body
        self._continue_sent = False
        self._in_body = False
        self._chunked = False
        self._trailers = None
        self.expects_continue = False
        self.upgrade_requested = False
        self.response_started = False
        self.response_header: ResponseHeader | None = None

    # -- I/O -------------------------------------------------------------------------------------------

    async def _receive(self) -> bytes | bytearray:
        try:
            data = await self._stream.receive_some(self._read_size)
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.READ_ERROR,
                ErrorSource.DOWNSTREAM,
                context="while reading from the client",
                cause=exc,
            ) from exc
        if not data:
            self._eof = True
        self.bytes_read += len(data)
        return data

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.WRITE_ERROR,
                ErrorSource.DOWNSTREAM,
                context="while writing to the client",
                cause=exc,
            ) from exc
        except BaseException:
            self._failed = True  # cancelled mid-write: part of the data may be on the wire
            raise
        self.bytes_written += len(data)

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        if self._eof:
            return Error(
                ErrorType.CONNECTION_CLOSED,
                ErrorSource.DOWNSTREAM,
                context="the client closed the connection in the middle of a request",
                cause=exc,
            )
        etype = ErrorType.INVALID_HTTP_HEADER if self._method is None else ErrorType.H1_ERROR
        return ProtocolError(
            etype, ErrorSource.DOWNSTREAM, status_hint=exc.error_status_hint, context=str(exc), cause=exc
        )

    # -- reading the request ---------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        """Read the next request head.

        Returns:
            The head, or None when the client closed the connection cleanly before starting a request.

        Raises:
            ProtocolError: a malformed or refused head (`status_hint` says what to answer).
            Error: `CONNECTION_CLOSED` if the client closed mid-head, `READ_ERROR` on a transport failure.
        """
        if self._h11.their_state is not h11.IDLE:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "read_request before start_next_cycle", ErrorSource.INTERNAL
            )
        event = await self._next_event()
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # unreachable from IDLE, whatever the client sends
            raise Error.explain(ErrorType.H1_ERROR, f"unexpected {event!r}", ErrorSource.INTERNAL)
        request = RequestHeader(
            event.method.decode("latin-1"),
            event.target.decode("latin-1"),
            Headers.from_raw(event.headers.raw_items()),
            event.http_version.decode("latin-1"),
        )
        self._method = request.method
        self._version = request.version
        self._in_body = True
        self._check_request(request)
        headers = request.headers
        if "transfer-encoding" not in headers and headers.get("content-length", "0") == "0":
            await self._take_empty_body()
        http11 = request.version == "1.1"
        self._peer_keepalive = http11 and not _has_token(headers, "connection", "close")
        self.expects_continue = http11 and self._in_body and _has_token(headers, "expect", "100-continue")
        self.upgrade_requested = request.method == "CONNECT" or (http11 and "upgrade" in headers)
        return request

    def _check_request(self, request: RequestHeader) -> None:
        headers = request.headers
        if "transfer-encoding" not in headers:
            return
        if "content-length" in headers:
            reason = "both Content-Length and Transfer-Encoding (RFC 9112 §6.3)"
        elif request.version != "1.1":
            reason = f"Transfer-Encoding in an HTTP/{request.version} request (RFC 9112 §6.1)"
        else:
            return
        self._failed = True
        raise ProtocolError(
            ErrorType.INVALID_HTTP_HEADER, ErrorSource.DOWNSTREAM, status_hint=400, context=reason
        )

    async def read_body(self) -> bytes | None:
        """The next chunk of the request body (never empty), or None at its end.

        A client that sent `Expect: 100-continue` may wait for `send_continue` before sending the body.
        """
        return await self._read_body()

    @property
    def request_trailers(self) -> Headers | None:
        """The trailer fields of a chunked request body, once `read_body` returned None (None if none)."""
        return self._trailers

    # -- writing the response --------------------------------------------------------------------------

    async def send_continue(self) -> None:
        """Write `100 Continue` if the client asked for it and no response has been written yet."""
        if not self.expects_continue or self._continue_sent or self.response_started:
            return
        self._continue_sent = True
        await self._send(
            self._encode((h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"),))
        )

    async def write_response(self, header: ResponseHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a response head, with the first piece of the body, in one write.

        A 1xx head is informational (a 101 switches protocols: `detach` next); it has no body and no end.

        Args:
            header: the head to write; it is not modified (`Connection: close` and `Content-Length` are
                added on the wire only).
            body: the first piece of the body.
            end: the body is complete: end the message too.

        Raises:
            Error: `WRITE_ERROR` if the client is gone; `INTERNAL` for a head h11 refuses to write.
        """
        status = header.status
        _check_status_line(header)
        raw = self._raw_headers(header.headers)
        if status < 200:
            data = self._encode((self._head_event(h11.InformationalResponse, header, raw),))
            if status == 101:
                self.response_started = True
                self.response_header = header
                self._body_allowed = False
            await self._send(data)
            return
        headers = header.headers
        method = self._method
        tunnel = method == "CONNECT" and status < 300  # RFC 9110 §9.3.6: the connection becomes a tunnel
        body_allowed = not (status in (204, 304) or method == "HEAD" or tunnel)
        if not self.keepalive:
            raw = [field for field in raw if field[0].lower() != b"connection"]
            raw.append((b"Connection", b"close"))
        framed = "content-length" in headers or "transfer-encoding" in headers
        if end and body_allowed and not framed:
            raw.append((b"Content-Length", str(len(body)).encode("ascii")))
            framed = True
        self._chunked = (
            body_allowed and self._version == "1.1" and ("transfer-encoding" in headers or not framed)
        )
        events: list[h11.Event] = [self._head_event(h11.Response, header, raw)]
        if body and body_allowed:
            events.append(h11.Data(data=body))
        if end and not tunnel:
            events.append(h11.EndOfMessage())
        data = self._encode(events)
        # Started before the write: if it fails, part of the head may be out and no other response may follow.
        self.response_started = True
        self.response_header = header
        self._body_allowed = body_allowed
        if _has_token(headers, "connection", "close"):
            self._keepalive = False
        await self._send(data)

    def _head_event(
        self,
        kind: type[h11.Response | h11.InformationalResponse],
        header: ResponseHeader,
        raw: list[tuple[bytes, bytes]],
    ) -> h11.Response | h11.InformationalResponse:
        try:
            return kind(status_code=header.status, headers=raw, reason=header.reason.encode("latin-1"))
        except _HEAD_ERRORS as exc:
            raise Error(
                ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context=str(exc), cause=exc
            ) from exc

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the response body (dropped if the response has no body)."""
        if data and self._body_allowed:
            await self._send(self._encode((h11.Data(data=data),)))

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the response; trailers are written only if the body is chunked. A second call does nothing."""
        await self._finish(trailers)

    # -- keep-alive ------------------------------------------------------------------------------------

    @property
    def keepalive(self) -> bool:
        """Whether the connection may serve another request after this one."""
        return self._keepalive and self._peer_keepalive and not self._failed and not self._detached

    def set_keepalive(self, enabled: bool) -> None:
        """Allow or refuse another request; refusing adds `Connection: close` to a response not yet sent."""
        self._keepalive = enabled

    def next_request_ready(self) -> bool:
        """Whether the request and its response are both complete and the connection may serve another."""
        conn = self._h11
        return self.keepalive and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `next_request_ready`; False means the caller closes."""
        if not self.next_request_ready():
            return False
        self._h11.start_next_cycle()
        self._reset_cycle()
        return True

    def __repr__(self) -> str:
        return (
            f"<ServerConnection client={self._h11.their_state} server={self._h11.our_state}"
            f" keepalive={self.keepalive} read={self.bytes_read} written={self.bytes_written}>"
        )


class ClientConnection(_H1Connection):
    """The upstream side of one connection to a peer: write requests, read responses.

    One exchange at a time: `write_request`, `write_body`, `finish`, `read_response`, `read_body` until
    None, then `start_next_cycle` if `reusable` (the pool's decision) or close.

    Args:
        stream: the connection to the upstream.
        read_size: bytes per read.
        max_head_size: largest response head accepted.
        read_timeout: seconds each single read may take; None waits forever.
        write_timeout: seconds each single write may take; None waits forever.

    Attributes:
        read_timeout, write_timeout: as above; a pool may change them per peer between exchanges.
        informational: the 1xx responses (other than 101) of the current exchange, in order.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> None:
        super().__init__(
            stream, h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size), read_size
        )
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._method: str | None = None
        self._request_start = self.bytes_read  # response bytes arrived once bytes_read moves past it
        self._must_close = False
        self._in_body = False
        self._chunked = False
        self._trailers = None
        self.informational: list[ResponseHeader] = []

    # -- I/O -------------------------------------------------------------------------------------------

    def _retry(self, exc: BaseException | None) -> RetryType:
        """The retry decision for a transport failure (`exc`, or None for EOF), as Pingora makes it.

        Retryable on a reused connection only when no byte of the response arrived and the failure is
        plain EOF or an OS error: the upstream probably closed the pooled connection meanwhile. A TLS error
        is not retried.
        """
        if self.bytes_read != self._request_start:
            return RetryType.NEVER
        if exc is None:
            return RetryType.REUSED_ONLY
        root = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
        if isinstance(root, OSError) and not isinstance(root, ssl.SSLError):
            return RetryType.REUSED_ONLY
        return RetryType.NEVER

    async def _receive(self) -> bytes | bytearray:
        try:
            if self.read_timeout is None:
                data = await self._stream.receive_some(self._read_size)
            else:
                with trio.move_on_after(self.read_timeout) as scope:
                    data = await self._stream.receive_some(self._read_size)
                if scope.cancelled_caught:
                    self._failed = True
                    raise Error(
                        ErrorType.READ_TIMEDOUT,
                        ErrorSource.UPSTREAM,
                        context=f"no data from the upstream within {self.read_timeout:g} s",
                    )
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.READ_ERROR,
                ErrorSource.UPSTREAM,
                context="while reading from the upstream",
                cause=exc,
                retry=self._retry(exc),
            ) from exc
        if not data:
            self._eof = True
        self.bytes_read += len(data)
        return data

    async def _send(self, data: bytes) -> None:
        try:
            if self.write_timeout is None:
                await self._stream.send_all(data)
            else:
                with trio.move_on_after(self.write_timeout) as scope:
                    await self._stream.send_all(data)
                if scope.cancelled_caught:
                    raise Error(
                        ErrorType.WRITE_TIMEDOUT,
                        ErrorSource.UPSTREAM,
                        context=f"the upstream took no data for {self.write_timeout:g} s",
                    )
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.WRITE_ERROR,
                ErrorSource.UPSTREAM,
                context="while writing to the upstream",
                cause=exc,
                retry=self._retry(exc),
            ) from exc
        except BaseException:
            self._failed = True  # timed out or cancelled mid-write: part of the data may be on the wire
            raise
        self.bytes_written += len(data)

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        if self._eof:
            return Error(
                ErrorType.CONNECTION_CLOSED,
                ErrorSource.UPSTREAM,
                context="the upstream closed the connection before the response was complete",
                cause=exc,
                retry=self._retry(None),
            )
        etype = ErrorType.H1_ERROR if self._in_body else ErrorType.INVALID_HTTP_HEADER
        return ProtocolError(etype, ErrorSource.UPSTREAM, status_hint=502, context=str(exc), cause=exc)

    # -- writing the request ---------------------------------------------------------------------------

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a request head, with the first piece of the body, in one write.

        The headers decide the framing: a request with a body needs Content-Length or
        Transfer-Encoding: chunked, except with `end=True`, where a missing Content-Length is added.
        Requests are always written as HTTP/1.1 (h11 requires a Host header).

        Raises:
            Error: `WRITE_ERROR` / `WRITE_TIMEDOUT` from the upstream; `INTERNAL` for a head h11 refuses.
        """
        self._reset_exchange()
        self._method = header.method
        headers = header.headers
        raw = self._raw_headers(headers)
        self._chunked = "transfer-encoding" in headers
        if end and body and not self._chunked and "content-length" not in headers:
            raw.append((b"Content-Length", str(len(body)).encode("ascii")))
        try:
            request = h11.Request(method=header.method, target=header.uri, headers=raw)
        except _HEAD_ERRORS as exc:
            raise Error(
                ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context=str(exc), cause=exc
            ) from exc
        events: list[h11.Event] = [request]
        if body:
            events.append(h11.Data(data=body))
        if end:
            events.append(h11.EndOfMessage())
        await self._send(self._encode(events))

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the request body."""
        if data:
            await self._send(self._encode((h11.Data(data=data),)))

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the request; trailers are written only if the body is chunked. A second call does nothing."""
        await self._finish(trailers)

    # -- reading the response --------------------------------------------------------------------------

    async def read_response(self, *, skip_informational: bool = True) -> ResponseHeader:
        """Read the response head.

        Args:
            skip_informational: collect 1xx responses (other than 101) in `informational` and return the
                final one; False returns each 1xx as it comes (to relay a 100 Continue, say).

        Returns:
            The final response, or a 101 (protocols switched: `detach` next).

        Raises:
            ProtocolError: an invalid response (`status_hint` 502).
            Error: `CONNECTION_CLOSED` / `READ_ERROR` (retryable on a reused connection if no response byte
                arrived), `READ_TIMEDOUT`.
        """
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                response = _response_header(event)
                headers = response.headers
                chunked = "transfer-encoding" in headers
                if chunked and "content-length" in headers:
                    self._must_close = True  # RFC 9112 §6.3: possible smuggling, do not reuse
                self._in_body = True
                method = self._method
                if (
                    response.status in (204, 304)
                    or method == "HEAD"
                    or (method == "CONNECT" and response.status < 300)
                    or (not chunked and headers.get("content-length") == "0")
                ):
                    await self._take_empty_body()
                return response
            if isinstance(event, h11.InformationalResponse):
                response = _response_header(event)
                if response.status == 101:
                    return response
                self.informational.append(response)
                if not skip_informational:
                    return response
                continue
            raise Error.explain(
                ErrorType.H1_ERROR, f"no response expected now ({event!r})", ErrorSource.INTERNAL
            )

    async def read_body(self) -> bytes | None:
        """The next chunk of the response body (never empty), or None at its end."""
        return await self._read_body()

    @property
    def response_trailers(self) -> Headers | None:
        """The trailer fields of a chunked response body, once `read_body` returned None (None if none)."""
        return self._trailers

    # -- reuse -----------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Whether the exchange completed cleanly and the connection can carry another request."""
        conn = self._h11
        if (
            self._failed
            or self._detached
            or self._must_close
            or conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
        ):
            return False
        # Bytes past the response (or an EOF) make the next response ambiguous: Pingora refuses reuse too.
        leftover, closed = conn.trailing_data
        return not leftover and not closed

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `reusable`; False means the caller closes."""
        if not self.reusable:
            return False
        self._h11.start_next_cycle()
        self._reset_exchange()
        return True

    def __repr__(self) -> str:
        return (
            f"<ClientConnection client={self._h11.our_state} server={self._h11.their_state}"
            f" reusable={self.reusable} read={self.bytes_read} written={self.bytes_written}>"
        )


def _response_header(event: h11.Response | h11.InformationalResponse) -> ResponseHeader:
    return ResponseHeader(
        event.status_code,
        Headers.from_raw(event.headers.raw_items()),
        reason=event.reason.decode("latin-1"),
        version=event.http_version.decode("latin-1"),
    )


def _has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether a comma-separated header (Connection, Expect) lists `token` (lowercase), in any case."""
    for value in headers.get_all(name):
        for item in value.split(","):
            if item.strip().lower() == token:
                return True
    return False


def _check_status_line(header: ResponseHeader) -> None:
    # h11 writes the reason phrase unchecked, so a CR or LF in it would split the response.
    reason = header.reason
    if not 100 <= header.status <= 999 or "\r" in reason or "\n" in reason or "\0" in reason:
        raise Error.explain(
            ErrorType.INVALID_HTTP_HEADER,
            f"invalid status line: {header.status} {reason!r}",
            ErrorSource.INTERNAL,
        )
