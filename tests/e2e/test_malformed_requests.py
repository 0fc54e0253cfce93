"""Malformed requests as raw bytes to a real listener: each is answered with its status, the connection
closes, and the recording upstream receives nothing of it (or exactly one normalised request).

Every row also checks what happens next: a clean request on a new connection is served, reaches the upstream
after whatever the row forwarded (so nothing smuggled in the row ever gets there), and uses the pooled
upstream connection unless the row's exchange had to be aborted (a bad chunk after the head was forwarded),
in which case the upstream connection was dropped, never reused.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import attrs
import pytest
import trio
from rawhttp import send_raw
from upstream import Upstream

from actorproxy.config import HttpLimits
from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


Record = dict[str, Any]


@attrs.frozen
class Row:
    """One request (or several, pipelined) and what must come of it.

    Attributes:
        data: the bytes the client sends.
        statuses: the final statuses answered, in order (the last one closes the connection).
        forwarded: the targets the upstream receives, in order.
        pieces: send `data` in this many writes (a trickle when large).
        aborted: the head went upstream before the error: that upstream connection is dropped.
        limits: the service's limits, when not the defaults.
        check: more checks on the upstream's records of what it received.
    """

    data: bytes
    statuses: tuple[int, ...]
    forwarded: tuple[str, ...] = ()
    pieces: int = 1
    aborted: bool = False
    limits: HttpLimits | None = None
    check: Callable[[list[Record]], None] | None = None


def request(*fields: bytes, line: bytes = b"POST /echo HTTP/1.1", body: bytes = b"") -> bytes:
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n" + body


HOST = b"Host: localhost"
CHUNKED = b"Transfer-Encoding: chunked"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n"
CLOSE = b"Connection: close"


def field(record: Record, name: str) -> list[str]:
    return [value for key, value in record["headers"] if key.lower() == name]


def normalised_chunked(records: list[Record]) -> None:
    [record] = records
    assert record["body"] == "abcdefgh"
    assert field(record, "transfer-encoding") == ["chunked"]
    assert field(record, "via") == ["1.1 actorproxy"]
    assert field(record, "connection") == [] and field(record, "keep-alive") == []
    assert record["trailers"] == [("x-sum", "8")]


def normalised_get(records: list[Record]) -> None:
    [record] = records
    assert field(record, "host") == ["localhost"]
    assert field(record, "via") == ["1.0 actorproxy"]
    assert field(record, "x-hop") == [] and field(record, "connection") == []


def continued(records: list[Record]) -> None:
    [record] = records
    assert record["body"] == "ab"
    assert field(record, "expect") == []


ROWS: dict[str, Row] = {
    # -- CL.TE / TE.CL: both framings at once --------------------------------------------------------------
    "cl-te": Row(request(HOST, b"Content-Length: 6", CHUNKED, body=b"0\r\n\r\nX"), (400,)),
    "te-cl": Row(request(HOST, CHUNKED, b"Content-Length: 4", body=b"5c\r\n" + SMUGGLED), (400,)),
    "cl-te-smuggled-get": Row(
        request(HOST, b"Content-Length: 4", CHUNKED, body=b"0\r\n\r\n" + SMUGGLED + SMUGGLED), (400,)
    ),
    "te-cl-lowercase": Row(request(HOST, b"transfer-encoding: chunked", b"content-length: 3"), (400,)),
    # -- TE.TE: a Transfer-Encoding one parser reads and the next does not ---------------------------------
    "te-xchunked": Row(request(HOST, b"Transfer-Encoding: xchunked", b"Content-Length: 5"), (400,)),
    "te-xchunked-alone": Row(request(HOST, b"Transfer-Encoding: xchunked", body=b"0\r\n\r\n"), (400,)),
    "te-space-before-colon": Row(
        request(HOST, b"Transfer-Encoding : chunked", b"Content-Length: 5", body=b"0\r\n\r\n"), (400,)
    ),
    "te-chunked-identity": Row(
        request(HOST, b"Transfer-Encoding: chunked, identity", body=b"0\r\n\r\n"), (400,)
    ),
    "te-identity-alone": Row(request(HOST, b"Transfer-Encoding: identity", body=b"0\r\n\r\n"), (400,)),
    "te-gzip-chunked": Row(request(HOST, b"Transfer-Encoding: gzip, chunked", body=b"0\r\n\r\n"), (501,)),
    "te-twice": Row(request(HOST, CHUNKED, CHUNKED, body=b"0\r\n\r\n"), (400,)),
    "te-twice-different": Row(request(HOST, CHUNKED, b"Transfer-Encoding: x", body=b"0\r\n\r\n"), (400,)),
    "te-vertical-tab": Row(request(HOST, b"Transfer-Encoding:\x0bchunked", body=b"0\r\n\r\n"), (400,)),
    "te-form-feed": Row(request(HOST, b"Transfer-Encoding: chunked\x0c", body=b"0\r\n\r\n"), (400,)),
    "te-nul": Row(request(HOST, b"Transfer-Encoding: chunked\x00", body=b"0\r\n\r\n"), (400,)),
    "te-quoted": Row(request(HOST, b'Transfer-Encoding: "chunked"', body=b"0\r\n\r\n"), (400,)),
    "te-obs-fold": Row(request(HOST, b"Transfer-Encoding:", b" chunked", body=b"0\r\n\r\n"), (400,)),
    "te-after-bare-lf": Row(request(HOST, b"X-A: b\nTransfer-Encoding: chunked", body=b"0\r\n\r\n"), (400,)),
    "te-on-http-1.0": Row(
        request(HOST, CHUNKED, line=b"POST /echo HTTP/1.0", body=b"0\r\n\r\n" + SMUGGLED), (400,)
    ),
    # -- Content-Length ------------------------------------------------------------------------------------
    "cl-twice-same": Row(request(HOST, b"Content-Length: 3", b"Content-Length: 3", body=b"abc"), (400,)),
    "cl-twice-different": Row(
        request(HOST, b"Content-Length: 3", b"Content-Length: 30", body=b"abc"), (400,)
    ),
    "cl-list": Row(request(HOST, b"Content-Length: 3, 3", body=b"abc"), (400,)),
    "cl-plus": Row(request(HOST, b"Content-Length: +3", body=b"abc"), (400,)),
    "cl-negative": Row(request(HOST, b"Content-Length: -3", body=b"abc"), (400,)),
    "cl-hex": Row(request(HOST, b"Content-Length: 0x3", body=b"abc"), (400,)),
    "cl-inner-space": Row(request(HOST, b"Content-Length: 1 0", body=b"abc"), (400,)),
    "cl-empty": Row(request(HOST, b"Content-Length:", body=b"abc"), (400,)),
    "cl-21-digits": Row(request(HOST, b"Content-Length: " + b"0" * 20 + b"3", body=b"abc"), (400,)),
    # -- the head's grammar --------------------------------------------------------------------------------
    "space-before-colon": Row(request(HOST, b"X-A : b"), (400,)),
    "obs-fold": Row(request(HOST, b"X-A: b", b"\tc"), (400,)),
    "nul-in-value": Row(request(HOST, b"X-A: b\x00c"), (400,)),
    "bare-cr-in-value": Row(request(HOST, b"X-A: b\rc"), (400,)),
    "control-char-in-value": Row(request(HOST, b"X-A: b\x01c"), (400,)),
    "bare-lf-line-ends": Row(b"GET /echo HTTP/1.1\nHost: localhost\n\n", (400,)),
    "empty-field-name": Row(request(HOST, b": b"), (400,)),
    "invalid-field-name": Row(request(HOST, b"X(A): b"), (400,)),
    "lowercase-version": Row(request(HOST, line=b"GET /echo http/1.1"), (400,)),
    "tls-to-plain-port": Row(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, (400,)),
    "http-2.0": Row(request(HOST, line=b"GET /echo HTTP/2.0"), (505,)),
    "http-1.2": Row(request(HOST, line=b"GET /echo HTTP/1.2"), (505,)),
    # -- Host and the target -------------------------------------------------------------------------------
    "no-host": Row(request(b"X-A: b", line=b"GET /echo HTTP/1.1"), (400,)),
    "no-host-http-1.0": Row(request(line=b"GET /echo HTTP/1.0"), (400,)),
    "two-hosts": Row(request(HOST, b"Host: other", line=b"GET /echo HTTP/1.1"), (400,)),
    "host-with-path": Row(request(b"Host: localhost/admin", line=b"GET /echo HTTP/1.1"), (400,)),
    "host-with-userinfo": Row(request(b"Host: me@localhost", line=b"GET /echo HTTP/1.1"), (400,)),
    "absolute-form-other-host": Row(request(HOST, line=b"GET http://internal/echo HTTP/1.1"), (400,)),
    "fragment-in-target": Row(request(HOST, line=b"GET /echo#x HTTP/1.1"), (400,)),
    "relative-target": Row(request(HOST, line=b"GET echo HTTP/1.1"), (400,)),
    # -- expectations --------------------------------------------------------------------------------------
    "unknown-expectation": Row(request(HOST, b"Expect: 200-ok", b"Content-Length: 2", body=b"ab"), (417,)),
    # -- a bad chunk after the head went upstream: the upstream connection is aborted ---------------------
    "chunk-bad-size": Row(request(HOST, CHUNKED, body=b"zz\r\n" + SMUGGLED), (400,), aborted=True),
    "chunk-ext-bare-cr": Row(
        request(HOST, CHUNKED, body=b"3;a\rb\r\nabc\r\n0\r\n\r\n" + SMUGGLED), (400,), aborted=True
    ),
    "chunk-size-then-space": Row(
        request(HOST, CHUNKED, body=b"3 \r\nabc\r\n0\r\n\r\n" + SMUGGLED), (400,), aborted=True
    ),
    "chunk-bad-after-good": Row(
        request(HOST, CHUNKED, body=b"3\r\nabc\r\n-1\r\n" + SMUGGLED), (400,), aborted=True
    ),
    "chunk-footer-missing": Row(
        request(HOST, CHUNKED, body=b"3\r\nabcdef\r\n0\r\n\r\n" + SMUGGLED), (400,), aborted=True
    ),
    "trailer-content-length": Row(
        request(HOST, CHUNKED, body=b"3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n" + SMUGGLED),
        (400,),
        aborted=True,
    ),
    "chunk-line-too-long": Row(
        request(HOST, CHUNKED, body=b"3;" + b"e" * 5000 + b"\r\nabc\r\n0\r\n\r\n"), (400,), aborted=True
    ),
    # -- limits, in one read and trickled -----------------------------------------------------------------
    "request-line-too-long": Row(request(HOST, line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"), (414,)),
    "request-line-too-long-trickled": Row(
        request(HOST, line=b"GET /" + b"a" * 9000 + b" HTTP/1.1"), (414,), pieces=400
    ),
    "head-of-60-kib": Row(request(HOST, *(b"X-%d: %s" % (n, b"v" * 1000) for n in range(62))), (431,)),
    "head-of-60-kib-trickled": Row(
        request(HOST, *(b"X-%d: %s" % (n, b"v" * 1000) for n in range(62))), (431,), pieces=600
    ),
    "head-trickled-byte-by-byte": Row(
        request(HOST, b"X-Big: " + b"v" * 300), (431,), pieces=10_000, limits=HttpLimits(max_header_bytes=256)
    ),
    "too-many-fields": Row(request(HOST, *(b"X-%d: v" % n for n in range(101))), (431,)),
    "body-over-limit": Row(
        request(HOST, b"Content-Length: 11", body=b"0123456789X"), (413,), limits=HttpLimits(max_body_size=10)
    ),
    "chunked-body-over-limit": Row(
        request(HOST, CHUNKED, body=b"6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n"),
        (413,),
        aborted=True,
        limits=HttpLimits(max_body_size=10),
    ),
    # -- on one connection: nothing after a refused request is served --------------------------------------
    "refused-then-legal": Row(
        request(HOST, b"X-A : b", line=b"GET /echo/1 HTTP/1.1") + request(HOST, line=b"GET /echo/2 HTTP/1.1"),
        (400,),
    ),
    "refused-then-legal-trickled": Row(
        request(HOST, b"X-A : b", line=b"GET /echo/1 HTTP/1.1") + request(HOST, line=b"GET /echo/2 HTTP/1.1"),
        (400,),
        pieces=50,
    ),
    "legal-then-refused-then-legal": Row(
        request(HOST, line=b"GET /echo/1 HTTP/1.1")
        + request(HOST, b"Content-Length: 1", CHUNKED, line=b"GET /echo/2 HTTP/1.1")
        + request(HOST, line=b"GET /echo/3 HTTP/1.1"),
        (200, 400),
        forwarded=("/echo/1",),
    ),
    # -- what must still pass, forwarded in normalised form ------------------------------------------------
    "chunked-with-extensions-and-trailers": Row(
        request(
            HOST,
            b"Transfer-Encoding:\tChunked",
            CLOSE,
            body=b'3;name=value\r\nabc\r\n5; q="a;b"\r\ndefgh\r\n0\r\nX-Sum: 8\r\n\r\n',
        ),
        (200,),
        forwarded=("/echo",),
        check=normalised_chunked,
    ),
    "http-1.0-with-host": Row(
        request(HOST, b"Connection: x-hop", b"X-Hop: 1", line=b"GET /echo HTTP/1.0"),
        (200,),
        forwarded=("/echo",),
        check=normalised_get,
    ),
    "expect-continue": Row(
        request(HOST, b"Expect: 100-continue", b"Content-Length: 2", CLOSE, body=b"ab"),
        (200,),
        forwarded=("/echo",),
        check=continued,
    ),
    "absolute-form-same-host": Row(
        request(HOST, CLOSE, line=b"GET http://LOCALHOST/echo HTTP/1.1"),
        (200,),
        forwarded=("http://LOCALHOST/echo",),
    ),
}


def split(data: bytes, pieces: int) -> list[bytes]:
    size = max(1, -(-len(data) // pieces))
    return [data[at : at + size] for at in range(0, len(data), size)]


@pytest.mark.parametrize("name", list(ROWS))
async def test_malformed_request(name: str, upstreams: list[Upstream], start_proxy: Any) -> None:
    row = ROWS[name]
    upstream = upstreams[0]
    settings = {} if row.limits is None else {"limits": row.limits}
    base, service = await start_proxy(ToFirst(upstream), **settings)

    reply = await send_raw(base, *split(row.data, row.pieces))

    assert reply.statuses == list(row.statuses), reply.raw[:300]
    assert reply.closed, "the proxy must close the connection (cleanly) after its last answer"
    if row.statuses[-1] >= 400:
        assert reply.header(-1, "connection") == "close"
    targets = [record["target"] for record in upstream.requests]
    assert targets == list(row.forwarded)
    if row.check is not None:
        row.check(upstream.requests)
    refused = sum(1 for status in row.statuses if status >= 400) - (1 if row.aborted else 0)
    assert service.counters.rejected == refused

    # A clean request afterwards is served; it is the only thing the upstream gets after the row's.
    after = await send_raw(base, request(HOST, CLOSE, line=b"GET /echo/after HTTP/1.1"))
    assert after.statuses == [200]
    assert json.loads(after.responses[-1][2])["target"] == "/echo/after"
    assert [record["target"] for record in upstream.requests] == [*row.forwarded, "/echo/after"]
    # The upstream connection of an aborted exchange was dropped, not pooled: the request after it needed a
    # new one. Otherwise the one connection served everything (or the request after was the first).
    assert upstream.connections == (2 if row.aborted else 1)


def test_the_table_is_large_enough() -> None:
    assert len(ROWS) >= 40
    assert sum(1 for row in ROWS.values() if row.pieces > 1) >= 3


class SilentUpstream:
    """Records the bytes of every connection until the proxy ends it, and never answers."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.ended = trio.Event()
        self.port = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners: list[Any] = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started(self.port)
        await trio.serve_listeners(self._handle, listeners)

    async def _handle(self, stream: trio.SocketStream) -> None:
        data = b""
        try:
            while chunk := await stream.receive_some(65536):
                data += chunk
        except trio.BrokenResourceError:
            pass  # a reset ends it as well as a close
        self.received.append(data)
        self.ended.set()


class ToSilent(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def test_a_bad_chunk_ends_the_upstream_connection_before_anything_after_it(
    nursery: trio.Nursery, start_proxy: Any
) -> None:
    upstream = SilentUpstream()
    await nursery.start(upstream.serve)
    base, _ = await start_proxy(ToSilent(upstream.port))
    body = b"3\r\nabc\r\n3;x\rq\r\ndef\r\n0\r\n\r\n" + SMUGGLED
    reply = await send_raw(base, request(HOST, CHUNKED, line=b"POST /upload HTTP/1.1", body=body))
    assert reply.statuses == [400]
    assert reply.closed
    # The upstream connection is ended by the proxy (not left open, not pooled): the upstream saw the head
    # and the chunk before the bad one, re-chunked, and nothing after it.
    with trio.fail_after(10):
        await upstream.ended.wait()
    [seen] = upstream.received
    head, _, forwarded = seen.partition(b"\r\n\r\n")
    assert head.startswith(b"POST /upload HTTP/1.1\r\n")
    assert forwarded in (b"", b"3\r\nabc\r\n")
    assert b"def" not in seen and b"smuggled" not in seen
