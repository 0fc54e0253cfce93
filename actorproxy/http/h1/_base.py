"""What every HTTP/1.1 codec shares: its errors, its I/O boundary, and the side-specific API around a parser.

Rules:
- This is the one place where trio and OS exceptions on a connection's stream become `Error`
  (`raise Error(...) from exc`), for both codecs: `_ServerSide` faces the client (`DOWNSTREAM`), `_ClientSide`
  the upstream (`UPSTREAM`, with per-read and per-write timeouts and Pingora's retry decision).
  `trio.Cancelled` always propagates untouched.
- A peer's protocol violation raises `ProtocolError`, an `Error` with the status to answer the client with:
  the strict checks' status (`_strict.py`: 400, 413, 414, 417, 431, 501, 505) or h11's hint for a bad
  request, 502 for a bad response.
- The server side of every codec runs the strict checks in front of its parser, with the connection's
  `HttpLimits`: a request head is delimited and held to the limits by `HeadScanner`, checked by
  `check_head` and `check_request`, and only then parsed; a chunked request body is held to the chunk rules
  as it is read.
- After an error on the wire (I/O, timeout, protocol, cancellation mid-write) the connection is marked
  failed: it serves no further request and is never reused; the caller closes it.
- A codec subclasses `_H1Connection` with its parser (`_read_body`, `_encode_data`, `_finish`, `detach`) and
  puts `_ServerSide` or `_ClientSide` in front of it; the sides hold no parser state of their own.
- `bytes_read` / `bytes_written` count wire bytes: heads, framing and bodies.
"""

from __future__ import annotations

import contextlib
import ssl

import attrs
import h11
import trio

from actorproxy.config import HttpLimits

from .._error import Error, ErrorSource, ErrorType, RetryType
from .._header import Headers, ResponseHeader

__all__ = ["DEFAULT_MAX_HEAD_SIZE", "DEFAULT_READ_SIZE", "ProtocolError"]

# 64 KiB reads: the buffer size measured best on the trio skeleton (DESIGN, "The request path").
DEFAULT_READ_SIZE = 65536
# Largest response head read from an upstream (a larger one is a 502). h11 defaults to 16 KiB, Pingora allows
# 1 MiB; 64 KiB fits real traffic (many Set-Cookie fields) while bounding memory per connection. Request heads
# from clients have their own limits (`HttpLimits.max_header_bytes`).
DEFAULT_MAX_HEAD_SIZE = 65536

# What a broken or closed transport raises: trio wraps socket and TLS errors in BrokenResourceError;
# ClosedResourceError means the stream was closed under us; plain OSError comes from raw streams.
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


def _server_limits(limits: HttpLimits, max_head_size: int | None) -> HttpLimits:
    """`limits`, with `max_header_bytes` replaced by a server's `max_head_size` argument when one is given."""
    return limits if max_head_size is None else attrs.evolve(limits, max_header_bytes=max_head_size)


class ProtocolError(Error):
    """A peer broke HTTP/1.1.

    Attributes:
        status_hint: the status to answer the client with: for a bad request the strict checks' status or
            h11's hint (400; 413, 414 and 431 over a limit; 417 for an unknown expectation; 501 for an
            unsupported transfer coding; 505 for an unsupported version), 502 for a bad upstream response.
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
    """What both sides of both codecs share: the stream, the failure and body state, close and abort.

    Attributes:
        bytes_read: wire bytes received on this connection.
        bytes_written: wire bytes sent on this connection.
    """

    def __init__(self, stream: trio.abc.Stream, read_size: int) -> None:
        self._stream = stream
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

    # -- provided by the side ----------------------------------------------------------------------------

    async def _receive(self) -> bytes | bytearray:
        raise NotImplementedError

    async def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _smuggling_response(self) -> ProtocolError:
        """A response with both Content-Length and Transfer-Encoding: RFC 9112 §6.3 lets a recipient read
        it by Transfer-Encoding, and says it "ought to be handled as an error": it may be a split or
        smuggled response, so nothing of it is forwarded (502) and the connection is not used again."""
        self._failed = True
        return ProtocolError(
            ErrorType.INVALID_HTTP_HEADER,
            ErrorSource.UPSTREAM,
            status_hint=502,
            context="the upstream's response has both Content-Length and Transfer-Encoding",
        )

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        raise NotImplementedError

    # -- provided by the codec ---------------------------------------------------------------------------

    async def _read_body(self) -> bytes | None:
        raise NotImplementedError

    def _encode_data(self, data: bytes) -> bytes:
        raise NotImplementedError

    async def _finish(self, trailers: Headers | None) -> None:
        raise NotImplementedError

    # -- close -------------------------------------------------------------------------------------------

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


class _ServerSide(_H1Connection):
    """The downstream side's I/O, errors, per-cycle state and keep-alive, whatever parser reads requests."""

    _keepalive: bool  # ours to decide: set_keepalive

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

    # -- the request body ------------------------------------------------------------------------------

    async def read_body(self) -> bytes | None:
        """The next chunk of the request body (never empty), or None at its end.

        A client that sent `Expect: 100-continue` may wait for `send_continue` before sending the body.
        """
        return await self._read_body()

    @property
    def request_trailers(self) -> Headers | None:
        """The trailer fields of a chunked request body, once `read_body` returned None (None if none)."""
        return self._trailers

    # -- the response body -----------------------------------------------------------------------------

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the response body (dropped if the response has no body)."""
        if data and self._body_allowed:
            await self._send(self._encode_data(data))

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


class _ClientSide(_H1Connection):
    """The upstream side's I/O (with timeouts), errors, retry decision and per-exchange state."""

    read_timeout: float | None
    write_timeout: float | None

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

    # -- the request body ------------------------------------------------------------------------------

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the request body."""
        if data:
            await self._send(self._encode_data(data))

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the request; trailers are written only if the body is chunked. A second call does nothing."""
        await self._finish(trailers)

    # -- the response body -----------------------------------------------------------------------------

    async def read_body(self) -> bytes | None:
        """The next chunk of the response body (never empty), or None at its end."""
        return await self._read_body()

    @property
    def response_trailers(self) -> Headers | None:
        """The trailer fields of a chunked response body, once `read_body` returned None (None if none)."""
        return self._trailers
