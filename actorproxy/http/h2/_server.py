"""The downstream side of HTTP/2: `H2ServerConnection` reads a client's connection, `H2ServerStream` is one
of its requests behind the `ServerSide` contract, so the phases serve it as they serve HTTP/1.1.

Rules:
- `serve` is the connection's reader: it reads the socket, hands each new request (its head checked, see
  `_rules`) to `on_stream`, and returns when the connection ends: the client closed it, a limit or a
  protocol error ended it (`GOAWAY` sent), it was idle for `idle_timeout` seconds with no stream open, or
  it drained (`drain`: a GOAWAY with the last stream accepted, then the open streams finish).
- `write_loop` is the connection's writer, the only task that writes the socket: streams queue frames in
  the `h2` state machine and wake it. A stream whose frames wait unsent past `HIGH_WATER` bytes waits for
  the writer (backpressure from the socket); the per-stream windows do the rest (see `_connection`). A
  write that takes longer than `flow_control_timeout` ends the connection.
- Limits a client can go past, each ending the connection with `GOAWAY ENHANCE_YOUR_CALM`: more than
  `max_resets` streams reset within `reset_period` seconds (Rapid Reset, CVE-2023-44487), the frame
  scanner's (`_frames`), and the `h2` package's own (a header list over `max_header_list_size`: an HPACK
  bomb). A stream the client resets is cancelled at once (`H2ServerStream.scope`): its upstream request
  stops too, so a reset costs the proxy nothing more.
- A stream is one request/response cycle. When its handler is done, `complete` resets it if the response
  did not end (INTERNAL_ERROR) or the client is still sending a body nobody will read (NO_ERROR, RFC 9113
  §8.1), and forgets it.
- Keep-alive is the connection's business, not a stream's: `set_keepalive` does nothing, and a stream
  never serves a second request. `detach` (tunnels) is refused: neither CONNECT nor Upgrade is tunnelled
  over HTTP/2 here.
"""

from __future__ import annotations

from collections.abc import Callable

import h2.events
import h2.exceptions
import trio

from actorproxy.config import DEFAULT_LIMITS, Http2Settings, HttpLimits

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader
from ..h1 import ProtocolError
from ._connection import (
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    READ_SIZE,
    REFUSED_STREAM,
    GoAwayReceived,
    H2Connection,
    H2Stream,
)
from ._frames import FloodError, Rate
from ._rules import MalformedStream, request_from_h2, response_to_h2, trailers_to_h2

__all__ = ["HIGH_WATER", "H2ServerConnection", "H2ServerStream"]

_DOWN = ErrorSource.DOWNSTREAM
#: Bytes queued for the socket past which a stream waits for the writer: about a socket buffer's worth.
HIGH_WATER = 65536
# Responses that carry no body whatever their fields say (RFC 9110 §6.4.1).
_BODILESS = frozenset({204, 304})


class H2ServerConnection(H2Connection):
    """A client's HTTP/2 connection (see the module rules).

    Args:
        stream: the accepted connection (TLS with ALPN h2, or cleartext with prior knowledge).
        settings: the service's HTTP/2 settings.
        limits: the service's request limits (`max_body_size` applies to each stream).
        clock: the time source of the flood limits.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        settings: Http2Settings,
        limits: HttpLimits = DEFAULT_LIMITS,
        *,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        super().__init__(stream, settings, client=False, clock=clock)
        self.limits = limits
        self._resets = Rate(settings.max_resets, settings.reset_period)
        self._wake = trio.Event()
        self._drained = trio.Event()
        self._read_scope: trio.CancelScope | None = None
        self._idle_timeout: float | None = None
        #: The highest stream a request came on: the last one a GOAWAY of ours lets finish.
        self.last_stream_id = 0
        #: A GOAWAY went out (or came in): no new stream is accepted; the connection ends once none is open.
        self.draining = False
        #: Streams refused for a head that broke RFC 9113 §8.
        self.malformed = 0
        #: The writer sends what is left and stops.
        self.closing = False
        #: The open streams' adapters by stream id.
        self.handlers: dict[int, H2ServerStream] = {}
        self._on_stream: Callable[[H2ServerStream], object] = _ignore

    # -- the reader ----------------------------------------------------------------------------------

    async def serve(
        self,
        on_stream: Callable[[H2ServerStream], object],
        *,
        preface: bytes = b"",
        idle_timeout: float | None = None,
    ) -> None:
        """Read the connection until it ends (see the module rules), handing each request to `on_stream`.

        Args:
            on_stream: called with each new stream, synchronously (it starts the stream's task).
            preface: bytes already read from the stream (the client preface a listener looked at).
            idle_timeout: seconds the connection may stay with no stream open; None: no limit.
        """
        self._idle_timeout = idle_timeout
        self.initiate()
        self._wake.set()
        try:
            if preface:
                self._on_data(preface, on_stream)
            while self.error is None and not (self.draining and not self.streams):
                scope = self._read_scope = trio.CancelScope()
                if idle_timeout is not None and not self.streams:
                    scope.deadline = trio.current_time() + idle_timeout
                with scope:
                    try:
                        data = await self.stream.receive_some(READ_SIZE)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self.fail(Error.because(ErrorType.READ_ERROR, "reading the client", exc, _DOWN))
                        return
                self._read_scope = None
                if scope.cancelled_caught:
                    if not self.streams and not self.draining:  # idle too long: say so, then close
                        self.goaway_frame(self.last_stream_id)
                    return
                if not data:
                    self.fail(Error(ErrorType.CONNECTION_CLOSED, _DOWN, context="the client closed"))
                    return
                self._on_data(data, on_stream)
        finally:
            self._read_scope = None
            self.closing = True
            self._wake.set()

    def _on_data(self, data: bytes | bytearray, on_stream: Callable[[H2ServerStream], object]) -> None:
        self._on_stream = on_stream
        try:
            self.receive(data)
        except FloodError as exc:
            self.terminate(exc.code, exc.reason, source=_DOWN)
        except h2.exceptions.ProtocolError as exc:  # its GOAWAY is queued already
            self.fail(Error.because(ErrorType.INVALID_H2, "a protocol error from the client", exc, _DOWN))
        finally:
            self._wake.set()

    def on_event(self, event: h2.events.Event) -> None:
        kind = type(event)
        if kind is h2.events.RequestReceived:
            self._on_request(event, self._on_stream)  # type: ignore[arg-type]
        elif kind is h2.events.StreamReset:
            handler = self.handlers.pop(event.stream_id, None)  # type: ignore[attr-defined]
            if handler is not None and handler.scope is not None:
                handler.scope.cancel()
            if event.remote_reset and self._resets.over(self._clock()):  # type: ignore[attr-defined]
                raise FloodError(
                    ENHANCE_YOUR_CALM,
                    f"more than {self._resets.limit} streams reset within {self._resets.period:g} s",
                )
        elif kind is GoAwayReceived:
            self.draining = True  # the client opens no more streams; those open finish

    def _on_request(
        self, event: h2.events.RequestReceived, on_stream: Callable[[H2ServerStream], object]
    ) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        stream = H2Stream(self, stream_id)
        if self.draining and stream_id > self.last_stream_id:
            self.reset(stream, REFUSED_STREAM)
            return
        self.last_stream_id = max(self.last_stream_id, stream_id)
        end = event.stream_ended is not None
        try:
            header = request_from_h2(event.headers or (), end_stream=end)
        except MalformedStream:
            self.malformed += 1
            self.reset(stream, PROTOCOL_ERROR)
            return
        stream.ended = end
        self.streams[stream_id] = stream
        handler = H2ServerStream(self, stream, header)
        self.handlers[stream_id] = handler
        on_stream(handler)

    # -- the writer ----------------------------------------------------------------------------------

    async def write_loop(self) -> None:
        """Send what the streams queue, until the connection ends (see the module rules)."""
        timeout = self.settings.flow_control_timeout
        while True:
            await self._wake.wait()
            self._wake = trio.Event()
            data = self.h2.data_to_send()
            if self.extra:
                data += self.extra
                self.extra = b""
            self.queued = 0
            drained, self._drained = self._drained, trio.Event()
            if data:
                with trio.move_on_after(timeout) as scope:
                    try:
                        await self.stream.send_all(data)
                    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                        self.fail(Error.because(ErrorType.WRITE_ERROR, "writing to the client", exc, _DOWN))
                        return
                if scope.cancelled_caught:
                    self.fail(
                        Error(
                            ErrorType.WRITE_TIMEDOUT,
                            _DOWN,
                            context=f"the client read nothing for {timeout:g} s",
                        )
                    )
                    return
                self.bytes_written += len(data)
            drained.set()
            if self.closing and not self._wake.is_set():
                return

    async def _flush(self) -> None:
        self._wake.set()
        if self.queued > HIGH_WATER:
            await self._drained.wait()

    def fail(self, error: Error) -> None:
        super().fail(error)
        self._drained.set()
        self._wake.set()
        if self._read_scope is not None:
            self._read_scope.cancel()

    # -- the streams ---------------------------------------------------------------------------------

    def drain(self) -> None:
        """Send a GOAWAY naming the last stream accepted; the open streams finish, then the connection
        ends."""
        if self.draining or self.error is not None:
            return
        self.draining = True
        self.goaway_frame(self.last_stream_id)
        self._wake.set()
        if not self.streams and self._read_scope is not None:
            self._read_scope.cancel()

    def release(self, stream: H2Stream) -> None:
        """Forget a stream whose handler is done."""
        self.streams.pop(stream.id, None)
        self.handlers.pop(stream.id, None)
        self._wake.set()
        if not self.streams and self._read_scope is not None:
            if self.draining:
                self._read_scope.cancel()
            elif self._idle_timeout is not None:
                self._read_scope.deadline = trio.current_time() + self._idle_timeout


def _ignore(stream: H2ServerStream) -> None:
    """No reader yet."""


class H2ServerStream:
    """One request of an HTTP/2 connection behind the `ServerSide` contract (see the module rules)."""

    __slots__ = (
        "_bodiless",
        "_conn",
        "_continued",
        "_finished",
        "_head_in",
        "_head_out",
        "_header",
        "_response",
        "_taken",
        "h2stream",
        "scope",
    )

    def __init__(self, conn: H2ServerConnection, stream: H2Stream, header: RequestHeader) -> None:
        self._conn = conn
        self.h2stream = stream
        self._header = header
        self._taken = False
        self._response: ResponseHeader | None = None
        self._finished = False
        self._continued = False
        self._bodiless = header.method == "HEAD"
        self._head_in = sum(len(name) + len(value) + 4 for name, value in header.headers)
        self._head_out = 0
        #: The cancel scope the stream's handler runs in: a reset from the client cancels it.
        self.scope: trio.CancelScope | None = None

    def __repr__(self) -> str:
        return f"<H2ServerStream {self.h2stream.id} {self._header.method} {self._header.uri}>"

    # -- the connection's parts of the contract ------------------------------------------------------

    @property
    def stream(self) -> trio.abc.Stream:
        return self._conn.stream

    @property
    def connection(self) -> H2ServerConnection:
        return self._conn

    @property
    def bytes_read(self) -> int:
        return self._head_in + self.h2stream.data_read

    @property
    def bytes_written(self) -> int:
        return self._head_out + self.h2stream.data_written

    @property
    def body_done(self) -> bool:
        return self.h2stream.body_done

    @property
    def limits(self) -> HttpLimits:
        return self._conn.limits

    @property
    def expects_continue(self) -> bool:
        expect = self._header.headers.get("expect")
        return expect is not None and expect.lower() == "100-continue" and not self.h2stream.ended

    @property
    def upgrade_requested(self) -> bool:
        return self._header.method == "CONNECT"

    @property
    def response_started(self) -> bool:
        return self._response is not None

    @property
    def response_header(self) -> ResponseHeader | None:
        return self._response

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        raise Error.explain(ErrorType.INTERNAL_ERROR, "no tunnel over an HTTP/2 stream", ErrorSource.INTERNAL)

    async def close(self) -> None:
        self.complete()

    async def abort(self) -> None:
        self._conn.reset(self.h2stream, INTERNAL_ERROR)
        self.complete()

    # -- the request ---------------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        return self.read_request_nowait()

    def read_request_nowait(self) -> RequestHeader | None:
        if self._taken:
            return None
        self._taken = True
        return self._header

    def read_body_nowait(self) -> bytes | None:
        stream = self.h2stream
        if stream.reset_code is not None and not stream.chunks:
            raise Error(ErrorType.CONNECTION_CLOSED, _DOWN, context=f"stream {stream.id} reset by the client")
        data = stream.take_nowait()
        if data is not None:
            self._conn._wake.set()  # its WINDOW_UPDATE
            limit = self._conn.limits.max_body_size
            if limit is not None and stream.data_read > limit:
                # Answered 413 on this stream; `complete` then resets it (NO_ERROR: the client may stop
                # sending, RFC 9113 §8.1).
                raise ProtocolError(
                    ErrorType.INVALID_HTTP_HEADER,
                    _DOWN,
                    status_hint=413,
                    context=f"a request body over max_body_size {limit}",
                )
        return data

    async def read_body(self) -> bytes | None:
        while True:
            try:
                return self.read_body_nowait()
            except trio.WouldBlock:
                waiter = self.h2stream.waiter()
            await waiter.wait()

    @property
    def request_trailers(self) -> Headers | None:
        return self.h2stream.trailers

    # -- the response --------------------------------------------------------------------------------

    async def send_continue(self) -> None:
        if self._continued or self._response is not None or not self.expects_continue:
            return
        self._continued = True
        self._conn.send_headers(self.h2stream, [(b":status", b"100")], end=False, source=_DOWN)
        await self._conn._flush()

    async def write_response(self, header: ResponseHeader, body: bytes = b"", *, end: bool = False) -> None:
        conn = self._conn
        if 100 <= header.status < 200:
            if header.status == 101:
                raise Error.explain(ErrorType.INTERNAL_ERROR, "101 over HTTP/2", ErrorSource.INTERNAL)
            fields = response_to_h2(header)
            conn.send_headers(self.h2stream, fields, end=False, source=_DOWN)
            await conn._flush()
            return
        fields = response_to_h2(header)
        if self._response is not None:
            raise Error.explain(ErrorType.INTERNAL_ERROR, "a second response head", ErrorSource.INTERNAL)
        self._response = header
        if header.status in _BODILESS:
            self._bodiless = True
        self._head_out = sum(len(name) + len(value) + 4 for name, value in fields)
        if self._bodiless:
            body = b""
            end = True
        conn.send_headers(self.h2stream, fields, end=end and not body, source=_DOWN)
        if end:
            self._finished = True
        if body:
            await conn.send_data(self.h2stream, body, end=end, source=_DOWN)
        else:
            await conn._flush()

    async def write_body(self, data: bytes) -> None:
        if self._finished or not data:
            return
        await self._conn.send_data(self.h2stream, data, end=False, source=_DOWN)

    async def finish(self, trailers: Headers | None = None) -> None:
        if self._finished:
            return
        self._finished = True
        conn = self._conn
        if trailers is not None and len(trailers):
            conn.send_headers(self.h2stream, trailers_to_h2(trailers), end=True, source=_DOWN)
            await conn._flush()
        else:
            await conn.send_data(self.h2stream, b"", end=True, source=_DOWN)

    # -- keep-alive: the connection's ----------------------------------------------------------------

    @property
    def keepalive(self) -> bool:
        return False

    def set_keepalive(self, enabled: bool) -> None:
        """Nothing: one stream does not decide for its connection."""

    def next_request_ready(self) -> bool:
        return False

    def start_next_cycle(self) -> bool:
        return False

    def complete(self) -> None:
        """The handler is done: reset the stream if it must be, and forget it (see the module rules)."""
        conn, stream = self._conn, self.h2stream
        if stream.id not in conn.streams:
            return
        if stream.reset_code is None:
            if not self._finished:
                conn.reset(stream, INTERNAL_ERROR)
            elif not stream.ended:
                conn.reset(stream, NO_ERROR)
        conn.release(stream)
