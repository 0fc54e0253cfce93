"""What every HTTP/1.1 codec shares: its errors, its I/O boundary, and the side-specific API around a parser.

Rules:
- The I/O boundary is here, for both sides of both codecs: `_receive` and `_send` are the only places a
  connection's stream is read or written, and `_io_error` the one translation of what a transport raises
  (`_IO_ERRORS`) into `Error` (`raise Error(...) from exc`): `READ_ERROR` or `WRITE_ERROR`, from the peer's
  side (`DOWNSTREAM` on the server side, `UPSTREAM` on the client side, with Pingora's retry decision).
  The client side's per-read and per-write timeouts are decided there too. `trio.Cancelled` and every
  other `BaseException` propagate untouched.
- Try the syscall first: on a stream that has them (`SocketStream`'s `receive_some_nowait`,
  `send_some_nowait`), a read or write first goes without waiting, and only what must wait enters the
  timeout's cancel scope (about 5 µs to enter and leave one; a loaded proxy's writes and many of its reads
  never wait). The timeout still bounds every wait: a read or write that does not wait cannot time out.
  The first read after a request went upstream yields first (a checkpoint: the stream's own when it has
  one), then tries, and waits for readability only if the answer is not there yet: the peer needs a
  round trip, and under load the other connections' turns take longer, so the answer has usually come
  (`benchmarks/README.md`): a wait costs an `epoll_ctl` and trio's registration of the socket, which the
  checkpoint does not. A stream without the twins waits for readability first. A stream that bounds its
  own reads (`SocketStream.receive_some_within`, which arms the
  service's `Deadlines`: no cancel scope per read) is given the read timeout itself.
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
  puts `_ServerBase` or `_ClientBase` in front of it; the sides hold no parser state of their own. Together
  they have exactly the members of `ServerSide` / `ClientSide` (`_protocols.py`), where they are documented.
- `bytes_read` / `bytes_written` count wire bytes: heads, framing and bodies.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import attrs
import h11
import trio

from actorproxy.config import HttpLimits

from .._error import Error, ErrorSource, ErrorType, RetryType
from .._header import Headers, ResponseHeader

__all__ = ["DEFAULT_MAX_HEAD_SIZE", "DEFAULT_READ_SIZE", "ProtocolError"]

# 64 KiB reads: the buffer size measured best on the trio skeleton.
DEFAULT_READ_SIZE = 65536
# Largest response head read from an upstream (a larger one is a 502). h11 defaults to 16 KiB, Pingora allows
# 1 MiB; 64 KiB fits real traffic (many Set-Cookie fields) while bounding memory per connection. Request heads
# from clients have their own limits (`HttpLimits.max_header_bytes`).
DEFAULT_MAX_HEAD_SIZE = 65536

# What a broken or closed transport raises: trio wraps socket and TLS errors in BrokenResourceError;
# ClosedResourceError means the stream was closed under us; plain OSError comes from raw streams. Nothing else
# is translated: `trio.Cancelled` is not an Exception, and our own errors pass as they are.
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


@attrs.frozen
class _Operation:
    """A row of the I/O boundary's table: what a failed read or write of the stream becomes."""

    failed: ErrorType  # one of `_IO_ERRORS` was raised
    failed_context: str  # that error's context, before the peer's name
    timed_out: ErrorType  # the side's timeout ran out first
    timed_out_context: str  # that error's context, with {peer} and {timeout}


# The I/O boundary's table, one row per direction.
_READING: Final = _Operation(
    ErrorType.READ_ERROR,
    "while reading from",
    ErrorType.READ_TIMEDOUT,
    "no data from {peer} within {timeout:g} s",
)
_WRITING: Final = _Operation(
    ErrorType.WRITE_ERROR,
    "while writing to",
    ErrorType.WRITE_TIMEDOUT,
    "{peer} took no data for {timeout:g} s",
)


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


# `SocketStream.receive_some_nowait` and `send_some_nowait`, called with their stream.
_ReceiveNow = Callable[[Any, int], bytes]
_SendNow = Callable[[Any, bytes], int]


class _ReceiveWithin(Protocol):
    """`SocketStream.receive_some_within`, called with its stream: a read that waits at most `timeout`
    seconds (TooSlowError)."""

    def __call__(
        self, stream: Any, max_bytes: int | None, timeout: float | None, *, readable_first: bool = False
    ) -> Awaitable[bytes]: ...


# The slots of every connection (see `_H1Connection`), by what keeps them.
_IO_SLOTS = (
    "_answer_due",
    "_read_size",
    "_read_timeout",
    "_receive_now",
    "_receive_within",
    "_send_now",
    "_stream",
    "_write_timeout",
    "bytes_read",
    "bytes_written",
)
_MESSAGE_SLOTS = ("_chunked", "_detached", "_eof", "_failed", "_in_body", "_method", "_trailers")
# The server side's own state; the client side's, and the sides' public attributes, are in the concrete
# classes' slots (here, each side would show the other's, which `ServerSide` / `ClientSide` do not name).
_SERVER_SLOTS = (
    "_body_allowed",
    "_continue_sent",
    "_keepalive",
    "_peer_keepalive",
    "_scanner",
    "_their_version",
    "_version",
)
_HTTPTOOLS_SLOTS = (
    "_buf",
    "_connect_proposed",
    "_fields",
    "_keep_alive",
    "_max_head_size",
    "_our",
    "_pos",
    "_rdiscard",
    "_rfields",
    "_rframing",
    "_rleft",
    "_rlength",
    "_rtotal",
    "_rtrailer",
    "_scanned",
    "_strict",
    "_their",
    "_upgrade_proposed",
    "_wframing",
    "_wleft",
)


class _H1Connection:
    """What both sides of both codecs share: the stream and the I/O boundary, the failure and body state,
    reading a body, finishing a message, close and abort.

    The private state of both sides and of the httptools codec is in slots, all declared here (two bases
    with slots of their own cannot be combined, and the sides and codecs combine): as an instance dict its
    55 attributes, more than CPython shares between instances, took 1.7 KB of every connection, idle ones
    included; a side has a few slots it does not use (8 bytes each). The sides' public attributes, and the
    h11 codec's own state, stay in a dict.
    """

    __slots__ = (*_IO_SLOTS, *_MESSAGE_SLOTS, *_SERVER_SLOTS, *_HTTPTOOLS_SLOTS)

    _source: ErrorSource  # the side the peer is on
    _peer: str  # the peer, as error contexts name it

    def __init__(self, stream: trio.abc.Stream, read_size: int) -> None:
        # Seconds a single read or write of the stream may take (the client side's `read_timeout` and
        # `write_timeout`); None waits forever, as the server side does.
        self._read_timeout: float | None = None
        self._write_timeout: float | None = None
        self._stream = stream
        self._read_size = read_size
        # The stream's twins that never wait, when it has them (see the module rules), and its read with a
        # timeout of its own (and the choice to wait for readability first): its class's functions, called
        # with the stream, as a bound method would be one more object (64 bytes) for every connection.
        stream_type = type(stream)
        self._receive_now: _ReceiveNow | None = getattr(stream_type, "receive_some_nowait", None)
        self._send_now: _SendNow | None = getattr(stream_type, "send_some_nowait", None)
        self._receive_within: _ReceiveWithin | None = getattr(stream_type, "receive_some_within", None)
        # Whether the next read follows a request just sent (a turn for the others before it tries).
        self._answer_due = False
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
        return not self._in_body

    @property
    def stream(self) -> trio.abc.Stream:
        return self._stream

    # -- the I/O boundary --------------------------------------------------------------------------------

    async def _receive(self) -> bytes | bytearray:
        """The next bytes from the stream (empty at its end), counted."""
        data: bytes | bytearray | None = None
        receive_now = self._receive_now
        answer_due = self._answer_due
        if answer_due:
            # The first read after a request went upstream (see the module rules): a turn for the other
            # tasks first, then a try.
            self._answer_due = False
            if receive_now is not None:
                await getattr(self._stream, "checkpoint", trio.lowlevel.checkpoint)()
        if receive_now is not None:
            try:
                data = receive_now(self._stream, self._read_size)
            except trio.WouldBlock:
                pass
            except _IO_ERRORS as exc:
                raise self._io_error(_READING, exc) from exc
        if data is None:
            data = await self._wait_and_receive(answer_due)
        if not data:
            self._eof = True
        self.bytes_read += len(data)
        return data

    async def _wait_and_receive(self, readable_first: bool) -> bytes | bytearray:
        """A read that may wait, within the read timeout: armed in the stream's deadlines when it has them
        and no other task uses the stream (`_sharing_stream`), else in a cancel scope."""
        timeout = self._read_timeout
        within = self._receive_within
        size = self._read_size
        try:
            if timeout is None:
                if within is not None:
                    return await within(self._stream, size, None, readable_first=readable_first)
                return await self._stream.receive_some(size)
            if within is not None and not self._sharing_stream():
                try:
                    return await within(self._stream, size, timeout, readable_first=readable_first)
                except trio.TooSlowError:
                    raise self._timeout_error(_READING, timeout) from None
            with trio.move_on_after(timeout):
                if within is not None:
                    return await within(self._stream, size, None, readable_first=readable_first)
                return await self._stream.receive_some(size)
        except _IO_ERRORS as exc:
            raise self._io_error(_READING, exc) from exc
        raise self._timeout_error(_READING, timeout)

    def _sharing_stream(self) -> bool:
        """Whether another task may use the stream while this side reads (the client side's request body
        pump): a read's timeout then takes a cancel scope, as ending it through its socket would end the
        other task's operation too (see `proxy._deadlines`)."""
        return False

    def _receive_nowait(self) -> bytes | bytearray:
        """The next bytes from the stream if they can be had without waiting (empty at its end), counted.

        Raises:
            trio.WouldBlock: the read would wait (or the stream cannot read without waiting).
        """
        receive_now = self._receive_now
        if receive_now is None:
            raise trio.WouldBlock
        try:
            data = receive_now(self._stream, self._read_size)
        except _IO_ERRORS as exc:
            raise self._io_error(_READING, exc) from exc
        if not data:
            self._eof = True
        self.bytes_read += len(data)
        return data

    async def _send(self, data: bytes) -> None:
        """Write `data` to the stream, counted."""
        try:
            send_now = self._send_now
            sent = 0 if send_now is None else send_now(self._stream, data)
            if sent < len(data):
                await self._wait_and_send(memoryview(data)[sent:] if sent else data)
        except _IO_ERRORS as exc:
            raise self._io_error(_WRITING, exc) from exc
        except BaseException:
            self._failed = True  # cancelled mid-write: part of the data may be on the wire
            raise
        self.bytes_written += len(data)

    async def _wait_and_send(self, data: bytes | memoryview) -> None:
        """A write that may wait, within the write timeout."""
        timeout = self._write_timeout
        if timeout is None:
            await self._stream.send_all(data)
            return
        with trio.move_on_after(timeout):
            await self._stream.send_all(data)
            return
        raise self._timeout_error(_WRITING, timeout)

    def _io_error(self, operation: _Operation, exc: BaseException) -> Error:
        """The one translation at the I/O boundary: `exc`, one of `_IO_ERRORS` raised while reading or
        writing the stream, as our `Error` from the peer's side, caused by `exc`. The connection is failed:
        the transport may have cut a message anywhere."""
        self._failed = True
        context = f"{operation.failed_context} {self._peer}"
        return Error(operation.failed, self._source, context=context, cause=exc, retry=self._retry(exc))

    def _timeout_error(self, operation: _Operation, timeout: float) -> Error:
        """The read or write ran out of time: part of a message may be unread or on the wire."""
        self._failed = True
        context = operation.timed_out_context.format(peer=self._peer, timeout=timeout)
        return Error(operation.timed_out, self._source, context=context)

    def _retry(self, exc: BaseException | None) -> RetryType:
        """The retry decision for a transport failure (`exc`, or None for EOF): a client's request is never
        retried by the proxy."""
        return RetryType.NEVER

    # -- provided by the side ----------------------------------------------------------------------------

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

    # -- bodies and the end of a message -----------------------------------------------------------------

    async def read_body(self) -> bytes | None:
        return await self._read_body()

    async def finish(self, trailers: Headers | None = None) -> None:
        await self._finish(trailers)

    # -- close -------------------------------------------------------------------------------------------

    async def close(self) -> None:
        if self._detached:
            return
        # The peer may be gone already; trio's aclose releases the stream whatever it raises.
        with contextlib.suppress(*_IO_ERRORS):
            await self._stream.aclose()

    async def abort(self) -> None:
        if self._detached:
            return
        with contextlib.suppress(*_IO_ERRORS):
            await trio.aclose_forcefully(self._stream)


class _ServerBase(_H1Connection):
    """The downstream side's errors, per-cycle state and keep-alive, whatever parser reads requests."""

    _source = ErrorSource.DOWNSTREAM
    _peer = "the client"
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

    @property
    def request_trailers(self) -> Headers | None:
        return self._trailers

    # -- the response body -----------------------------------------------------------------------------

    async def write_body(self, data: bytes) -> None:
        if data and self._body_allowed:
            await self._send(self._encode_data(data))

    # -- keep-alive ------------------------------------------------------------------------------------

    @property
    def keepalive(self) -> bool:
        return self._keepalive and self._peer_keepalive and not self._failed and not self._detached

    def set_keepalive(self, enabled: bool) -> None:
        self._keepalive = enabled


class _ClientBase(_H1Connection):
    """The upstream side's timeouts, errors, retry decision and per-exchange state."""

    _source = ErrorSource.UPSTREAM
    _peer = "the upstream"

    def _reset_exchange(self) -> None:
        self._answer_due = True  # the next read follows a request: it yields before it tries (`_receive`)
        self._method: str | None = None
        self._request_start = self.bytes_read  # response bytes arrived once bytes_read moves past it
        self._must_close = False
        self._in_body = False
        self._chunked = False
        self._trailers = None
        self.informational: list[ResponseHeader] = []

    @property
    def read_timeout(self) -> float | None:
        return self._read_timeout

    @read_timeout.setter
    def read_timeout(self, seconds: float | None) -> None:
        self._read_timeout = seconds

    @property
    def write_timeout(self) -> float | None:
        return self._write_timeout

    @write_timeout.setter
    def write_timeout(self, seconds: float | None) -> None:
        self._write_timeout = seconds

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
        if data:
            await self._send(self._encode_data(data))

    # -- the response body -----------------------------------------------------------------------------

    @property
    def response_trailers(self) -> Headers | None:
        return self._trailers
