"""A raw HTTP/2 client for end-to-end tests, on the `h2` package directly (independent of our h2 code): it
writes exactly the frames a test asks for (well-formed through the `h2` package, or raw bytes) and collects
what the server sends back, per stream.

`RawH2` keeps, for each stream: the response head, the body, the trailers, whether it ended, and the code of
an RST_STREAM; for the connection: the GOAWAY (last stream id and code) and whether the server closed.
Reading is explicit (`until(condition)`, bounded by a deadline), so a test says what it waits for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
import trio


@attrs.define
class Answer:
    """What came back on one stream."""

    status: int | None = None
    headers: dict[str, str] = attrs.Factory(dict)
    body: bytearray = attrs.Factory(bytearray)
    trailers: dict[str, str] | None = None
    ended: bool = False
    reset: int | None = None


class RawH2:
    """A client connection to `port` (see the module docstring).

    Args:
        stream: the connection (cleartext: the preface goes first, with prior knowledge).
        settings: our SETTINGS (e.g. a small initial window); None: the `h2` package's.
        held: streams whose DATA is not acknowledged (their window closes; the connection's is given back),
            until the test calls `ack`.
    """

    def __init__(
        self, stream: trio.abc.Stream, *, settings: dict[int, int] | None = None, held: set[int] | None = None
    ) -> None:
        self.stream = stream
        config = h2.config.H2Configuration(
            client_side=True,
            header_encoding="utf-8",
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
        )
        self.conn = h2.connection.H2Connection(config)
        if settings:
            self.conn.local_settings = h2.settings.Settings(client=True, initial_values=settings)
        self.held = held if held is not None else set()
        self.answers: dict[int, Answer] = {}
        #: The server's GOAWAY: (last stream id, error code); taken out of the bytes before the `h2` package
        #: sees them, since it would close its state machine and refuse the frames of streams that finish.
        self.goaway: tuple[int, int] | None = None
        self.closed = False
        #: The `h2` package refused what the server sent (frames of streams written by hand with
        #: `send_raw`, which it does not know): from then on only GOAWAY and the close are followed.
        self.confused = False
        self._buf = b""
        self.events: list[h2.events.Event] = []

    @classmethod
    async def connect(cls, port: int, **options: Any) -> RawH2:
        client = cls(await trio.open_tcp_stream("127.0.0.1", port), **options)
        client.conn.initiate_connection()
        await client.flush()
        return client

    async def aclose(self) -> None:
        await trio.aclose_forcefully(self.stream)

    async def flush(self) -> None:
        data = self.conn.data_to_send()
        if data:
            await self.stream.send_all(data)

    async def send_raw(self, data: bytes) -> None:
        """Bytes as they are, after whatever the `h2` package has queued."""
        await self.flush()
        await self.stream.send_all(data)

    async def request(
        self, path: str, *, method: str = "GET", body: bytes = b"", extra: list[tuple[str, str]] | None = None
    ) -> int:
        """Send a request on a new stream; return its id."""
        headers = [(":method", method), (":scheme", "http"), (":authority", "localhost"), (":path", path)]
        return await self.send_head([*headers, *(extra or [])], body)

    async def send_head(self, headers: list[tuple[str, str]], body: bytes = b"") -> int:
        """Send `headers` as they are (pseudo-header fields included, unchecked) on a new stream, then
        `body`; return the stream's id."""
        stream_id = self.conn.get_next_available_stream_id()
        self.conn.send_headers(stream_id, headers, end_stream=not body)
        self.answers[stream_id] = Answer()
        await self.flush()
        if body:
            await self.send_body(stream_id, body)
        return stream_id

    async def send_body(self, stream_id: int, body: bytes, *, end: bool = True) -> None:
        """Send `body` as the windows allow (reading the server meanwhile)."""
        while body:
            window = min(self.conn.local_flow_control_window(stream_id), self.conn.max_outbound_frame_size)
            if window <= 0:
                await self._read()
                continue
            piece, body = body[:window], body[window:]
            self.conn.send_data(stream_id, piece, end_stream=end and not body)
            await self.flush()

    async def ack(self, stream_id: int, size: int) -> None:
        """Give `size` bytes of window back on `stream_id` (and on the connection)."""
        self.conn.acknowledge_received_data(size, stream_id)
        await self.flush()

    async def release(self, stream_id: int, size: int) -> None:
        """Stop holding `stream_id`: give its window back and read it to its end; its body must be `size`
        bytes."""
        await self.ack(stream_id, size)
        self.held.discard(stream_id)
        await self.until(lambda: self.done(stream_id))
        assert len(self.answers[stream_id].body) == size

    async def until(self, condition: Callable[[], bool], timeout: float = 10.0) -> None:
        """Read until `condition()` holds (or the server closed: then it must hold too).

        Raises:
            AssertionError: the server closed and the condition still does not hold.
            trio.TooSlowError: `timeout` seconds passed.
        """
        with trio.fail_after(timeout):
            while not condition():
                assert not self.closed, "the server closed the connection"
                await self._read()

    async def _read(self) -> None:
        try:
            data = await self.stream.receive_some(65536)
        except trio.BrokenResourceError:
            data = b""
        if not data:
            self.closed = True
            return
        data = self._without_goaway(data)
        if self.confused:
            return
        try:
            events = self.conn.receive_data(data)
        except h2.exceptions.ProtocolError:
            self.confused = True
            return
        for event in events:
            self.events.append(event)
            self._take(event)
        try:
            await self.flush()
        except trio.BrokenResourceError:
            self.closed = True  # the server closed meanwhile: what it sent before is read already

    def _take(self, event: h2.events.Event) -> None:
        stream_id = getattr(event, "stream_id", None)
        answer = self.answers.get(stream_id) if stream_id else None
        if isinstance(event, h2.events.ResponseReceived) and answer is not None:
            headers = dict(event.headers)
            answer.status = int(headers.pop(":status"))
            answer.headers = headers
        elif isinstance(event, h2.events.DataReceived) and answer is not None:
            answer.body += event.data
            if event.stream_id in self.held:
                self.conn.increment_flow_control_window(event.flow_controlled_length)
            else:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived) and answer is not None:
            answer.trailers = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded) and answer is not None:
            answer.ended = True
        elif isinstance(event, h2.events.StreamReset) and answer is not None:
            answer.reset = int(event.error_code)

    def _without_goaway(self, data: bytes) -> bytes:
        view = self._buf + data
        kept = bytearray()
        pos = 0
        while len(view) - pos >= 9:
            length = int.from_bytes(view[pos : pos + 3], "big")
            if len(view) - pos < 9 + length:
                break
            frame = view[pos : pos + 9 + length]
            if frame[3] == 7:  # GOAWAY
                self.goaway = (
                    int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF,
                    int.from_bytes(frame[13:17], "big"),
                )
            else:
                kept += frame
            pos += 9 + length
        self._buf = view[pos:]
        return bytes(kept)

    def done(self, stream_id: int) -> bool:
        answer = self.answers[stream_id]
        return answer.ended or answer.reset is not None


async def drain_finishes_held_stream(
    client: RawH2, stop: Callable[[], None], held: trio.Event, release: trio.Event
) -> None:
    """Ask for `/hold`, and once the origin holds it (`held`), `stop()` the proxy: its GOAWAY names that
    stream (NO_ERROR), which still finishes, 200, once the origin lets it go (`release`); then the proxy
    closes the connection."""
    stream_id = await client.request("/hold")
    with trio.fail_after(5):
        await held.wait()
    stop()
    await client.until(lambda: client.goaway is not None)
    assert client.goaway == (stream_id, 0)
    assert not client.done(stream_id)
    release.set()
    await client.until(lambda: client.done(stream_id))
    assert client.answers[stream_id].status == 200
    await client.until(lambda: client.closed)
