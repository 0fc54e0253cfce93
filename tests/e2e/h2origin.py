"""A small HTTP/2 origin for end-to-end tests, on the `h2` package directly (independent of our h2 code).

Routes (the path decides):
- `/echo...`: 200 with a JSON body describing the request (method, path, authority, headers, body,
  trailers).
- `/big?size=N`: N bytes of body, sent as the window allows.
- `/evil?name=N&value=V`: 200 with the field N: V as it is (unchecked: CR, LF, uppercase...).
- `/trailers`: a body, then trailers `grpc-status: 0` and `x-checksum: done`.
- `/slow?delay=S`: waits S seconds before answering.
Serves h2c with prior knowledge (`serve`), or TLS with ALPN h2 (`serve` with an `ssl_context`). With
`goaway_after=N`, a connection answers N requests, then sends GOAWAY naming the last of them and ignores
the streams after it (they were not processed: the proxy retries them elsewhere). Counts connections,
requests, and the most streams open at once on one connection.
"""

from __future__ import annotations

import json
import ssl
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h2.config
import h2.connection
import h2.events
import h2.exceptions
import trio
from hyperframe.frame import GoAwayFrame


class H2Origin:
    def __init__(self, *, max_concurrent_streams: int = 100, goaway_after: int | None = None) -> None:
        self.port = 0
        self.connections = 0
        self.requests: list[dict[str, Any]] = []
        self.max_open = 0
        #: Body bytes handed to the h2 state machine, by request path (what the windows let through).
        self.sent: dict[str, int] = {}
        self.max_concurrent_streams = max_concurrent_streams
        self.goaway_after = goaway_after

    async def serve(
        self,
        ssl_context: ssl.SSLContext | None = None,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners: list[Any] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        if ssl_context is not None:
            ssl_context.set_alpn_protocols(["h2"])
            listeners = [trio.SSLListener(listener, ssl_context) for listener in listeners]
        task_status.started(self.port)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        await _OriginConnection(self, stream).run()


class _OriginConnection:
    """One connection of an `H2Origin`."""

    def __init__(self, origin: H2Origin, stream: trio.abc.Stream) -> None:
        self.origin = origin
        self.stream = stream
        self.conn = h2.connection.H2Connection(
            h2.config.H2Configuration(
                client_side=False,
                header_encoding="utf-8",
                validate_outbound_headers=False,  # `/evil` sends what a well-behaved server would not
                normalize_outbound_headers=False,
            )
        )
        self.conn.local_settings.max_concurrent_streams = origin.max_concurrent_streams
        self.lock = trio.Lock()
        self.heads: dict[int, Any] = {}
        self.bodies: dict[int, bytearray] = {}
        self.trailers: dict[int, dict[str, str]] = {}
        self.windows: dict[int, trio.Event] = {}
        self.raw: list[bytes] = []
        self.answered = 0
        self.last: int | None = None
        self.open = 0
        self.max_sid = 0

    async def run(self) -> None:
        self.conn.initiate_connection()
        try:
            await self.flush()
            async with trio.open_nursery() as nursery:
                while True:
                    data = await self.stream.receive_some(65536)
                    if not data:
                        break
                    try:
                        events = self.conn.receive_data(data)
                    except h2.exceptions.ProtocolError:
                        await self.flush()
                        break
                    for event in events:
                        self.on_event(event, nursery)
                    await self.flush()
                nursery.cancel_scope.cancel()
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(self.stream)

    async def flush(self) -> None:
        async with self.lock:
            data = self.conn.data_to_send() + b"".join(self.raw)
            self.raw.clear()
            if data:
                await self.stream.send_all(data)

    def on_event(self, event: h2.events.Event, nursery: trio.Nursery) -> None:
        origin = self.origin
        if isinstance(event, h2.events.RequestReceived):
            sid = event.stream_id
            if origin.goaway_after is not None and self.answered >= origin.goaway_after:
                if self.last is None:
                    # By hand: the h2 package would close its state machine, and the streams up to the
                    # last one must still be answered.
                    self.last = self.max_sid
                    self.raw.append(GoAwayFrame(0, last_stream_id=self.last).serialize())
                return  # after our GOAWAY: not processed
            self.answered += 1
            self.max_sid = sid
            self.heads[sid] = event.headers
            self.open += 1
            origin.max_open = max(origin.max_open, self.open)
        elif isinstance(event, h2.events.DataReceived):
            self.bodies.setdefault(event.stream_id, bytearray()).extend(event.data)
            self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            self.trailers[event.stream_id] = dict(event.headers)
        elif isinstance(event, h2.events.StreamEnded):
            if event.stream_id in self.heads:
                nursery.start_soon(self.answer, event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated) and event.stream_id:
            if event.stream_id in self.windows:
                self.windows[event.stream_id].set()
        elif isinstance(event, (h2.events.WindowUpdated, h2.events.RemoteSettingsChanged)):
            for waiting in self.windows.values():
                waiting.set()

    async def answer(self, stream_id: int) -> None:
        head = dict(self.heads.pop(stream_id))
        body = bytes(self.bodies.pop(stream_id, b""))
        trailers = self.trailers.pop(stream_id, None)
        target = urlsplit(head[":path"])
        query = parse_qs(target.query)
        self.origin.requests.append({"path": head[":path"], "method": head[":method"], "body": body})
        if target.path.startswith("/slow"):
            await trio.sleep(float(query.get("delay", ["0.1"])[0]))
        fields: list[tuple[str, str]]
        if target.path.startswith("/big"):
            payload = b"x" * int(query.get("size", ["0"])[0])
            fields = [(":status", "200"), ("content-length", str(len(payload)))]
        elif target.path.startswith("/evil"):
            payload = b"evil"
            fields = [(":status", "200"), (query["name"][0], query["value"][0])]
        elif target.path.startswith("/trailers"):
            payload = b"with trailers"
            fields = [(":status", "200"), ("content-type", "application/grpc")]
        else:
            payload = json.dumps(
                {
                    "method": head[":method"],
                    "path": head[":path"],
                    "authority": head.get(":authority"),
                    "headers": [[k, v] for k, v in head.items() if not k.startswith(":")],
                    "body": body.decode("latin-1"),
                    "trailers": trailers,
                    "stream": stream_id,
                }
            ).encode()
            fields = [
                (":status", "200"),
                ("content-length", str(len(payload))),
                ("content-type", "application/json"),
            ]
        self.conn.send_headers(stream_id, fields)
        await self.send_body(stream_id, payload, head[":path"])
        if target.path.startswith("/trailers"):
            self.conn.send_headers(stream_id, [("grpc-status", "0"), ("x-checksum", "done")], end_stream=True)
        else:
            self.conn.end_stream(stream_id)
        self.open -= 1
        await self.flush()

    async def send_body(self, stream_id: int, payload: bytes, path: str) -> None:
        conn = self.conn
        view = payload
        while view:
            window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
            if window <= 0:
                event = self.windows.setdefault(stream_id, trio.Event())
                await self.flush()
                await event.wait()
                self.windows.pop(stream_id, None)
                continue
            conn.send_data(stream_id, view[:window])
            self.origin.sent[path] = self.origin.sent.get(path, 0) + min(window, len(view))
            view = view[window:]
