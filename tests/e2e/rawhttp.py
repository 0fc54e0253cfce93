"""A raw HTTP/1.1 client for end-to-end tests, on h11 over a trio stream (independent of our codec).

For what httpx hides: request and response trailers, chunked request bodies sent piece by piece, and
waiting until the proxy closes the connection (which it does only after the request's last phase ran, so
a test can count phase calls without sleeping). `send_raw` sends bytes no client library would (malformed
requests, split into as many writes as a test wants) and reads every answer until the connection closes.
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


@attrs.define
class RawReply:
    """Everything a server sent on one connection until it closed it, and how it closed."""

    #: The responses, in order: (status, headers, body); informational ones (1xx) included.
    responses: list[tuple[int, list[tuple[str, str]], bytes]]
    #: The server closed the connection cleanly (EOF after its last response).
    closed: bool
    #: The server reset the connection.
    reset: bool
    #: The bytes received, as they came.
    raw: bytes

    @property
    def statuses(self) -> list[int]:
        """The final statuses (1xx left out), in order."""
        return [status for status, _, _ in self.responses if status >= 200]

    def header(self, index: int, name: str) -> str | None:
        name = name.lower()
        return next((v for k, v in self.responses[index][1] if k.lower() == name), None)


def parse_responses(data: bytes) -> list[tuple[int, list[tuple[str, str]], bytes]]:
    """Split raw bytes into responses, each framed by Content-Length (none: no body, or up to the end).

    Raises:
        AssertionError: bytes that do not start a response.
    """
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, f"incomplete response head: {data[:200]!r}"
        lines = head.split(b"\r\n")
        start = lines[0].split(b" ", 2)
        assert len(start) >= 2 and start[0] == b"HTTP/1.1", lines[0]
        code = int(start[1])
        fields = (line.partition(b":") for line in lines[1:])
        headers = [(name.decode("latin-1"), value.strip().decode("latin-1")) for name, _, value in fields]
        length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
        if code < 200 or length is None:
            length = 0 if code < 200 or code in (204, 304) else len(rest)
        responses.append((code, headers, rest[:length]))
        data = rest[length:]
    return responses


async def send_raw(base: str, *pieces: bytes, read_timeout: float = 10.0) -> RawReply:
    """Send `pieces` as they are, one write each, on a new connection; read until the server closes it.

    A server that closes (or resets) while pieces are still going out stops the sending; what it answered
    is still read. `read_timeout` bounds the wait for the close (a guard against a hang, not a delay).
    """
    received = b""
    closed = reset = False
    async with await open_stream(base) as stream:
        try:
            for piece in pieces:
                await stream.send_all(piece)
        except trio.BrokenResourceError:
            pass  # the server stopped reading: what it said is still to be read
        try:
            with trio.fail_after(read_timeout):
                while chunk := await stream.receive_some(65536):
                    received += chunk
            closed = True
        except trio.BrokenResourceError:
            reset = True
    return RawReply(parse_responses(received), closed, reset, received)
