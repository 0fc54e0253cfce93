"""`exchange`: one HTTP/1.1 request and its response over any trio stream, on h11 (not the proxy's codec).

For what a client library hides: request and response trailers, a chunked request body sent piece by
piece, informational responses, and waiting until the server closes the connection (`until_closed`), which
a proxy does only after the request's last phase ran, so a test can count phase calls without sleeping.
"""

from __future__ import annotations

from collections.abc import Sequence

import attrs
import h11
import trio

__all__ = ["RawResponse", "exchange"]


@attrs.define
class RawResponse:
    """A response as the client read it."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    #: The statuses of the informational (1xx) responses before it.
    informational: list[int]
    #: The server closed the connection after the response (read until EOF).
    closed: bool

    def header(self, name: str) -> str | None:
        """The first value of the field `name` (any case), or None."""
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


def h11_bytes(conn: h11.Connection, event: h11.Event) -> bytes:
    """The bytes `conn` sends for `event`."""
    data = conn.send(event)
    assert data is not None  # only ConnectionClosed sends nothing
    return data


async def exchange(
    stream: trio.abc.Stream,
    method: str,
    target: str,
    *,
    headers: Sequence[tuple[str, str]] = (),
    body: Sequence[bytes] = (),
    trailers: Sequence[tuple[str, str]] = (),
    until_closed: bool = False,
) -> RawResponse:
    """Send one request (`body` pieces one write each; chunked if the headers say so) and read the response.

    `Host: localhost` comes first unless `headers` has a Host. A connection carries one `exchange` after
    another for as long as the server keeps it alive.

    Args:
        until_closed: keep reading after the response until the server closes the connection.

    Raises:
        AssertionError: with `until_closed`, the server sent more bytes after the response.
        h11.RemoteProtocolError: the server's bytes are not a response (or the connection closed before one).
    """
    conn = h11.Connection(h11.CLIENT)
    has_host = any(name.lower() == "host" for name, _ in headers)
    all_headers = [*headers] if has_host else [("Host", "localhost"), *headers]
    await stream.send_all(h11_bytes(conn, h11.Request(method=method, target=target, headers=all_headers)))
    for piece in body:
        await stream.send_all(h11_bytes(conn, h11.Data(data=piece)))
    await stream.send_all(h11_bytes(conn, h11.EndOfMessage(headers=list(trailers))))
    status = 0
    response_headers: list[tuple[str, str]] = []
    informational: list[int] = []
    received = bytearray()
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(bytes(await stream.receive_some(65536)))
            continue
        if isinstance(event, h11.InformationalResponse):
            informational.append(event.status_code)
        elif isinstance(event, h11.Response):
            status = event.status_code
            response_headers = [(k.decode(), v.decode()) for k, v in event.headers.raw_items()]
        elif isinstance(event, h11.Data):
            received += event.data
        elif isinstance(event, h11.EndOfMessage):
            response_trailers = [(k.decode(), v.decode()) for k, v in event.headers.raw_items()]
            break
        else:
            raise h11.RemoteProtocolError(f"the connection ended before the response did: {event!r}")
    closed = False
    if until_closed:
        leftover, _ = conn.trailing_data
        extra = leftover or await stream.receive_some(65536)
        if extra:
            raise AssertionError(f"bytes after the response: {extra!r}")
        closed = True
    return RawResponse(status, response_headers, bytes(received), response_trailers, informational, closed)
