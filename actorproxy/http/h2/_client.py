"""The upstream side of HTTP/2: `H2ClientConnection` carries many requests to one peer at once, each an
`H2ClientStream` behind the `ClientSide` contract, so the engine and the Exchange drive it as they drive
an HTTP/1.1 connection.

Rules:
- No task of its own (only supervisors own nurseries, and a pooled connection belongs to none): the
  requests that wait take turns reading the socket under a lock (the first waiter reads, hands every
  frame to its stream and lets the next in), and write under another lock (`_flush`). What is queued for
  the peer (WINDOW_UPDATE, acknowledgements) goes out before each read, so a peer waiting for window is
  never left waiting on a reader. While no request waits, nobody reads: an idle connection found readable
  at checkout is retired rather than read (`looks_idle_alive`).
- Capacity: `min(peer's SETTINGS_MAX_CONCURRENT_STREAMS, max_h2_streams)` requests at once (`has_room`);
  the pool opens another connection when every one is full.
- A GOAWAY from the peer retires the connection: no new request goes on it; the streams above its last
  stream id, and those reset with REFUSED_STREAM, were not processed (RFC 9113 §8.7) and fail with an
  error that is always safe to retry; those below finish. The connection closes when its last stream ends.
- A stream's `close` (or `abort`) gives its slot back: a stream whose exchange did not end both ways is
  reset (CANCEL) first. `reusable` is False: a stream carries one request; the connection is reused.
- A write that is cancelled halfway leaves a frame cut in two: the connection fails (every stream on it
  errs, retried where the rules allow) and is closed.
- The response's timeouts: `read_timeout` bounds each wait for the peer (READ_TIMEDOUT); windows that stay
  shut fail the send after `flow_control_timeout` (see `_connection`).
"""

from __future__ import annotations

from collections.abc import Callable

import h2.events
import h2.exceptions
import trio

from actorproxy.config import Http2Settings

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader
from ..h1 import ProtocolError
from ._connection import CANCEL, READ_SIZE, REFUSED_STREAM, GoAwayReceived, H2Connection, H2Stream
from ._frames import FloodError
from ._rules import MalformedStream, request_to_h2, response_from_h2, trailers_to_h2

__all__ = ["H2ClientConnection", "H2ClientStream"]

_UP = ErrorSource.UPSTREAM
# What a peer allows before its SETTINGS say otherwise (RFC 9113 §6.5.2 says unlimited; we assume this).
_ASSUMED_STREAMS = 100
# Seconds a closing stream's RST_STREAM may take to go out (shielded: the close may be a cancellation's).
CLOSE_TIMEOUT = 1.0


class _ResponseStream(H2Stream):
    """A stream of ours: the response heads (1xx and final) as they come."""

    __slots__ = ("heads",)

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        super().__init__(conn, stream_id)
        self.heads: list[list[tuple[bytes, bytes]]] = []


class H2ClientConnection(H2Connection):
    """A multiplexed connection to one peer (see the module rules).

    Args:
        stream: the connection (TLS with ALPN h2, or cleartext: h2c with prior knowledge).
        settings: the service's HTTP/2 settings (`max_h2_streams` caps the streams).
        scheme: "https" or "http", the `:scheme` of the requests.
        clock: the time source.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        settings: Http2Settings,
        *,
        scheme: str = "https",
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        super().__init__(stream, settings, client=True, clock=clock)
        self.scheme = scheme
        self._read_lock = trio.Lock()
        self._write_lock = trio.Lock()
        #: Streams handed out and not closed yet.
        self.active = 0
        #: No new stream goes on it (a GOAWAY came, or it failed).
        self.retired = False
        #: trio time it last had no stream (for the pool's idle timeout).
        self.idle_since = clock()
        #: No pool keeps it: its last stream closes it.
        self.orphan = False
        self._clock = clock

    def __repr__(self) -> str:
        return f"<H2ClientConnection active={self.active}/{self.capacity} retired={self.retired}>"

    @property
    def capacity(self) -> int:
        remote = self.h2.remote_settings.max_concurrent_streams
        if remote is None or remote > 2**31:
            remote = _ASSUMED_STREAMS
        return min(remote, self.settings.max_h2_streams)

    @property
    def has_room(self) -> bool:
        return not self.retired and self.error is None and self.active < self.capacity

    async def start(self) -> None:
        """Send the preface and our SETTINGS."""
        self.initiate()
        await self._flush()

    def open_stream(
        self, read_timeout: float | None = None, write_timeout: float | None = None
    ) -> H2ClientStream:
        """A slot for one request (the stream itself opens with `write_request`), with its timeouts."""
        self.active += 1
        stream = H2ClientStream(self)
        stream.read_timeout = read_timeout
        stream.write_timeout = write_timeout
        return stream

    def give_back(self, stream: H2Stream | None) -> None:
        """A stream's request is over: forget it and free its slot."""
        if stream is not None:
            self.streams.pop(stream.id, None)
        self.active -= 1
        if not self.active:
            self.idle_since = self._clock()

    # -- the socket ----------------------------------------------------------------------------------

    async def _flush(self) -> None:
        lock = self._write_lock
        if lock.locked():
            async with lock:
                await self._send_queued()
            return
        lock.acquire_nowait()
        try:
            await self._send_queued()
        finally:
            lock.release()

    async def _send_queued(self) -> None:
        data = self.h2.data_to_send()
        self.queued = 0
        if not data or self.error is not None:
            return
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
            self.fail(
                Error(ErrorType.WRITE_ERROR, _UP, context="writing to the upstream", cause=exc, retry=False)
            )
            raise self.error from None  # type: ignore[misc]
        except BaseException:
            # Cancelled halfway: the peer has part of a frame; nothing more can go on this connection.
            self.fail(Error(ErrorType.WRITE_ERROR, _UP, context="a write to the upstream was cancelled"))
            raise
        self.bytes_written += len(data)

    async def pump(self, ready: Callable[[], bool]) -> None:
        """Read the socket (or wait for whoever reads it) until `ready()` or the connection fails."""
        while not ready() and self.error is None:
            async with self._read_lock:
                if ready() or self.error is not None:
                    return
                await self._flush()
                try:
                    data = await self.stream.receive_some(READ_SIZE)
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    self.fail(Error.because(ErrorType.READ_ERROR, "reading the upstream", exc, _UP))
                    return
                if not data:
                    self.fail(Error(ErrorType.CONNECTION_CLOSED, _UP, context="the upstream closed"))
                    return
                self._on_data(data)
            await self._flush()

    def _on_data(self, data: bytes | bytearray) -> None:
        try:
            self.receive(data)
        except FloodError as exc:
            self.terminate(exc.code, exc.reason, source=_UP)
        except h2.exceptions.ProtocolError as exc:
            self.fail(Error.because(ErrorType.INVALID_H2, "a protocol error from the upstream", exc, _UP))

    def on_event(self, event: h2.events.Event) -> None:
        kind = type(event)
        if kind is h2.events.ResponseReceived or kind is h2.events.InformationalResponseReceived:
            stream = self.streams.get(event.stream_id)  # type: ignore[attr-defined]
            if isinstance(stream, _ResponseStream):
                stream.heads.append(event.headers)  # type: ignore[attr-defined]
                stream.wake()
        elif kind is GoAwayReceived:
            self.retired = True
            last = event.goaway.last_stream_id  # type: ignore[attr-defined]
            for stream in self.streams.values():
                if stream.id > last and stream.reset_code is None:
                    stream.reset_code = REFUSED_STREAM
                    stream.wake()

    def fail(self, error: Error) -> None:
        self.retired = True
        super().fail(error)

    async def aclose(self) -> None:
        """Close the connection (its streams fail)."""
        self.fail(Error(ErrorType.CONNECTION_CLOSED, _UP, context="closed by the proxy"))
        await trio.aclose_forcefully(self.stream)


class H2ClientStream:
    """One request on a multiplexed connection behind the `ClientSide` contract (see the module rules)."""

    __slots__ = (
        "_conn",
        "_done",
        "_response",
        "_sent_end",
        "h2stream",
        "informational",
        "read_timeout",
        "write_timeout",
    )

    def __init__(self, conn: H2ClientConnection) -> None:
        self._conn = conn
        self.h2stream: _ResponseStream | None = None
        self._response: ResponseHeader | None = None
        self._done = False
        self._sent_end = False
        self.informational: list[ResponseHeader] = []
        self.read_timeout: float | None = None
        self.write_timeout: float | None = None

    def __repr__(self) -> str:
        stream = self.h2stream
        return f"<H2ClientStream {stream.id if stream else '-'} on {self._conn!r}>"

    @property
    def connection(self) -> H2ClientConnection:
        return self._conn

    @property
    def stream(self) -> trio.abc.Stream:
        return self._conn.stream

    @property
    def bytes_read(self) -> int:
        return 0 if self.h2stream is None else self.h2stream.data_read

    @property
    def bytes_written(self) -> int:
        return 0 if self.h2stream is None else self.h2stream.data_written

    @property
    def body_done(self) -> bool:
        return self.h2stream is not None and self._response is not None and self.h2stream.body_done

    def _stream(self) -> _ResponseStream:
        stream = self.h2stream
        if stream is None:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "no request on this stream yet", ErrorSource.INTERNAL
            )
        return stream

    def _failure(self, stream: _ResponseStream, what: str) -> Error:
        conn = self._conn
        if stream.reset_code == REFUSED_STREAM:
            # RFC 9113 §8.7: the peer did not process it, so it is safe to send again, whatever it is.
            return Error(
                ErrorType.CONNECTION_CLOSED, _UP, context=f"{what}: not processed by the upstream", retry=True
            )
        if conn.error is not None:
            return Error(
                conn.error.etype, _UP, context=f"{what}: {conn.error.context}", retry=conn.error.retry
            )
        return Error(
            ErrorType.CONNECTION_CLOSED, _UP, context=f"{what}: stream {stream.id} reset by the upstream"
        )

    async def _wait(self, stream: _ResponseStream, ready: Callable[[], bool], what: str) -> None:
        def settled() -> bool:
            return ready() or stream.reset_code is not None

        timeout = self.read_timeout
        if timeout is None:
            await self._conn.pump(settled)
        else:
            with trio.move_on_after(timeout) as scope:
                await self._conn.pump(settled)
            if scope.cancelled_caught:
                raise Error(ErrorType.READ_TIMEDOUT, _UP, context=f"{what}: nothing within {timeout:g} s")
        if not ready():
            raise self._failure(stream, what)

    # -- the request ---------------------------------------------------------------------------------

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        conn = self._conn
        if conn.goaway is not None or conn.error is not None:
            raise Error(ErrorType.CONNECTION_CLOSED, _UP, context="the connection is going away", retry=True)
        fields = request_to_h2(header, conn.scheme)
        stream_id = conn.h2.get_next_available_stream_id()
        stream = self.h2stream = _ResponseStream(conn, stream_id)
        conn.streams[stream_id] = stream
        self._sent_end = end
        conn.send_headers(stream, fields, end=end and not body, source=_UP)
        if body:
            await conn.send_data(stream, body, end=end, source=_UP)
        else:
            await conn._flush()

    async def write_body(self, data: bytes) -> None:
        if data:
            await self._conn.send_data(self._stream(), data, end=False, source=_UP)

    async def finish(self, trailers: Headers | None = None) -> None:
        stream = self._stream()
        conn = self._conn
        if self._sent_end:
            return
        self._sent_end = True
        if trailers is not None and len(trailers):
            conn.send_headers(stream, trailers_to_h2(trailers), end=True, source=_UP)
            await conn._flush()
        else:
            await conn.send_data(stream, b"", end=True, source=_UP)

    # -- the response --------------------------------------------------------------------------------

    async def read_response(self, *, skip_informational: bool = True) -> ResponseHeader:
        stream = self._stream()
        while True:
            if not stream.heads:
                await self._wait(stream, lambda: bool(stream.heads), "reading the response head")
            fields = stream.heads.pop(0)
            try:
                response = response_from_h2(fields)
            except MalformedStream as exc:
                self._conn.reset(stream, CANCEL)
                raise ProtocolError(
                    ErrorType.INVALID_HTTP_HEADER, _UP, status_hint=502, context=f"a bad response: {exc}"
                ) from None
            if 100 <= response.status < 200:
                if response.status == 101:
                    raise ProtocolError(
                        ErrorType.INVALID_HTTP_HEADER, _UP, status_hint=502, context="101 over HTTP/2"
                    )
                self.informational.append(response)
                if skip_informational:
                    continue
                return response
            self._response = response
            return response

    def read_body_nowait(self) -> bytes | None:
        stream = self._stream()
        if stream.reset_code is not None and not stream.chunks and not stream.ended:
            raise self._failure(stream, "reading the response body")
        return stream.take_nowait()

    async def read_body(self) -> bytes | None:
        stream = self._stream()
        while True:
            try:
                return self.read_body_nowait()
            except trio.WouldBlock:
                pass
            await self._wait(stream, lambda: bool(stream.chunks) or stream.ended, "reading the response body")

    @property
    def response_trailers(self) -> Headers | None:
        return None if self.h2stream is None else self.h2stream.trailers

    # -- the end -------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        return False

    def start_next_cycle(self) -> bool:
        return False

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        raise Error.explain(ErrorType.INTERNAL_ERROR, "no tunnel over an HTTP/2 stream", ErrorSource.INTERNAL)

    async def close(self) -> None:
        """Give the slot back, resetting a stream whose exchange did not end both ways."""
        if self._done:
            return
        self._done = True
        conn, stream = self._conn, self.h2stream
        if stream is not None and conn.error is None and not (self._sent_end and stream.ended):
            conn.reset(stream, CANCEL)
        conn.give_back(stream)
        if conn.error is None and conn.queued:
            with trio.move_on_after(CLOSE_TIMEOUT) as scope:
                scope.shield = True
                await conn._flush()
        if conn.orphan and not conn.active:
            await conn.aclose()

    async def abort(self) -> None:
        await self.close()
