"""A raw HTTP/1.1 client for end-to-end tests, on h11 over a trio stream (independent of our codec).

For what httpx hides: request and response trailers, chunked request bodies sent piece by piece, and
waiting until the proxy closes the connection (which it does only after the request's last phase ran, so
a test can count phase calls without sleeping).
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

import attrs
import h11
import trio


@attrs.define
class RawResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    trailers: list[tuple[str, str]]
    informational: list[int]
    #: The server closed the connection after the response (read until EOF).
    closed: bool

    def header(self, name: str) -> str | None:
        name = name.lower()
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


async def open_stream(base: str) -> trio.SocketStream:
    """A TCP connection to the host and port of `base` ("http://127.0.0.1:port")."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    return await trio.open_tcp_stream(parts.hostname, parts.port)


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
    """Send one request (`body` pieces as they are; chunked if the headers say so) and read the response.

    With `until_closed`, keep reading after the response until the server closes the connection, and fail
    if it sends anything more.
    """
    conn = h11.Connection(h11.CLIENT)
    all_headers = [("Host", "localhost"), *headers]
    data = conn.send(h11.Request(method=method, target=target, headers=all_headers))
    await stream.send_all(data)
    for piece in body:
        await stream.send_all(conn.send(h11.Data(data=piece)))
    await stream.send_all(conn.send(h11.EndOfMessage(headers=list(trailers))))
    status = 0
    response_headers: list[tuple[str, str]] = []
    informational: list[int] = []
    received = b""
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
            received += bytes(event.data)
        elif isinstance(event, h11.EndOfMessage):
            response_trailers = [(k.decode(), v.decode()) for k, v in event.headers.raw_items()]
            break
        else:
            raise AssertionError(f"unexpected {event!r}")
    closed = False
    if until_closed:
        leftover, _ = conn.trailing_data
        assert not leftover, f"bytes after the response: {leftover!r}"
        extra = await stream.receive_some(65536)
        assert extra == b"", f"bytes after the response: {extra!r}"
        closed = True
    return RawResponse(status, response_headers, received, response_trailers, informational, closed)
