"""What both sides of an HTTP/2 connection share: the `h2` state machine, the streams, flow control.

Rules:
- `H2Connection` wraps one `h2.connection.H2Connection` over one byte stream. Incoming bytes pass the
  `FrameScanner` (flood limits, GOAWAY taken out), then the `h2` package; its events land in the
  streams (`H2Stream`: body pieces, trailers, end, reset), and a task waiting on a stream is woken.
- The `h2` package's own header validation is off: RFC 9113 §8's checks are ours (`_rules`), so a
  malformed message resets its stream only. What the `h2` package still treats as a connection error (a
  Content-Length that disagrees with the DATA frames, a frame that breaks the protocol) ends the connection
  with its GOAWAY.
- Received DATA gives the connection's window back as it arrives, and the stream's when the reader of the
  stream takes it: a stream whose reader is slow (its upstream, or its client) closes its own window and
  only its own, so the peer slows that stream alone (backpressure end to end) and its siblings keep the
  connection's window (as nginx does; a connection window held by unread data would let one stalled stream
  stop every stream of the connection, other clients' requests on a shared upstream connection included).
  What a connection holds unread is bounded by its streams' windows: at most `initial_window_size` bytes a
  stream. Window updates are batched: sent once half a window is owed.
- Sending DATA waits for window: the stream's and the connection's (RFC 9113 §6.9), at most
  `flow_control_timeout` seconds; then the stream is reset (CANCEL) and the send fails, so a peer that
  never opens its window (a zero-window stall) holds nothing forever.
- How bytes reach the socket is the subclass's: a server has a writer task (streams never write the shared
  socket, so a cancelled stream never cuts a frame in half), a client writes under a lock from the task
  that sends (`_flush`). How a waiting task learns of new bytes is the subclass's too (`_wait`).
- Byte counts: `bytes_read` / `bytes_written` are the connection's wire bytes; each stream counts its own
  DATA bytes and an estimate of its heads (the fields' lengths).
"""

from __future__ import annotations

import contextlib
from collections import deque
from collections.abc import Callable

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import trio
from hyperframe.frame import GoAwayFrame

from actorproxy.config import Http2Settings

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers
from ._frames import FrameScanner, GoAway, Rate
from ._rules import MalformedStream, trailers_from_h2

__all__ = ["READ_SIZE", "GoAwayReceived", "H2Connection", "H2Stream", "StreamMalformed"]

#: Bytes read from the socket at once (the HTTP/1.1 codecs' 64 KiB).
READ_SIZE = 65536
#: RFC 9113 §6.9.2: the window every stream and the connection start with before SETTINGS.
DEFAULT_WINDOW = 65535
#: RFC 9113 §7 codes.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
REFUSED_STREAM = 0x7
CANCEL = 0x8
ENHANCE_YOUR_CALM = 0xB


class H2Stream:
    """One stream's received state: body pieces with their flow-control lengths, trailers, end, reset."""

    __slots__ = (
        "_waiter",
        "chunks",
        "conn",
        "data_read",
        "data_written",
        "ended",
        "id",
        "owed",
        "reset_code",
        "trailers",
    )

    def __init__(self, conn: H2Connection, stream_id: int) -> None:
        self.conn = conn
        self.id = stream_id
        self.chunks: deque[tuple[bytes, int]] = deque()
        self.ended = False
        self.trailers: Headers | None = None
        #: The RFC 9113 §7 code the stream was reset with (by either side); None while it is not.
        self.reset_code: int | None = None
        self.data_read = 0
        self.data_written = 0
        #: Window taken by the reader and not given back yet (see `H2Connection.acknowledge`).
        self.owed = 0
        self._waiter: trio.Event | None = None

    def wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            waiter.set()

    def waiter(self) -> trio.Event:
        """The event the next `wake` sets (one shared by whoever waits now)."""
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = trio.Event()
        return waiter

    @property
    def body_done(self) -> bool:
        return self.ended and not self.chunks

    def take_nowait(self) -> bytes | None:
        """The next body piece, acknowledged to the peer; None at the end.

        Raises:
            trio.WouldBlock: nothing has come yet.
        """
        chunks = self.chunks
        if chunks:
            data, flow = chunks.popleft()
            self.conn.acknowledge(self, flow)
            return data
        if self.ended:
            return None
        raise trio.WouldBlock


class H2Connection:
    """One HTTP/2 connection over `stream` (see the module rules); the server and client build on it.

    Args:
        stream: the connection's byte stream.
        settings: the service's HTTP/2 settings.
        client: this end is the client.
        clock: the time source of the flood limits.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        settings: Http2Settings,
        *,
        client: bool,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self.stream = stream
        self.settings = settings
        config = h2.config.H2Configuration(
            client_side=client,
            header_encoding=None,
            validate_inbound_headers=False,
            normalize_inbound_headers=False,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            split_outbound_cookies=False,
        )
        conn = self.h2 = h2.connection.H2Connection(config=config)
        initial = {
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: settings.max_concurrent_streams,
            h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: settings.initial_window_size,
            h2.settings.SettingCodes.MAX_FRAME_SIZE: settings.max_frame_size,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: settings.max_header_list_size,
        }
        if client:
            initial[h2.settings.SettingCodes.ENABLE_PUSH] = 0
        conn.local_settings = h2.settings.Settings(client=client, initial_values=initial)
        conn.max_inbound_frame_size = settings.max_frame_size
        conn.decoder.max_header_list_size = settings.max_header_list_size
        self._clock = clock
        self.scanner = FrameScanner(
            server=not client,
            max_frame_size=settings.max_frame_size,
            max_header_block=settings.max_header_list_size,
            control=Rate(settings.max_control_frames, settings.control_period),
            clock=clock,
        )
        self.streams: dict[int, H2Stream] = {}
        self.bytes_read = 0
        self.bytes_written = 0
        #: Bytes of frames added since the socket last took them.
        self.queued = 0
        #: Raw frames to send after what the `h2` package queued (our own GOAWAY).
        self.extra = b""
        #: The peer's GOAWAY, once it came.
        self.goaway: GoAway | None = None
        #: Why the connection ended (set once); no stream can go on once it is.
        self.error: Error | None = None
        # Waiting for window on the connection (stream 0): every stream that waits, woken together.
        self._window_waiter: trio.Event | None = None
        # Window updates wait until this much is owed (half a window), and what the connection owes so far.
        self._batch = max(1, settings.initial_window_size // 2)
        self._owed = 0

    def __repr__(self) -> str:
        side = "client" if self.h2.config.client_side else "server"
        return f"<{type(self).__name__} {side} streams={len(self.streams)} error={self.error}>"

    # -- start and end -------------------------------------------------------------------------------

    def initiate(self) -> None:
        """Queue the preface (a client's), our SETTINGS, and the connection window's increase."""
        self.h2.initiate_connection()
        extra = self.settings.initial_window_size - DEFAULT_WINDOW
        if extra > 0:
            self.h2.increment_flow_control_window(extra)

    def goaway_frame(self, last_stream_id: int, code: int = NO_ERROR) -> None:
        """Queue a GOAWAY of our own without closing the `h2` state machine (the streams up to
        `last_stream_id` still finish: a graceful shutdown)."""
        self.extra += GoAwayFrame(0, last_stream_id=last_stream_id, error_code=code).serialize()

    def fail(self, error: Error) -> None:
        """End every stream with `error` (the connection is gone or ends now)."""
        if self.error is None:
            self.error = error
        for stream in self.streams.values():
            if stream.reset_code is None:
                stream.reset_code = CANCEL
            stream.wake()
        self._wake_window()

    def terminate(self, code: int, reason: str, *, source: ErrorSource) -> None:
        """Close the connection now with a GOAWAY carrying `code` (a flood, a protocol error)."""
        if self.error is None:
            with contextlib.suppress(h2.exceptions.ProtocolError):  # closed already: its GOAWAY went out
                self.h2.close_connection(error_code=code, additional_data=reason.encode()[:256])
        self.fail(Error(ErrorType.H2_ERROR, source, context=reason))

    # -- receiving -----------------------------------------------------------------------------------

    def receive(self, data: bytes | bytearray) -> None:
        """Hand `data` from the peer to the state machine; the events the streams do not take go to
        `on_event`, in order.

        Raises:
            FloodError: a flood limit was passed (the caller terminates).
            h2.exceptions.ProtocolError: the peer broke the protocol (its GOAWAY is queued).
        """
        self.bytes_read += len(data)
        # bytes() of a bytes object is that object: no copy on the common path.
        passed, goaways = self.scanner.feed(bytes(data))
        events = self.h2.receive_data(passed) if passed else []
        rest = self.on_event
        streams = self.streams
        for event in events:
            kind = type(event)
            if kind is h2.events.DataReceived:
                self._on_data_received(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamEnded:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.ended = True
                    stream.wake()
            elif kind is h2.events.WindowUpdated:
                stream_id = event.stream_id  # type: ignore[attr-defined]
                if stream_id:
                    stream = streams.get(stream_id)
                    if stream is not None:
                        stream.wake()
                else:
                    self._wake_window()
            elif kind is h2.events.RemoteSettingsChanged:
                self._wake_window()
                for stream in streams.values():
                    stream.wake()
                rest(event)
            elif kind is h2.events.TrailersReceived:
                self._on_trailers(event)  # type: ignore[arg-type]
            elif kind is h2.events.StreamReset:
                stream = streams.get(event.stream_id)  # type: ignore[attr-defined]
                if stream is not None:
                    stream.reset_code = int(event.error_code or 0)  # type: ignore[attr-defined]
                    stream.wake()
                rest(event)
            else:
                rest(event)
        for goaway in goaways:
            self.goaway = goaway
            rest(GoAwayReceived(goaway))

    def _on_data_received(self, event: h2.events.DataReceived) -> None:
        stream = self.streams.get(event.stream_id or 0)
        flow = event.flow_controlled_length or 0
        self._ack_connection(flow)
        if stream is None or stream.reset_code is not None:
            return
        if event.data:
            stream.chunks.append((event.data, flow))
            stream.data_read += len(event.data)
        elif flow:
            self.acknowledge(stream, flow)  # padding only
        if event.stream_ended is not None:
            stream.ended = True
        stream.wake()

    def _on_trailers(self, event: h2.events.TrailersReceived) -> None:
        stream = self.streams.get(event.stream_id or 0)
        if stream is None:
            return
        try:
            stream.trailers = trailers_from_h2(event.headers or ())
        except MalformedStream as exc:
            self.reset(stream, PROTOCOL_ERROR)
            self.on_event(StreamMalformed(stream, str(exc)))
        stream.ended = True
        stream.wake()

    def on_event(self, event: h2.events.Event) -> None:
        """An event for the subclass (a new request, a response head, a reset, a GOAWAY...)."""

    def acknowledge(self, stream: H2Stream, flow: int) -> None:
        """The reader took `flow` bytes of `stream`'s window: give them back to the peer (batched)."""
        if not flow or stream.reset_code is not None or stream.ended or self.error is not None:
            return  # nothing more comes on it: its window needs no room
        owed = stream.owed + flow
        if owed < self._batch:
            stream.owed = owed
            return
        stream.owed = 0
        try:
            self.h2.increment_flow_control_window(owed, stream_id=stream.id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.queued += 1

    def _ack_connection(self, flow: int) -> None:
        owed = self._owed + flow
        if owed < self._batch:
            self._owed = owed
            return
        self._owed = 0
        self.h2.increment_flow_control_window(owed)
        self.queued += 1

    def _wake_window(self) -> None:
        waiter = self._window_waiter
        if waiter is not None:
            self._window_waiter = None
            waiter.set()

    # -- sending -------------------------------------------------------------------------------------

    def reset(self, stream: H2Stream, code: int) -> None:
        """Reset `stream` with `code` (RST_STREAM) unless it is closed already."""
        if stream.reset_code is None:
            stream.reset_code = code
        if self.error is not None:
            return
        try:
            self.h2.reset_stream(stream.id, code)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            return
        self.queued += 1
        stream.wake()

    def _closed_error(self, stream: H2Stream, source: ErrorSource, what: str) -> Error:
        if self.error is not None:
            return Error(self.error.etype, source, context=f"{what}: {self.error.context}")
        return Error(
            ErrorType.CONNECTION_CLOSED,
            source,
            context=f"{what}: stream {stream.id} reset ({_code_name(stream.reset_code)})",
        )

    def send_headers(
        self, stream: H2Stream, fields: list[tuple[bytes, bytes]], *, end: bool, source: ErrorSource
    ) -> None:
        """Queue a HEADERS frame (a head or trailers) on `stream`.

        Raises:
            Error: WRITE_ERROR when the stream or the connection is closed.
        """
        if stream.reset_code is not None or self.error is not None:
            raise self._closed_error(stream, source, "sending a head")
        try:
            self.h2.send_headers(stream.id, fields, end_stream=end)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
            raise Error.because(ErrorType.WRITE_ERROR, f"stream {stream.id}", exc, source) from exc
        self.queued += sum(len(name) + len(value) for name, value in fields)

    async def send_data(self, stream: H2Stream, data: bytes, *, end: bool, source: ErrorSource) -> None:
        """Queue `data` on `stream` as the windows allow, waiting for window (see the module rules).

        Raises:
            Error: WRITE_ERROR when the stream or connection closed, WRITE_TIMEDOUT when the window stayed
                shut for `flow_control_timeout` seconds (the stream is reset).
        """
        conn = self.h2
        while True:
            if stream.reset_code is not None or self.error is not None:
                raise self._closed_error(stream, source, "sending the body")
            try:
                window = min(conn.local_flow_control_window(stream.id), conn.max_outbound_frame_size)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as exc:
                raise Error.because(ErrorType.WRITE_ERROR, f"stream {stream.id}", exc, source) from exc
            if not data:
                if end:
                    conn.end_stream(stream.id)
                    self.queued += 1
                    await self._flush()
                return
            if window <= 0:
                await self._wait_window(stream, source)
                continue
            piece, data = (data, b"") if len(data) <= window else (data[:window], data[window:])
            conn.send_data(stream.id, piece, end_stream=end and not data)
            stream.data_written += len(piece)
            self.queued += len(piece)
            await self._flush()
            if not data:
                return

    async def _wait_window(self, stream: H2Stream, source: ErrorSource) -> None:
        """Wait until `stream` may send again, at most `flow_control_timeout` seconds."""
        timeout = self.settings.flow_control_timeout
        with trio.move_on_after(timeout) as scope:
            await self._wait_for_window(stream)
        if scope.cancelled_caught:
            self.reset(stream, CANCEL)
            await self._flush()
            raise Error(
                ErrorType.WRITE_TIMEDOUT,
                source,
                context=f"stream {stream.id}: the peer's window stayed shut for {timeout:g} s",
            )

    async def _wait_for_window(self, stream: H2Stream) -> None:
        """Return once the windows may have changed (the server waits for its reader; a client reads)."""
        stream_waiter = stream.waiter()
        if self.h2.outbound_flow_control_window <= 0:
            waiter = self._window_waiter
            if waiter is None:
                waiter = self._window_waiter = trio.Event()
            await waiter.wait()
        else:
            await stream_waiter.wait()

    async def _flush(self) -> None:
        """Get what was queued on its way to the socket (the subclass's)."""
        raise NotImplementedError


class GoAwayReceived(h2.events.Event):
    """The peer's GOAWAY, taken out by the scanner (see `_frames`)."""

    def __init__(self, goaway: GoAway) -> None:
        self.goaway = goaway


class StreamMalformed(h2.events.Event):
    """A stream reset for a message that broke RFC 9113 §8 (trailers)."""

    def __init__(self, stream: H2Stream, reason: str) -> None:
        self.stream = stream
        self.reason = reason


def _code_name(code: int | None) -> str:
    if code is None:
        return "no code"
    try:
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"code {code}"
