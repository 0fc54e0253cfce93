"""Every codec against the h11 reference on the same bytes: what one accepts, refuses or writes, all do.

Each scenario drives a codec over a scripted stream (the same reads, split the same way, for every codec)
and records everything a caller can observe: heads, body pieces, trailers, flags, the bytes written, and each
error's type, source, status hint and retry decision. The record of every other codec must equal h11's.
The inputs are the places where llhttp and h11 disagree (llhttp refuses what h11 takes, or the reverse),
plus the framing and keep-alive corners of both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorproxy.config import HttpLimits
from actorproxy.http import (
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    ProtocolError,
    RequestHeader,
    ResponseHeader,
    available_codecs,
    select_codec,
)
from actorproxy.testing import ScriptedStream, Starved

OTHER_CODECS = [name for name in available_codecs() if name != "h11"]

pytestmark = pytest.mark.skipif(not OTHER_CODECS, reason="only the h11 codec is installed")


def failure(exc: BaseException) -> tuple[Any, ...]:
    if isinstance(exc, Starved):
        return ("waits",)
    assert isinstance(exc, Error), repr(exc)
    hint = exc.status_hint if isinstance(exc, ProtocolError) else None
    return (type(exc).__name__, exc.etype.name, exc.source.name, hint, exc.retry.name)


async def attempt(
    log: list[Any], what: str, call: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any
) -> tuple[bool, Any]:
    """`await call(*args, **kwargs)`; an error (or a wait for more bytes) goes into `log` as `what`."""
    try:
        return True, await call(*args, **kwargs)
    except (Error, Starved) as exc:
        log.append((what, *failure(exc)))
        return False, None


def splits(data: bytes) -> list[list[bytes]]:
    """The ways a peer's bytes arrive: at once, byte by byte, and cut at a few places."""
    cuts = sorted({1, len(data) // 3, len(data) // 2, len(data) - 1} - {0, len(data)})
    return [[data], [data[i : i + 1] for i in range(len(data))]] + [[data[:c], data[c:]] for c in cuts]


# -- the server side -------------------------------------------------------------------------------------


async def serve(
    codec: Codec,
    reads: list[bytes],
    *,
    close: bool,
    max_head_size: int = 1024,
    limits: HttpLimits | None = None,
) -> list[Any]:
    """Serve up to three requests from `reads`, answering each; what the codec did, in order."""
    stream = ScriptedStream(reads, close=close)
    if limits is None:
        server = codec.server(stream, max_head_size=max_head_size)
    else:
        server = codec.server(stream, limits=limits)
    log: list[Any] = []
    for _ in range(3):
        ok, request = await attempt(log, "read_request", server.read_request)
        if not ok:
            await attempt(log, "answer", server.write_response, ResponseHeader(400), end=True)
            break
        if request is None:
            log.append("closed")
            break
        log.append(
            (
                request.method,
                request.uri,
                request.version,
                request.headers.items(),
                server.expects_continue,
                server.upgrade_requested,
                server.keepalive,
                server.body_done,
            )
        )
        pieces = []
        while True:
            ok, piece = await attempt(log, "read_body", server.read_body)
            if not ok or piece is None:
                break
            pieces.append(piece)
        trailers = server.request_trailers
        log.append((pieces, None if trailers is None else trailers.items(), server.body_done))
        if server.upgrade_requested and request.method != "CONNECT" and ok:
            switching = ResponseHeader(101, [("Connection", "Upgrade"), ("Upgrade", "x")])
            ok, _ = await attempt(log, "switch", server.write_response, switching)
            if ok:
                log.append(("detached", server.detach()[1]))
                break
        answer = ResponseHeader(200, [("X-Seen", str(len(pieces)))])
        ok, _ = await attempt(log, "answer", server.write_response, answer, b"ok", end=True)
        log.append(("next", server.keepalive, server.start_next_cycle()))
        if not ok or log[-1][2] is False:
            if request.method == "CONNECT" and ok:
                log.append(("detached", server.detach()[1]))
            break
    log.append(("wire", stream.writes, server.bytes_read, server.bytes_written))
    return log


REQUESTS = {
    # llhttp refuses, h11 takes: h11 decides.
    "unknown-method": b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n",
    "http-1.2": b"GET / HTTP/1.2\r\nHost: h\r\n\r\n",
    "http-2.0": b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
    "http-0.9": b"GET / HTTP/0.9\r\n\r\n",
    "control-char-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a\x01b\x7f\r\n\r\n",
    "obs-fold": b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n",
    "bare-lf": b"GET / HTTP/1.1\nHost: h\nX-A: b\n\n",
    "mixed-line-ends": b"GET / HTTP/1.1\r\nHost: h\nX-A: b\r\n\n",
    "repeated-equal-length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
    ),
    "length-list": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\nabc",
    "20-digit-length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00000000000000000003\r\n\r\nabc",
    "odd-target": b'GET /a"b<c>{d}|e\\^` HTTP/1.1\r\nHost: h\r\n\r\n',
    "absolute-target": b"GET http://example.com/a?b HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "asterisk-target": b"OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
    "non-path-target": b"GET foo HTTP/1.1\r\nHost: h\r\n\r\n",
    # llhttp takes, h11 refuses: refused here too, with h11's status hint.
    "21-digit-length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 000000000000000000003\r\n\r\nabc",
    "transfer-coding-list": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
    ),
    "no-host": b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n",
    "two-hosts": b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    "obs-text-in-target": b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
    "lowercase-version": b"GET / http/1.1\r\nHost: h\r\n\r\n",
    "rtsp-version": b"DESCRIBE / RTSP/1.0\r\nHost: h\r\n\r\n",
    "two-spaces": b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
    "leading-empty-line": b"\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "leading-space": b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    "tls-handshake": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
    "space-before-colon": b"GET / HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n",
    "fold-at-start": b"GET / HTTP/1.1\r\n X-A: b\r\nHost: h\r\n\r\n",
    "nul-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n",
    "vertical-tab-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x0bb\r\n\r\n",
    "bare-cr-in-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n",
    "no-colon": b"GET / HTTP/1.1\r\nHost: h\r\nX-A\r\n\r\n",
    "conflicting-lengths": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"
    ),
    "negative-length": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n",
    "two-transfer-encodings": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
    ),
    "identity-coding": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n\r\n",
    "length-and-chunked": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
        b"3\r\nabc\r\n0\r\n\r\n"
    ),
    "chunked-on-http-1.0": b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    # Values as h11 gives them: whitespace around a value dropped, Transfer-Encoding lowercased.
    "value-whitespace": b"GET / HTTP/1.1\r\nHost:   h  \t\r\nX-A:\t a b \r\nX-Empty:\r\nX-Blank:   \r\n\r\n",
    "chunked-in-capitals": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: CHUNKED\r\n\r\n1\r\na\r\n0\r\n\r\n"
    ),
    "obs-text-value": b"GET / HTTP/1.1\r\nHost: h\r\nX-A: caf\xe9 \xa0\r\n\r\n",
    # Bodies: chunk extensions and whitespace, trailers, bad chunks, pipelining.
    "chunked-body": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;name=value\r\nabc\r\n2 \t\r\nde\r\n000\r\nX-Sum: 5\r\nX-B:  c \r\n\r\n"
    ),
    "chunked-trailer-fold": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX-T: a\r\n b\r\n\r\n"
    ),
    "chunked-trailer-bad": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX T: a\r\n\r\n"
    ),
    "chunked-trailer-coding": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nTransfer-Encoding: gzip\r\n\r\n"
    ),
    "chunked-bare-lf-trailer": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nX: y\n\n"
    ),
    "chunk-bad-size": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    "chunk-bad-footer": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabcX\r\n0\r\n\r\n"
    ),
    "chunk-lf-only": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\nabc\r\n0\r\n\r\n",
    "chunk-21-digits": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"000000000000000000001\r\na\r\n0\r\n\r\n"
    ),
    "pipelined": (
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nPOST /2 HTTP/1.1\r\nHost: h\r\n"
        b"Content-Length: 2\r\n\r\nab"
        b"GET /3 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ),
    "pipelined-after-chunked": (
        b"POST /1 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n"
        b"ab\r\n0\r\n\r\n"
        b"GET /2 HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "zero-length-spelt-00": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\nExpect: 100-continue\r\n\r\n"
    ),
    "expect-continue": b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 2\r\n\r\nab",
    "http-1.0-keep-alive": b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\n",
    "connection-close-list": b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n",
    "upgrade": b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
    "upgrade-http-1.0": b"GET /ws HTTP/1.0\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\nframes",
    "upgrade-empty": b"GET /ws HTTP/1.1\r\nHost: h\r\nUpgrade: ,\r\n\r\n",
    "upgrade-with-body": (
        b"POST /ws HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n"
        b"Content-Length: 2\r\n\r\n"
        b"abframes"
    ),
    "connect": b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01",
    "big-head": b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000 + b"\r\n\r\n",
    "big-chunk-line": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 2000,
    "truncated-head": b"GET / HTTP/1.1\r\nHost: h\r\n",
    "truncated-body": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc",
    "truncated-chunk": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
    # The strict checks (`_strict.py`): what h11 reads and the proxy refuses, the same in every codec.
    "cl-te-smuggle": (
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "te-cl-smuggle": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n"
        b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
    "te-xchunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
    "te-space-before-colon": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n"),
    "te-chunked-identity": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n"
    ),
    "te-vertical-tab": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n",
    "te-tab": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\tchunked\t\r\n\r\n0\r\n\r\n",
    "te-obs-fold": (b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:\r\n chunked\r\n\r\n0\r\n\r\n"),
    "te-gzip-chunked": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
    "cl-plus": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +2\r\n\r\nab",
    "chunk-ext-bare-cr": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;a\rb\r\nabc\r\n0\r\n\r\n"
    ),
    "chunk-ext-quoted": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'3; a = "b;c" ; d\r\nabc\r\n0\r\n\r\n'
    ),
    "chunk-then-bad-size": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n-1\r\nx\r\n"
    ),
    "trailer-content-length": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"1\r\na\r\n0\r\nContent-Length: 9\r\n\r\n"
    ),
    "trailer-host": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\nHost: x\r\n\r\n"
    ),
    "absolute-form-other-host": b"GET http://other.example/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "host-with-path": b"GET / HTTP/1.1\r\nHost: example.com/evil\r\n\r\n",
    "http-1.0-with-host": b"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
    "expect-unknown": b"POST / HTTP/1.1\r\nHost: h\r\nExpect: x-magic\r\nContent-Length: 2\r\n\r\nab",
    "fragment": b"GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n",
    "trace-with-body": b"TRACE / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\nab",
    "valid-then-bad": (
        b"GET /1 HTTP/1.1\r\nHost: h\r\n\r\nGET /2 HTTP/1.1\r\nHost: h\r\nX-A : b\r\n\r\n"
        b"GET /3 HTTP/1.1\r\nHost: h\r\n\r\n"
    ),
}

# The limits, small, with requests around them.
SMALL_LIMITS = HttpLimits(
    max_request_line=40, max_header_bytes=200, max_header_count=4, max_body_size=10, max_chunk_line=12
)
LIMITED = {
    "line-at-limit": b"GET /" + b"a" * 26 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "line-over": b"GET /" + b"a" * 27 + b" HTTP/1.1\r\nHost: h\r\n\r\n",
    "line-over-no-end": b"GET /" + b"a" * 60,
    "head-over": b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"v" * 200 + b"\r\n\r\n",
    "fields-over": b"GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n",
    "length-over": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 11\r\n\r\n01234567890",
    "length-at-limit": b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789",
    "chunks-over": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"6\r\nabcdef\r\n5\r\nghijk\r\n0\r\n\r\n"
    ),
    "chunk-line-over": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;" + b"e" * 20 + b"\r\na\r\n"
    ),
    "chunk-line-over-no-end": b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1;"
    + b"e" * 20,
    "trailers-over": (
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
        b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n"
    ),
}


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("close", [True, False], ids=["then-eof", "then-waits"])
@pytest.mark.parametrize("name", list(REQUESTS))
async def test_server_side_matches_h11(name: str, close: bool, other: str) -> None:
    for reads in splits(REQUESTS[name]):
        expected = await serve(select_codec("h11"), reads, close=close)
        assert await serve(select_codec(other), reads, close=close) == expected, reads


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("close", [True, False], ids=["then-eof", "then-waits"])
@pytest.mark.parametrize("name", list(LIMITED))
async def test_limits_hold_alike(name: str, close: bool, other: str) -> None:
    for reads in splits(LIMITED[name]):
        expected = await serve(select_codec("h11"), reads, close=close, limits=SMALL_LIMITS)
        assert await serve(select_codec(other), reads, close=close, limits=SMALL_LIMITS) == expected, reads


# -- the client side -------------------------------------------------------------------------------------


async def fetch(
    codec: Codec, request: RequestHeader, reads: list[bytes], *, close: bool, body: bytes = b""
) -> list[Any]:
    """Send `request`, read what `reads` answer (twice if the connection allows); what the codec did."""
    stream = ScriptedStream(reads, close=close)
    conn = codec.client(stream, max_head_size=1024)
    log: list[Any] = []
    for _ in range(2):
        ok, _ = await attempt(log, "write", conn.write_request, request, body, end=True)
        if not ok:
            break
        ok, response = await attempt(log, "read_response", conn.read_response)
        if not ok:
            break
        log.append(
            (
                response.status,
                response.reason,
                response.version,
                response.headers.items(),
                [(r.status, r.headers.items()) for r in conn.informational],
                conn.body_done,
                conn.reusable,
            )
        )
        pieces = []
        while True:
            ok, piece = await attempt(log, "read_body", conn.read_body)
            if not ok or piece is None:
                break
            pieces.append(piece)
        trailers = conn.response_trailers
        log.append((pieces, None if trailers is None else trailers.items(), conn.reusable))
        if response.status == 101 or (request.method == "CONNECT" and response.status < 300):
            log.append(("detached", conn.detach()[1]))
            break
        if not conn.start_next_cycle():
            break
    log.append(("wire", stream.writes, conn.bytes_read, conn.bytes_written))
    return log


GET = RequestHeader("GET", "/", [("Host", "h")])
HEAD = RequestHeader("HEAD", "/", [("Host", "h")])
UPGRADE = RequestHeader("GET", "/ws", [("Host", "h"), ("Connection", "Upgrade"), ("Upgrade", "x")])
CONNECT = RequestHeader("CONNECT", "h:443", [("Host", "h:443")])

RESPONSES = {
    "length": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "no-reason": (GET, b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
    "empty-reason": (GET, b"HTTP/1.1 204 \r\n\r\n"),
    "odd-reason": (GET, b"HTTP/1.1 200 \tO\x01K\xff \r\nContent-Length: 0\r\n\r\n"),
    "http-1.0-close-delimited": (GET, b"HTTP/1.0 200 OK\r\n\r\nall of it"),
    "http-1.1-close-delimited": (GET, b"HTTP/1.1 200 OK\r\n\r\nall of it"),
    "http-2.0": (GET, b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "status-99": (GET, b"HTTP/1.1 099 Low\r\n\r\n"),
    "status-999": (GET, b"HTTP/1.1 999 High\r\nContent-Length: 0\r\n\r\n"),
    "status-letters": (GET, b"HTTP/1.1 2xx Nope\r\n\r\n"),
    "status-4-digits": (GET, b"HTTP/1.1 2000 OK\r\n\r\n"),
    "no-space-after-status": (GET, b"HTTP/1.1 200OK\r\n\r\n"),
    "lowercase-http": (GET, b"http/1.1 200 OK\r\n\r\n"),
    "chunked": (
        GET,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n",
    ),
    "length-and-chunked": (
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    "chunked-then-length": (
        GET,
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    "gzip-coding": (GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nabc"),
    "repeated-length": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok"),
    "conflicting-length": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
    "obs-fold": (GET, b"HTTP/1.1 200 OK\r\nX-A: a\r\n b\r\nContent-Length: 0\r\n\r\n"),
    "bare-lf": (GET, b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    "control-char": (GET, b"HTTP/1.1 200 OK\r\nSet-Cookie: a\x01\r\nContent-Length: 0\r\n\r\n"),
    "connection-close": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
    "keep-alive-twice": (
        GET,
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 204 No Content\r\n\r\n",
    ),
    "bytes-past": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA"),
    "informational": (
        GET,
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n"
        b"Content-Length: 0\r\n\r\n",
    ),
    "102-with-length": (
        GET,
        b"HTTP/1.1 102 Processing\r\nContent-Length: 5\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    ),
    "101-unasked": (GET, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\n"),
    "101": (UPGRADE, b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\n\r\nserver-frames"),
    "upgrade-refused": (UPGRADE, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    "head": (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"),
    "head-chunked": (HEAD, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nHTTP/1.1 200 OK\r\n\r\n"),
    "head-then-bytes": (HEAD, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"),
    "204-with-length": (GET, b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
    "304": (GET, b"HTTP/1.1 304 Not Modified\r\nETag: x\r\n\r\n"),
    "connect-200": (CONNECT, b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x03"),
    "connect-407": (CONNECT, b"HTTP/1.1 407 Proxy Auth\r\nContent-Length: 1\r\n\r\nx"),
    "zero-spelt-00": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 00\r\n\r\n"),
    "empty": (GET, b""),
    "garbage": (GET, b"\x00\x01garbage\r\n\r\n"),
    "leading-empty-line": (GET, b"\r\nHTTP/1.1 200 OK\r\n\r\n"),
    "truncated-head": (GET, b"HTTP/1.1 200 OK\r\nContent-"),
    "truncated-body": (GET, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
    "truncated-chunked": (GET, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nab"),
    "big-head": (GET, b"HTTP/1.1 200 OK\r\nX-Big: " + b"b" * 2000 + b"\r\nContent-Length: 0\r\n\r\n"),
}


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("close", [True, False], ids=["then-eof", "then-waits"])
@pytest.mark.parametrize("name", list(RESPONSES))
async def test_client_side_matches_h11(name: str, close: bool, other: str) -> None:
    request, data = RESPONSES[name]
    for reads in splits(data) if data else [[]]:
        expected = await fetch(select_codec("h11"), request, reads, close=close)
        assert await fetch(select_codec(other), request, reads, close=close) == expected, reads


# -- what we write ---------------------------------------------------------------------------------------

Step = tuple[str, Any]


async def respond(codec: Codec, request: bytes, steps: list[Step]) -> list[Any]:
    """Read `request`, then run `steps` on the server side; each step's bytes or error, and the state."""
    stream = ScriptedStream([request], close=False)
    server = codec.server(stream)
    log: list[Any] = []
    await attempt(log, "read_request", server.read_request)
    for op, arg in steps:
        before = len(stream.writes)
        if op == "response":
            header, body, end = arg
            await attempt(log, op, server.write_response, header, body, end=end)
        elif op == "body":
            await attempt(log, op, server.write_body, arg)
        elif op == "finish":
            await attempt(log, op, server.finish, arg)
        elif op == "continue":
            await attempt(log, op, server.send_continue)
        elif op == "drain":
            await attempt(log, op, server.read_body)
        else:
            server.set_keepalive(arg)
        log.append((op, stream.writes[before:], server.response_started, server.keepalive))
    log.append(("next", server.next_request_ready(), server.start_next_cycle(), server.bytes_written))
    return log


GET_1_1 = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"


def response(
    status: int, *fields: tuple[str, str], body: bytes = b"", end: bool = True, reason: str | None = None
) -> Step:
    return ("response", (ResponseHeader(status, list(fields), reason=reason), body, end))


WRITES: dict[str, tuple[bytes, list[Step]]] = {
    "plain": (GET_1_1, [response(200, ("X-A", "b"), body=b"hi")]),
    "host-goes-first": (GET_1_1, [response(200, ("X-A", "b"), ("Host", "h"), ("HOST", "i"), body=b"x")]),
    "chunked-by-default": (
        GET_1_1,
        [
            response(200, end=False),
            ("body", b"ab"),
            ("body", b""),
            ("finish", Headers([("X-T", "1"), ("Host", "h")])),
        ],
    ),
    "chunked-header-moves-last": (
        GET_1_1,
        [response(200, ("transfer-encoding", "Chunked"), ("X-A", "b"), end=False), ("finish", None)],
    ),
    "length-and-chunked-given": (
        GET_1_1,
        [
            response(
                200,
                ("Content-Length", "5"),
                ("Transfer-Encoding", "chunked"),
                ("X-A", "b"),
                body=b"abc",
                end=False,
            ),
            ("finish", None),
        ],
    ),
    "length-list": (
        GET_1_1,
        [response(200, ("Content-Length", " 2 , 2"), ("content-length", "2"), body=b"ok")],
    ),
    "length-conflict": (
        GET_1_1,
        [response(200, ("Content-Length", "2"), ("Content-Length", "3"), body=b"ok"), response(500)],
    ),
    "length-bad": (GET_1_1, [response(200, ("Content-Length", "two"), body=b"ok"), response(500)]),
    "coding-unsupported": (GET_1_1, [response(200, ("Transfer-Encoding", "gzip")), response(500)]),
    "too-much-body": (GET_1_1, [response(200, ("Content-Length", "1"), body=b"ab"), response(500)]),
    "too-little-body": (
        GET_1_1,
        [response(200, ("Content-Length", "3"), body=b"ab"), ("finish", None), response(500)],
    ),
    "trailers-with-length": (
        GET_1_1,
        [response(200, ("Content-Length", "1"), body=b"a", end=False), ("finish", Headers([("X-T", "1")]))],
    ),
    "bad-trailer": (
        GET_1_1,
        [response(200, end=False), ("finish", Headers([("X T", "1")])), ("finish", None)],
    ),
    "bad-names-and-values": (
        GET_1_1,
        [
            response(200, ("X A", "b")),
            response(200, ("X: A", "b")),
            response(200, ("X-A", " b")),
            response(200, ("X-A", "b\x00")),
            response(200, ("X-A", "\u20ac")),
            response(200, ("X-\u20ac", "b")),
            response(200, ("X-A", "a\x01\x7f\xff b")),
        ],
    ),
    "bad-reason": (
        GET_1_1,
        [response(200, reason="\u20ac"), response(200, reason="A\rB"), response(200, reason=" \t\x01\xff")],
    ),
    "second-response": (GET_1_1, [response(200), response(200), ("body", b"x"), ("finish", None)]),
    "body-after-end": (GET_1_1, [response(200, body=b"a"), ("body", b"b")]),
    "keepalive-off": (
        GET_1_1,
        [("keepalive", False), response(200, ("Connection", "keep-alive, Upgrade"), ("X", "y"), body=b"x")],
    ),
    "keepalive-off-chunked": (
        GET_1_1,
        [("keepalive", False), response(200, ("connection", "Foo"), end=False), ("finish", None)],
    ),
    "client-close": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
        [response(200, ("Connection", "Keep-Alive, X-Foo"), end=False), ("body", b"a"), ("finish", None)],
    ),
    "http-1.0-client": (
        b"GET / HTTP/1.0\r\n\r\n",
        [
            response(200, ("Transfer-Encoding", "chunked"), end=False),
            ("body", b"a"),
            ("finish", Headers([("X", "y")])),
        ],
    ),
    "http-1.0-head": (b"HEAD / HTTP/1.0\r\n\r\n", [response(200, end=False), ("finish", None)]),
    "http-2.0-client": (
        b"GET / HTTP/2.0\r\nHost: h\r\n\r\n",
        [response(200, end=False), ("body", b"a"), ("finish", Headers([("X", "y")]))],
    ),
    "head": (b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", [response(200, body=b"x"), ("finish", None)]),
    "head-not-ended": (
        b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
        [response(200, ("Content-Length", "9"), body=b"x", end=False), ("body", b"y"), ("finish", None)],
    ),
    "204-with-length": (GET_1_1, [response(204, ("Content-Length", "3"), body=b"abc")]),
    "304-not-ended": (GET_1_1, [response(304, end=False), ("body", b"x"), ("finish", None)]),
    "1xx": (GET_1_1, [response(103, ("Link", "</a>")), response(199), response(200, body=b"x")]),
    "1xx-with-bad-length": (GET_1_1, [response(103, ("Content-Length", "x")), response(200)]),
    "101-unasked": (GET_1_1, [response(101, ("Upgrade", "x")), response(200)]),
    "101": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        [response(101, ("Upgrade", "x")), ("body", b"x"), ("finish", None), response(200)],
    ),
    "upgrade-declined": (
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        [response(200, body=b"x")],
    ),
    "101-to-http-1.0": (
        b"GET / HTTP/1.0\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n",
        [response(101, ("Upgrade", "x"))],
    ),
    "connect-200": (
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        [response(200, body=b"x"), ("body", b"y"), ("finish", None)],
    ),
    "connect-200-not-ended": (
        b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
        [response(200, end=False), ("finish", None)],
    ),
    "connect-407": (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", [response(407, body=b"x")]),
    "continue": (
        b"PUT / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n",
        [("continue", None), ("continue", None), ("drain", None), response(200)],
    ),
    "finish-before-response": (GET_1_1, [("finish", None), response(200)]),
    "malformed-request": (
        b"GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
        [response(400, end=False), ("body", b"x"), ("finish", None)],
    ),
    "body-not-read": (b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n", [response(413)]),
}


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("name", list(WRITES))
async def test_responses_written_match_h11(name: str, other: str) -> None:
    request, steps = WRITES[name]
    expected = await respond(select_codec("h11"), request, steps)
    assert await respond(select_codec(other), request, steps) == expected


async def send(codec: Codec, steps: list[Step]) -> list[Any]:
    """Run `steps` (requests, bodies, ends) on the client side; each step's bytes or error."""
    stream = ScriptedStream([], close=False)
    conn = codec.client(stream)
    log: list[Any] = []
    for op, arg in steps:
        before = len(stream.writes)
        if op == "request":
            header, body, end = arg
            await attempt(log, op, conn.write_request, header, body, end=end)
        elif op == "body":
            await attempt(log, op, conn.write_body, arg)
        else:
            await attempt(log, op, conn.finish, arg)
        log.append((op, stream.writes[before:], conn.reusable))
    log.append(("wire", conn.bytes_written))
    return log


def request_step(
    method: str, uri: str, *fields: tuple[str, str], body: bytes = b"", end: bool = True
) -> Step:
    return ("request", (RequestHeader(method, uri, list(fields)), body, end))


SENDS: dict[str, list[Step]] = {
    "plain": [request_step("GET", "/", ("X-A", "b"), ("Host", "h"))],
    "length-added": [request_step("POST", "/", ("Host", "h"), body=b"abc")],
    "chunked": [
        request_step("POST", "/", ("Host", "h"), ("Transfer-Encoding", "Chunked"), body=b"ab", end=False),
        ("body", b"c"),
        ("finish", Headers([("X-T", "1")])),
        ("finish", None),
    ],
    "no-framing": [request_step("POST", "/", ("Host", "h"), end=False), ("body", b"x")],
    "too-little": [
        request_step("POST", "/", ("Host", "h"), ("Content-Length", "3"), body=b"a", end=False),
        ("finish", None),
    ],
    "trailers-with-length": [
        request_step("POST", "/", ("Host", "h"), ("Content-Length", "1"), body=b"a", end=False),
        ("finish", Headers([("X-T", "1")])),
    ],
    "no-host": [
        request_step("GET", "/"),
        request_step("GET", "/", ("Host", "a"), ("host", "b")),
        request_step("GET", "/", ("Host", "h")),
    ],
    "bad-method-and-target": [
        request_step("GE T", "/", ("Host", "h")),
        request_step("GET", "/a b", ("Host", "h")),
        request_step("GET", "/\u20ac", ("Host", "h")),
        request_step("G\u20ac", "/", ("Host", "h")),
        request_step("", "/", ("Host", "h")),
        request_step("BREW", "/\x7f", ("Host", "h")),
    ],
    "bad-fields": [
        request_step("GET", "/", ("Host", "h"), ("X", "a\r\nInjected: 1")),
        request_step("GET", "/", ("Host", "h"), ("X: Injected", "1")),
        request_step("GET", "/", ("Host", "h"), ("Transfer-Encoding", "gzip")),
    ],
    "length-list": [request_step("POST", "/", ("Host", "h"), ("Content-Length", "1,1"), body=b"a")],
    "request-twice": [request_step("GET", "/", ("Host", "h")), request_step("GET", "/", ("Host", "h"))],
    "connect": [request_step("CONNECT", "h:443", ("Host", "h:443")), ("finish", None)],
    "upgrade": [request_step("GET", "/", ("Host", "h"), ("Upgrade", "x")), ("finish", None)],
    "close": [request_step("GET", "/", ("Host", "h"), ("Connection", "close"))],
}


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("name", list(SENDS))
async def test_requests_written_match_h11(name: str, other: str) -> None:
    expected = await send(select_codec("h11"), SENDS[name])
    assert await send(select_codec(other), SENDS[name]) == expected


# -- heads read, then written on: a parsed head is written unchecked (trusted), as h11 writes it -----------

RELAYED_REQUESTS = [
    b"GET / HTTP/1.1\r\nX-A:  b  \r\nHost: h\r\nX-B:\tc\td\t\r\nx-a: second\r\n\r\n",
    b"POST /p?q HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\ntransfer-encoding: Chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    b"GET / HTTP/1.0\r\nHost: h\r\nX-O: \xe9t\xe9 \xff\r\nX-E:\r\nConnection: keep-alive, x-a\r\n\r\n",
]
RELAYED_RESPONSES = [
    b"HTTP/1.1 200 OK\r\nServer: s\r\nContent-Length: 2\r\nX-A:   b \t\r\nConnection: keep-alive\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nX-Fold: a\r\n  b\r\n\r\nok",
    b"HTTP/1.1 404 Not Here\r\nTransfer-Encoding: CHUNKED\r\nHost: x\r\nX-C: \x01\x7f\r\n\r\n0\r\n\r\n",
    b"HTTP/1.0 204 No Content\r\nX-Bare-Lf: yes\n\n",
]


async def _read_request(codec: Codec, head: bytes) -> RequestHeader:
    request = await codec.server(ScriptedStream([head], close=False)).read_request()
    assert request is not None
    return request


async def _written_request(codec: Codec, request: RequestHeader) -> list[bytes]:
    stream = ScriptedStream([], close=False)
    await codec.client(stream).write_request(request)  # the head alone
    return stream.writes


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("head", RELAYED_REQUESTS)
async def test_a_request_read_is_written_on_as_h11_writes_it(head: bytes, other: str) -> None:
    codec = select_codec(other)
    request = await _read_request(codec, head)
    anew = RequestHeader(request.method, request.uri, list(request.headers), request.version)
    assert await _written_request(codec, request) == await _written_request(select_codec("h11"), anew)


async def _read_response(codec: Codec, head: bytes) -> ResponseHeader:
    conn = codec.client(ScriptedStream([head], close=False))
    await conn.write_request(RequestHeader("GET", "/", [("Host", "h")]), end=True)
    return await conn.read_response()


async def _written_response(codec: Codec, response: ResponseHeader) -> list[bytes]:
    stream = ScriptedStream([GET_1_1], close=False)
    server = codec.server(stream)
    await server.read_request()
    await server.write_response(response)  # the head alone
    return stream.writes


@pytest.mark.parametrize("other", OTHER_CODECS)
@pytest.mark.parametrize("head", RELAYED_RESPONSES)
async def test_a_response_read_is_written_on_as_h11_writes_it(head: bytes, other: str) -> None:
    codec = select_codec(other)
    response = await _read_response(codec, head)
    anew = ResponseHeader(response.status, list(response.headers), reason=response.reason)
    assert await _written_response(codec, response) == await _written_response(select_codec("h11"), anew)


# -- the differences, spelt out ------------------------------------------------------------------------------


@pytest.mark.parametrize("codec_name", available_codecs())
@pytest.mark.parametrize(
    ("head", "hint"),
    [
        (b"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 000000000000000000001\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        (b"GET / HTTP/1.1\r\nX-A: b\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        (b"DESCRIBE / RTSP/1.0\r\n\r\n", 400),
        (b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n", 400),
    ],
    ids=["21-digit-length", "coding-list", "no-host", "two-hosts", "not-http", "obs-text-target"],
)
async def test_what_llhttp_would_take_is_refused(codec_name: str, head: bytes, hint: int) -> None:
    server = select_codec(codec_name).server(ScriptedStream([head], close=False))
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert caught.value.status_hint == hint


@pytest.mark.parametrize("codec_name", available_codecs())
@pytest.mark.parametrize(
    ("head", "field"),
    [
        (b"BREW /pot HTTP/1.1\r\nHost: h\r\n\r\n", ("Host", "h")),
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n",
            ("Transfer-Encoding", "chunked"),
        ),
        (b"GET / HTTP/1.1\r\nHost: h\r\nX-A: b \t\r\n\r\n", ("X-A", "b")),
    ],
    ids=["unknown-method", "coding-case", "trailing-space"],
)
async def test_what_llhttp_would_refuse_is_read_as_h11_reads_it(
    codec_name: str, head: bytes, field: tuple[str, str]
) -> None:
    server = select_codec(codec_name).server(ScriptedStream([head], close=False))
    request = await server.read_request()
    assert request is not None
    assert field in request.headers.items()


@pytest.mark.parametrize("codec_name", available_codecs())
@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1\r\nHost: h\r\nX-Long: a\r\n  b\r\n\r\n",
        b"GET / HTTP/1.1\nHost: h\n\n",
        b"GET / HTTP/1.1\r\nHost: h\r\nCookie: a\x01b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1, 1\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
    ],
    ids=["obs-fold", "bare-lf", "control-char", "length-list", "repeated-length"],
)
async def test_what_h11_would_read_is_refused_by_the_strict_checks(codec_name: str, head: bytes) -> None:
    server = select_codec(codec_name).server(ScriptedStream([head], close=False))
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert (caught.value.status_hint, caught.value.source) == (400, ErrorSource.DOWNSTREAM)


@pytest.mark.parametrize("codec_name", available_codecs())
@pytest.mark.parametrize(
    ("request_bytes", "first", "second"),
    [
        (b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", 204, 200),
        (b"GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nUpgrade: x\r\n\r\n", 101, 101),
    ],
    ids=["2xx-to-connect-after-a-response", "second-101"],
)
async def test_a_switch_after_the_response_started_is_internal_error(
    codec_name: str, request_bytes: bytes, first: int, second: int
) -> None:
    server = select_codec(codec_name).server(ScriptedStream([request_bytes], close=False))
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(first))
    with pytest.raises(Error) as caught:
        await server.write_response(ResponseHeader(second), b"x")
    assert (caught.value.etype, caught.value.source) == (ErrorType.H1_ERROR, ErrorSource.INTERNAL)
    assert not server.keepalive


# -- mutated inputs --------------------------------------------------------------------------------------

NOISE = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b"\x00",
    b"\x01",
    b"\x7f",
    b"\xff",
    b"0",
    b"F",
    b"chunked",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Host: h\r\n",
    b"Connection: close\r\n",
    b"Upgrade: x\r\n",
    b"\r\n\r\n",
    b"HTTP/1.0",
    b"0\r\n\r\n",
    b"3\r\nabc\r\n",
]


def mutated(data: st.DataObject, corpus: list[bytes]) -> tuple[list[bytes], bool]:
    raw = bytearray(data.draw(st.sampled_from(corpus)))
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(raw)))
        if data.draw(st.booleans()):
            raw[at:at] = data.draw(st.sampled_from(NOISE))
        else:
            del raw[at : at + data.draw(st.integers(1, 3))]
    cut = data.draw(st.integers(0, len(raw)))
    reads = [bytes(raw[:cut]), bytes(raw[cut:])] if 0 < cut < len(raw) else [bytes(raw)]
    return reads, data.draw(st.booleans())


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_requests_are_read_as_h11_reads_them(data: st.DataObject) -> None:
    reads, close = mutated(data, list(REQUESTS.values()))
    expected = trio.run(partial(serve, select_codec("h11"), reads, close=close))
    for other in OTHER_CODECS:
        assert trio.run(partial(serve, select_codec(other), reads, close=close)) == expected


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_responses_are_read_as_h11_reads_them(data: st.DataObject) -> None:
    request = data.draw(st.sampled_from([GET, HEAD, UPGRADE, CONNECT]))
    reads, close = mutated(data, [response for _, response in RESPONSES.values() if response])
    expected = trio.run(partial(fetch, select_codec("h11"), request, reads, close=close))
    for other in OTHER_CODECS:
        assert trio.run(partial(fetch, select_codec(other), request, reads, close=close)) == expected
