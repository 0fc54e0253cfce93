"""A raw HTTP/1.1 client for end-to-end tests, over TCP (independent of our codec).

`exchange` (from `actorproxy.testing`, on h11) does what httpx hides: request and response trailers, chunked
request bodies sent piece by piece, and waiting until the proxy closes the connection. `send_raw` sends bytes
no client library would (malformed requests, split into as many writes as a test wants) and reads every
answer until the connection closes.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import attrs
import trio

from actorproxy.testing import RawResponse, exchange

__all__ = ["RawReply", "RawResponse", "exchange", "open_stream", "parse_responses", "send_raw"]


async def open_stream(base: str) -> trio.SocketStream:
    """A TCP connection to the host and port of `base` ("http://127.0.0.1:port")."""
    parts = urlsplit(base)
    assert parts.hostname is not None and parts.port is not None
    return await trio.open_tcp_stream(parts.hostname, parts.port)


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
