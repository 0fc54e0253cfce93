"""The floor under any trio proxy: bytes relayed between sockets, with httptools finding where messages end.

    python benchmarks/trio_floor_proxy.py --listen 127.0.0.1:8082 --upstream 127.0.0.1:8080

Not a proxy anyone should run: it is what `benchmarks/proxy.py` measures as "bare trio + httptools", to
show how fast a proxy on trio can be at all on this machine, next to aiohttp + uvloop. Each client
connection gets its own upstream connection, opened with its first request and kept for its life (no pool
to look in, no liveness check). Request and response bytes go on as they came: no header is read, checked,
added or removed (no forwarding headers, no hop-by-hop removal, no validation beyond what llhttp does), no
phases, no timeouts, no request id, no metrics. Sockets are used as the fastest trio proxy would: the
syscall first, a wait only when it would block, and a checkpoint after each response so that one busy
connection does not starve the others; a request that asks to close (`Connection: close`) ends its
connection after its response. Requests without a body and responses framed by Content-Length or
chunked are what it handles (the benchmark's); anything else ends the connection.
"""

from __future__ import annotations

import argparse
import socket

import httptools
import trio

# The read size of both sides (the proxy's own).
READ_SIZE = 65536


class _Ends:
    """An httptools callback target that counts the messages completed, and whether the last one lets the
    connection go on."""

    def __init__(self) -> None:
        self.completed = 0
        self.keep_alive = True
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None

    def on_headers_complete(self) -> None:
        assert self.parser is not None
        self.keep_alive = self.parser.should_keep_alive()

    def on_message_complete(self) -> None:
        self.completed += 1


async def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(READ_SIZE)
    except BlockingIOError:
        pass
    while True:
        await trio.lowlevel.wait_readable(sock)
        try:
            return sock.recv(READ_SIZE)
        except BlockingIOError:
            continue


async def send_all(sock: socket.socket, data: bytes) -> None:
    """Send all of `data` on the non-blocking `sock`, waiting only when its buffer is full."""
    view = memoryview(data)
    while view:
        try:
            sent = sock.send(view)
        except BlockingIOError:
            await trio.lowlevel.wait_writable(sock)
            continue
        view = view[sent:]


async def _connect(upstream: tuple[str, int]) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setblocking(False)
    try:
        sock.connect(upstream)
    except BlockingIOError:
        await trio.lowlevel.wait_writable(sock)
    return sock


async def _serve(client: socket.socket, upstream: tuple[str, int]) -> None:
    requests, responses = _Ends(), _Ends()
    request_parser = requests.parser = httptools.HttpRequestParser(requests)
    origin: socket.socket | None = None
    response_parser: httptools.HttpResponseParser | None = None
    try:
        while True:
            data = await _recv(client)
            if not data:
                return
            request_parser.feed_data(data)
            if origin is None:
                origin = await _connect(upstream)
                response_parser = responses.parser = httptools.HttpResponseParser(responses)
            await send_all(origin, data)
            assert response_parser is not None
            while responses.completed < requests.completed:
                answer = await _recv(origin)
                if not answer:
                    return
                response_parser.feed_data(answer)
                await send_all(client, answer)
            if not requests.keep_alive:
                return  # Connection: close (the benchmark's probes ask for it)
            await trio.lowlevel.checkpoint()
    except (OSError, httptools.HttpParserError):
        return
    finally:
        client.close()
        if origin is not None:
            origin.close()


async def main(listen: tuple[str, int], upstream: tuple[str, int]) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(listen)
    listener.listen(1024)
    listener.setblocking(False)
    async with trio.open_nursery() as nursery:
        while True:
            await trio.lowlevel.wait_readable(listener)
            while True:
                try:
                    client, _ = listener.accept()
                except BlockingIOError:
                    break
                client.setblocking(False)
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                nursery.start_soon(_serve, client, upstream)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--listen", required=True, type=_address)
    parser.add_argument("--upstream", required=True, type=_address)
    args = parser.parse_args()
    trio.run(main, args.listen, args.upstream)
