"""Response compression's cost per MiB: each coding and level, both ways, through `ResponseCompression`.

    python benchmarks/compression.py            # every coding at a few levels, 8 MiB each
    python benchmarks/compression.py --quick    # 2 MiB each, noisier
    python benchmarks/compression.py --json     # the same as JSON on stdout

What is measured: a `ResponseCompression` deciding on a text/html response head, then its body filter fed
a body in 64 KiB pieces (what the proxy reads at once), as the proxy's exchange does; CPU time per MiB of
the uncompressed body, and the ratio (compressed size / original). Decompression: the same body compressed
beforehand, decoded by a context with decompression on, per MiB of decoded output. Best of three runs.

Two bodies: an HTML-like page (repetitive markup, compresses well) and JSON records with varied numbers
(compresses less). Both are generated with a fixed seed. No I/O, no event loop: the coder's cost alone.

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from collections.abc import Iterator

from actorproxy.http import RequestHeader, ResponseCompression, ResponseHeader

MIB = 1024 * 1024
PIECE = 64 * 1024
LEVELS = {"gzip": (1, 6, 9), "br": (1, 4, 6, 9), "zstd": (1, 3, 9)}


def html_body(size: int) -> bytes:
    rng = random.Random(1)
    words = ["proxy", "actor", "trio", "supervisor", "backend", "health", "route", "upstream", "client"]
    parts: list[str] = []
    total = 0
    while total < size:
        line = f'<li class="item-{rng.randrange(50)}"><a href="/p/{rng.randrange(10**6)}">' + " ".join(
            rng.choice(words) for _ in range(8)
        )
        line += "</a></li>\n"
        parts.append(line)
        total += len(line)
    return "".join(parts).encode()[:size]


def json_body(size: int) -> bytes:
    rng = random.Random(2)
    parts: list[str] = []
    total = 0
    while total < size:
        record = json.dumps({"id": rng.randrange(10**9), "score": rng.random(), "tags": [rng.randrange(999)]})
        parts.append(record + "\n")
        total += len(record) + 1
    return "".join(parts).encode()[:size]


def pieces(body: bytes) -> Iterator[bytes]:
    for start in range(0, len(body), PIECE):
        yield body[start : start + PIECE]


def run_once(body: bytes, accept: str, level: int, *, encoding: str | None = None) -> tuple[float, int]:
    request = RequestHeader.build("GET", "/", [("Accept-Encoding", accept)])
    compression = ResponseCompression(level, decompress=encoding is not None)
    compression.request_filter(request)
    head = ResponseHeader.build(200, [("Content-Type", "text/html")])
    if encoding is not None:
        head.insert_header("Content-Encoding", encoding)
    started = time.process_time()
    compression.response_header_filter(head, False)
    out = 0
    for piece in pieces(body):
        out += sum(len(p) for p in compression.response_body_pieces(piece, False))
    out += sum(len(p) for p in compression.response_body_pieces(None, True))
    return time.process_time() - started, out


def measure(body: bytes, coding: str, level: int, repeat: int) -> dict[str, object]:
    best = min(run_once(body, coding, level)[0] for _ in range(repeat))
    _, size = run_once(body, coding, level)
    compressed = b"".join(_compressed(body, coding, level))
    decode = min(run_once(compressed, "identity", 0, encoding=coding)[0] for _ in range(repeat))
    mib = len(body) / MIB
    return {
        "coding": coding,
        "level": level,
        "compress_ms_per_mib": round(best * 1000 / mib, 2),
        "ratio": round(size / len(body), 3),
        "decompress_ms_per_mib": round(decode * 1000 / mib, 2),
    }


def _compressed(body: bytes, coding: str, level: int) -> Iterator[bytes]:
    request = RequestHeader.build("GET", "/", [("Accept-Encoding", coding)])
    compression = ResponseCompression(level)
    compression.request_filter(request)
    compression.response_header_filter(ResponseHeader.build(200, [("Content-Type", "text/html")]), False)
    for piece in pieces(body):
        yield from compression.response_body_pieces(piece, False)
    yield from compression.response_body_pieces(None, True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="2 MiB bodies instead of 8")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    args = parser.parse_args()
    size = (2 if args.quick else 8) * MIB
    rows = []
    for name, body in (("html", html_body(size)), ("json", json_body(size))):
        for coding, levels in LEVELS.items():
            for level in levels:
                rows.append({"body": name, **measure(body, coding, level, 3)})
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| body | coding | level | compress ms/MiB | ratio | decompress ms/MiB |")
    print("| --- | --- | --- | --- | --- | --- |")
    for row in rows:
        cells = ("body", "coding", "level", "compress_ms_per_mib", "ratio", "decompress_ms_per_mib")
        print("| " + " | ".join(str(row[cell]) for cell in cells) + " |")


if __name__ == "__main__":
    main()
