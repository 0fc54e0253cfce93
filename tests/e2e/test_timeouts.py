"""Clients that are slow on purpose: a head or a body that never finishes gets 408 and its connection
closes; a thousand connections trickling their heads do not stop other clients from being served."""

from __future__ import annotations

from typing import Any

import httpx
import trio
from rawhttp import open_stream
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session

TIMEOUT = 0.5


class To(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def read_until_closed(stream: trio.abc.Stream) -> bytes:
    data = b""
    try:
        while chunk := await stream.receive_some(65536):
            data += chunk
    except trio.BrokenResourceError:
        pass
    return data


async def test_a_head_that_never_finishes_gets_408(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(To(upstreams[0].port), request_header_timeout=TIMEOUT)
    async with await open_stream(base) as stream:
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        started = trio.current_time()
        with trio.fail_after(10):
            answer = await read_until_closed(stream)
        assert answer.startswith(b"HTTP/1.1 408")
        assert TIMEOUT <= trio.current_time() - started < TIMEOUT + 5
    assert upstreams[0].requests == []


async def test_a_connection_that_sends_nothing_is_closed_without_an_answer(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(To(upstreams[0].port), request_header_timeout=TIMEOUT)
    async with await open_stream(base) as stream:
        with trio.fail_after(10):
            assert await read_until_closed(stream) == b""


async def test_a_body_that_stops_coming_gets_408(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(To(upstreams[0].port), request_body_timeout=TIMEOUT)
    async with await open_stream(base) as stream:
        await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
        with trio.fail_after(10):
            answer = await read_until_closed(stream)
    # The head went upstream at once; the answer the client gets is the proxy's 408, and the connection ends.
    assert answer.startswith(b"HTTP/1.1 408")


async def test_a_thousand_trickling_clients_do_not_stop_the_others(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    header_timeout = 3.0
    base, _ = await start_proxy(To(upstreams[0].port), request_header_timeout=header_timeout)
    slow = 1000
    closed = 0
    all_closed = trio.Event()

    async def trickle(stream: trio.abc.Stream) -> None:
        nonlocal closed
        try:
            await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n")
            while True:
                await stream.send_all(b"X")  # a header name, one byte at a time, never ending
                with trio.move_on_after(0.2):
                    if not await stream.receive_some(65536):
                        break
                    await read_until_closed(stream)
                    break
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await stream.aclose()
            closed += 1
            if closed == slow:
                all_closed.set()

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            opened_at = trio.current_time()
            for _ in range(slow):
                nursery.start_soon(trickle, await open_stream(base))
            statuses = []
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                for n in range(20):
                    statuses.append((await client.get(f"/echo?n={n}")).status_code)
            assert statuses == [200] * 20
            assert closed == 0 or trio.current_time() - opened_at >= header_timeout
            await all_closed.wait()
            # Each was closed at its head deadline, not before.
            assert trio.current_time() - opened_at >= header_timeout
    assert [r["target"] for r in upstreams[0].requests] == [f"/echo?n={n}" for n in range(20)]


async def test_the_total_deadline_answers_504_for_a_slow_upstream(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, service = await start_proxy(To(upstreams[0].port), request_timeout=TIMEOUT)
    async with await open_stream(base) as stream:
        await stream.send_all(b"GET /slow?delay=30 HTTP/1.1\r\nHost: localhost\r\n\r\n")
        started = trio.current_time()
        with trio.fail_after(10):
            answer = await stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 504")
    assert TIMEOUT <= trio.current_time() - started < TIMEOUT + 5
    assert service.pool.statistics().idle == 0  # the connection cut mid-exchange was not kept


async def test_the_total_deadline_answers_408_for_a_body_still_coming(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(To(upstreams[0].port), request_timeout=TIMEOUT, request_body_timeout=30.0)
    async with await open_stream(base) as stream:
        await stream.send_all(b"POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nabc")
        with trio.fail_after(10):
            answer = await read_until_closed(stream)
    assert answer.startswith(b"HTTP/1.1 408")
