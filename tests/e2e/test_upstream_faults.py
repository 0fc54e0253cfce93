"""Upstreams that fail in the middle of an answer, or answer what HTTP does not allow.

A truncated body must never reach the client as complete: once the head is out, the client connection is
aborted; the upstream connection is discarded, never pooled; `logging` sees the error. An answer the proxy
cannot trust (garbage, CL with TE, a bad Content-Length) is a 502 with nothing of it forwarded; silence is
a 504 after the read timeout.
"""

from __future__ import annotations

import contextlib
from typing import Any

import attrs
import pytest
import trio
from faulty import FaultRelay, FaultyUpstream, Script, chunked, ok
from rawhttp import open_stream
from upstream import Upstream

from actorproxy.http import Error
from actorproxy.proxy import HttpPeer, PeerOptions, ProxyHttp, Session

READ_TIMEOUT = 0.5


class ToFaulty(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port
        self.logged: list[Error | None] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        options = PeerOptions(read_timeout=READ_TIMEOUT)
        return HttpPeer(("127.0.0.1", self.port), False, "", options)

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        self.logged.append(e)


@attrs.define
class Seen:
    data: bytes
    reset: bool

    @property
    def head(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[0]

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


async def get(base: str, *, keepalive: bool = False) -> Seen:
    """One GET on a new connection; everything until the proxy closes it (or resets it).

    With `keepalive`, the request leaves the connection open: only the proxy's own decision ends it.
    """
    data = b""
    close = b"" if keepalive else b"Connection: close\r\n"
    async with await open_stream(base) as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n%s\r\n" % close)
        try:
            with trio.fail_after(10):
                while chunk := await stream.receive_some(65536):
                    data += chunk
        except trio.BrokenResourceError:
            return Seen(data, reset=True)
    return Seen(data, reset=False)


async def start(nursery: trio.Nursery, start_proxy: Any, *scripts: Script) -> tuple[str, Any, ToFaulty, Any]:
    upstream = FaultyUpstream(list(scripts))
    await nursery.start(upstream.serve)
    app = ToFaulty(upstream.port)
    base, service = await start_proxy(app)
    return base, service, app, upstream


# -- failing mid-body: the client is cut off, the upstream connection is dropped ---------------------------

BODY = b"x" * 1000


@pytest.mark.parametrize("ending", ["reset", "close", "stall"])
async def test_a_body_cut_short_is_never_presented_as_complete(
    ending: str, nursery: trio.Nursery, start_proxy: Any
) -> None:
    cut = len(ok(BODY)) - 400
    base, service, app, upstream = await start(
        nursery, start_proxy, Script(ok(BODY), cut=cut, ending=ending), Script(ok(b"fine"), ending="keep")
    )
    seen = await get(base, keepalive=True)  # the proxy must end the connection, not leave it waiting
    assert seen.head.startswith(b"HTTP/1.1 200")
    assert len(seen.body) < len(BODY)  # the client knows, from Content-Length, that it was cut short
    [error] = app.logged
    assert error is not None
    assert service.pool.statistics().idle == 0  # the broken upstream connection was not kept
    # The next request gets a new upstream connection and a whole answer.
    again = await get(base)
    assert again.body == b"fine" and upstream.connections == 2


@pytest.mark.parametrize("ending", ["reset", "close"])
async def test_a_chunked_body_cut_short_gets_no_last_chunk(
    ending: str, nursery: trio.Nursery, start_proxy: Any
) -> None:
    answer = chunked(b"a" * 100, b"b" * 100, b"c" * 100)
    base, _, app, _ = await start(nursery, start_proxy, Script(answer, cut=len(answer) - 150, ending=ending))
    seen = await get(base, keepalive=True)
    assert seen.head.startswith(b"HTTP/1.1 200")
    assert b"transfer-encoding: chunked" in seen.head.lower()
    assert not seen.body.endswith(b"0\r\n\r\n")  # no terminating chunk: the client sees a broken body
    [error] = app.logged
    assert error is not None


# -- answers the proxy cannot trust: 502, nothing forwarded -------------------------------------------------

UNTRUSTED = {
    "garbage": b"HELLO THERE\r\n\r\n",
    "not http at all": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40,
    "cl and te": (
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
    ),
    "cl not digits": b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nhello",
    "cl negative": b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nhello",
    "cl list": b"HTTP/1.1 200 OK\r\nContent-Length: 5, 6\r\n\r\nhello",
    "cl twice, different": b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
    "cl with a sign": b"HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello",
    "te unknown": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
    "status not a number": b"HTTP/1.1 2x0 OK\r\nContent-Length: 0\r\n\r\n",
    "101 without an upgrade request": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
}


@pytest.mark.parametrize("answer", list(UNTRUSTED.values()), ids=list(UNTRUSTED))
async def test_an_untrusted_answer_is_a_502_with_nothing_forwarded(
    answer: bytes, nursery: trio.Nursery, start_proxy: Any
) -> None:
    base, _, app, _ = await start(nursery, start_proxy, Script(answer, ending="keep"))
    seen = await get(base)
    assert seen.head.startswith(b"HTTP/1.1 502"), seen
    assert b"hello" not in seen.body and b"HELLO" not in seen.body
    [error] = app.logged
    assert error is not None


async def test_a_silent_upstream_is_a_504_after_its_read_timeout(
    nursery: trio.Nursery, start_proxy: Any
) -> None:
    base, _, _, _ = await start(nursery, start_proxy, Script(b"", ending="stall"))
    started = trio.current_time()
    seen = await get(base)
    assert seen.head.startswith(b"HTTP/1.1 504")
    assert READ_TIMEOUT <= trio.current_time() - started < READ_TIMEOUT + 5


async def test_a_head_cut_short_is_a_502(nursery: trio.Nursery, start_proxy: Any) -> None:
    answer = ok(BODY)
    base, _, _, _ = await start(nursery, start_proxy, Script(answer, cut=20, ending="close"))
    seen = await get(base)
    assert seen.head.startswith(b"HTTP/1.1 502")


@pytest.mark.parametrize("ending", ["reset", "close", "stall"])
async def test_a_relay_breaking_a_real_answer_mid_body_cuts_the_client_off(
    ending: str, nursery: trio.Nursery, upstreams: list[Upstream], start_proxy: Any
) -> None:
    relay = FaultRelay(upstreams[0].port, cut=100_000, ending=ending)
    await nursery.start(relay.serve)
    app = ToFaulty(relay.port)
    base, service = await start_proxy(app)
    data = b""
    async with await open_stream(base) as stream:
        await stream.send_all(b"GET /big?size=300000 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        with contextlib.suppress(trio.BrokenResourceError), trio.fail_after(10):
            while chunk := await stream.receive_some(65536):
                data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: 300000" in head.lower()
    assert len(body) < 300_000  # cut short, and the connection ended
    [error] = app.logged
    assert error is not None
    assert service.pool.statistics().idle == 0
