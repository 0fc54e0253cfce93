"""`Origin`: an HTTP/1.1 origin server on h11 (not the proxy's codec), for `MemoryNetwork.serve`.

Rules:
- It serves one stream per call, keep-alive: each request is read whole (body and trailers), recorded in
  `requests` on arrival, and answered with what `respond` returns, until the client closes, either side
  asks for `Connection: close`, or a response says `close=True`.
- A response gets a `Content-Length` unless its headers frame it (Content-Length or Transfer-Encoding); a
  chunked one goes out as the pieces `body` holds, one write each. A client gone mid-way ends the
  connection quietly: that is the proxy's to notice, not the origin's.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import attrs
import h11
import trio

from ._client import h11_bytes

__all__ = ["Origin", "OriginRequest", "OriginResponse"]

# Enough for any head a test sends; the proxy reads in 64 KiB pieces too.
_READ_SIZE = 65536


@attrs.frozen(kw_only=True)
class OriginRequest:
    """A request as it reached the origin."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    trailers: tuple[tuple[str, str], ...] = ()
    #: Which connection of this origin carried it (0 for the first it served).
    connection: int = 0

    def header(self, name: str) -> str | None:
        """The first value of the field `name` (any case), or None."""
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


@attrs.frozen(kw_only=True)
class OriginResponse:
    """What the origin answers: `body` as one piece, or several (written one by one, e.g. chunked)."""

    status: int = 200
    headers: Sequence[tuple[str, str]] = ()
    body: bytes | Sequence[bytes] = b""
    trailers: Sequence[tuple[str, str]] = ()
    #: Close the connection after this response.
    close: bool = False


Respond = Callable[[OriginRequest], Awaitable[OriginResponse]]


class Origin:
    """An origin server: answers every request with `respond(request)` and records what it received.

    Args:
        respond: what to answer; by default 200 with the body `"<name> <method> <target>"`.
        name: sent in an `X-Origin` field by the default answer.
    """

    def __init__(self, respond: Respond | None = None, *, name: str = "origin") -> None:
        self.name = name
        self.respond: Respond = respond if respond is not None else self._echo
        #: Every request received, in order.
        self.requests: list[OriginRequest] = []
        #: Connections served, open or closed.
        self.connections = 0

    def __repr__(self) -> str:
        return f"<Origin {self.name} connections={self.connections} requests={len(self.requests)}>"

    @property
    def targets(self) -> list[str]:
        """The target of every request received, in order."""
        return [request.target for request in self.requests]

    async def _echo(self, request: OriginRequest) -> OriginResponse:
        body = f"{self.name} {request.method} {request.target}".encode()
        return OriginResponse(headers=[("Content-Type", "text/plain"), ("X-Origin", self.name)], body=body)

    async def serve(self, stream: trio.abc.Stream) -> None:
        """Serve the requests of one connection until it ends (a `MemoryNetwork` handler)."""
        number = self.connections
        self.connections += 1
        conn = h11.Connection(h11.SERVER)
        try:
            while True:
                request = await _read_request(conn, stream, number)
                if request is None:
                    return
                self.requests.append(request)
                response = await self.respond(request)
                await _write_response(conn, stream, request, response)
                if response.close or conn.our_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return


def _text(fields: Sequence[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    return tuple((name.decode("latin-1"), value.decode("latin-1")) for name, value in fields)


async def _read_request(conn: h11.Connection, stream: trio.abc.Stream, number: int) -> OriginRequest | None:
    head: h11.Request | None = None
    body = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            if conn.they_are_waiting_for_100_continue:
                informational = h11.InformationalResponse(status_code=100, headers=[])
                await stream.send_all(h11_bytes(conn, informational))
            conn.receive_data(bytes(await stream.receive_some(_READ_SIZE)))
        elif isinstance(event, h11.Request):
            head = event
        elif isinstance(event, h11.Data):
            body += event.data
        elif isinstance(event, h11.EndOfMessage):
            assert head is not None
            return OriginRequest(
                method=head.method.decode(),
                target=head.target.decode(),
                headers=_text(head.headers.raw_items()),
                body=bytes(body),
                trailers=_text(event.headers.raw_items()),
                connection=number,
            )
        else:  # ConnectionClosed, or PAUSED after a request this origin would not read
            return None


async def _write_response(
    conn: h11.Connection, stream: trio.abc.Stream, request: OriginRequest, response: OriginResponse
) -> None:
    pieces = [response.body] if isinstance(response.body, bytes) else list(response.body)
    headers = list(response.headers)
    if not {name.lower() for name, _ in headers} & {"content-length", "transfer-encoding"}:
        headers.append(("Content-Length", str(sum(map(len, pieces)))))
    if response.close:
        headers.append(("Connection", "close"))
    data = h11_bytes(conn, h11.Response(status_code=response.status, headers=headers))
    if request.method == "HEAD":
        pieces = []  # the length is that of a GET's body; the body itself is not sent (RFC 9110 §9.3.2)
    for piece in pieces:
        if piece:
            data += h11_bytes(conn, h11.Data(data=piece))
            if len(pieces) > 1:
                await stream.send_all(data)
                data = b""
    data += h11_bytes(conn, h11.EndOfMessage(headers=list(response.trailers)))
    await stream.send_all(data)
