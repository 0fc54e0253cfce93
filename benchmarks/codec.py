"""Micro-benchmark of the HTTP/1.1 codecs: µs per request/response cycle, each codec in the same run.

    python benchmarks/codec.py             # every available codec (h11, httptools when installed)
    python benchmarks/codec.py --quick     # fewer cycles, noisier
    python benchmarks/codec.py --json      # the same measurements as JSON on stdout

What is measured (best of several repetitions, each in a fresh `trio.run`):

1. server side: `read_request`, the body if any, `write_response(..., end=True)` (or a head, four body
   pieces and trailers), `start_next_cycle`, on a stream that hands out the same request bytes on every read
   and drops what is written: the codec alone, no scheduling.
2. client side: `write_request(..., end=True)`, `read_response`, the body (`read_body_nowait` first, as the
   engine does), `start_next_cycle`, on a stream that answers every read with the same response bytes.
3. both sides: a client codec and a server codec of the same kind talking over
   `trio.testing.memory_stream_pair`, one task each: a full cycle with trio's scheduling in it.

Each for a curl-like GET answered with 5 bytes, a browser-like GET (12 fields) answered with 6 fields, and a
16 KiB POST (Content-Length) answered chunked in 4 pieces with a trailer.

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio
import trio.testing

from actorproxy.http import (
    ClientSide,
    Codec,
    Headers,
    RequestHeader,
    ResponseHeader,
    ServerSide,
    available_codecs,
    select_codec,
)

CURL_GET = (
    b"GET /api/items?id=42 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n"
)
BROWSER_GET = (
    b"GET /static/app.js?v=3 HTTP/1.1\r\nHost: www.example.com\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="124", "Not-A.Brand";v="99"\r\nsec-ch-ua-mobile: ?0\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0\r\n"
    b'sec-ch-ua-platform: "Linux"\r\nAccept: */*\r\nSec-Fetch-Site: same-origin\r\n'
    b"Sec-Fetch-Mode: no-cors\r\nReferer: https://www.example.com/\r\nAccept-Encoding: gzip, deflate, br\r\n"
    b"Accept-Language: en-GB,en;q=0.9\r\n\r\n"
)
POST = (
    b"POST /upload HTTP/1.1\r\nHost: example.com\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 16384\r\n\r\n" + b"x" * 16384
)
BROWSER_FIELDS = [
    ("Content-Type", "application/javascript"),
    ("Cache-Control", "public, max-age=31536000, immutable"),
    ("ETag", '"5f3a-1b2c"'),
    ("Last-Modified", "Tue, 07 May 2024 10:00:00 GMT"),
    ("Vary", "Accept-Encoding"),
    ("Server", "actorproxy"),
]
CASES = {"curl GET": CURL_GET, "browser GET": BROWSER_GET, "16 KiB POST, chunked answer": POST}


async def answer(server: ServerSide, request: bytes) -> None:
    """Read one request (and its body) and answer it as the case says."""
    await server.read_request()
    while await server.read_body():
        pass
    if request is POST:
        await server.write_response(ResponseHeader(200, [("Content-Type", "text/plain")]))
        for _ in range(4):
            await server.write_body(b"y" * 1024)
        await server.finish(Headers([("X-Checksum", "1")]))
    elif request is BROWSER_GET:
        await server.write_response(ResponseHeader(200, BROWSER_FIELDS), b"console.log(1);\n" * 8, end=True)
    else:
        await server.write_response(ResponseHeader(200, [("Content-Type", "text/plain")]), b"hello", end=True)


async def ask(conn: ClientSide, request: bytes) -> None:
    """Send the case's request as the engine does (head and body in one write), read the whole answer."""
    head, _, body = request.partition(b"\r\n\r\n")
    start, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = start.split(" ")
    fields = [(name, value) for name, _, value in (line.partition(": ") for line in lines)]
    await conn.write_request(RequestHeader(method, target, fields), body, end=True)
    await conn.read_response()
    try:
        piece = conn.read_body_nowait()
    except trio.WouldBlock:
        piece = b""
    while piece is not None:
        piece = await conn.read_body()


class Replay(trio.abc.Stream):
    """Answers every read with `data`; keeps what is written in `sink`, if given."""

    def __init__(self, data: bytes, sink: list[bytes] | None = None) -> None:
        self.data = data
        self.sink = sink

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self.sink is not None:
            self.sink.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        return self.data

    async def aclose(self) -> None:
        pass


async def server_side(codec: Codec, request: bytes, cycles: int) -> None:
    server = codec.server(Replay(request))
    for _ in range(cycles):
        await answer(server, request)
        server.start_next_cycle()


async def client_side(codec: Codec, request: bytes, cycles: int) -> None:
    wire: list[bytes] = []
    await answer(select_codec("h11").server(Replay(request, wire)), request)
    conn = codec.client(Replay(b"".join(wire)))
    for _ in range(cycles):
        await ask(conn, request)
        conn.start_next_cycle()


async def both_sides(codec: Codec, request: bytes, cycles: int) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()

    async def serve() -> None:
        server = codec.server(server_stream)
        for _ in range(cycles):
            await answer(server, request)
            server.start_next_cycle()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        conn = codec.client(client_stream)
        for _ in range(cycles):
            await ask(conn, request)
            conn.start_next_cycle()


Side = Callable[[Codec, bytes, int], Awaitable[None]]
SIDES: dict[str, Side] = {
    "server side": server_side,
    "client side": client_side,
    "both sides over memory streams": both_sides,
}


def best_us(side: Side, codec: Codec, request: bytes, cycles: int, reps: int) -> float:
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        trio.run(side, codec, request, cycles)
        best = min(best, time.perf_counter() - start)
    return best / cycles * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer cycles and repetitions")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    cycles, reps = (500, 3) if args.quick else (3000, 7)
    codecs = available_codecs()[::-1]  # h11, the reference, first
    results: list[dict[str, Any]] = []
    for side_name, side in SIDES.items():
        for case_name, request in CASES.items():
            row: dict[str, Any] = {"side": side_name, "case": case_name}
            for name in codecs:
                row[name] = round(best_us(side, select_codec(name), request, cycles, reps), 1)
            results.append(row)
    if args.json:
        machine = {"python": sys.version.split()[0], "machine": platform.machine()}
        json.dump({**machine, "results": results}, sys.stdout)
        return
    print(f"µs per cycle (best of {reps} x {cycles} cycles), Python {sys.version.split()[0]}")
    ratio = len(codecs) > 1
    print(
        f"{'side':<32}{'case':<30}"
        + "".join(f"{name:>12}" for name in codecs)
        + ("   ratio" if ratio else "")
    )
    for row in results:
        line = f"{row['side']:<32}{row['case']:<30}" + "".join(f"{row[name]:>12.1f}" for name in codecs)
        if ratio:
            line += f"{row[codecs[0]] / row[codecs[-1]]:>7.1f}x"
        print(line)


if __name__ == "__main__":
    main()
