"""ConnectionActor on memory streams: keep-alive, idle and head timeouts, lingering close, crashes."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from memory_proxy import ToOrigin, read_until_closed
from trio.testing import MockClock

from actorproxy.proxy import LINGER_TIMEOUT, Session
from actorproxy.testing import Origin, ScriptedStream, exchange
from supervisors import start_child_soon


async def test_keep_alive_serves_several_requests_on_one_connection(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    async with await proxy.connect() as stream:
        responses = [await exchange(stream, "GET", f"/kept/{n}") for n in range(3)]
    assert [r.status for r in responses] == [200, 200, 200]
    assert all(r.header("connection") == "keep-alive" for r in responses)
    assert origin.targets == ["/kept/0", "/kept/1", "/kept/2"]
    assert proxy.listener.accepted == 1


async def test_an_idle_keep_alive_connection_closes_after_the_keepalive_timeout(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(keepalive_timeout=5.0)
    async with await proxy.connect() as stream:
        assert (await exchange(stream, "GET", "/once")).status == 200
        idle_since = trio.current_time()
        assert await read_until_closed(stream) == b""  # closed without a word
        assert trio.current_time() - idle_since == pytest.approx(5.0)


async def test_a_head_that_does_not_arrive_in_time_gets_408(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(request_header_timeout=3.0)
    async with await proxy.connect() as stream:
        started = trio.current_time()
        await stream.send_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        answer = await read_until_closed(stream)
        assert trio.current_time() - started == pytest.approx(3.0)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert origin.requests == []


async def test_a_connection_that_sends_nothing_closes_at_the_header_timeout_without_an_answer(
    autojump_clock: MockClock,
    start_proxy: Any,
) -> None:
    proxy = await start_proxy(request_header_timeout=3.0)
    async with await proxy.connect() as stream:
        started = trio.current_time()
        assert await read_until_closed(stream) == b""
        assert trio.current_time() - started == pytest.approx(3.0)


async def test_a_refused_head_is_answered_then_the_connection_lingers(
    autojump_clock: MockClock, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    async with await proxy.connect() as stream:
        # Both framings at once: refused (RFC 9112 §6.1), with bytes of a body still to come.
        await stream.send_all(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        answer = await read_until_closed(stream)  # the answer, then the proxy's write side closed
        half_closed_at = trio.current_time()
        assert answer.startswith(b"HTTP/1.1 400 ")
        assert b"connection: close" in answer.lower()
        # The proxy still reads (and drops) what the client sends, so the answer is not lost to a reset...
        await stream.send_all(b"hello")
        await trio.testing.wait_all_tasks_blocked()
        await stream.send_all(b"world")
        # ...until the linger ends: then its side is closed for good.
        with trio.fail_after(LINGER_TIMEOUT + 1):
            while True:
                try:
                    await stream.send_all(b"x")
                except trio.BrokenResourceError:
                    break
                await trio.sleep(0.5)
        assert LINGER_TIMEOUT <= trio.current_time() - half_closed_at <= LINGER_TIMEOUT + 0.5
    assert proxy.service.counters.rejected == 1


class Raises(ToOrigin):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        if session.req_header.path == "/boom":
            raise RuntimeError("a bug in a filter")
        return False


async def test_an_exception_in_a_filter_ends_only_its_own_connection(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(Raises())
    async with await proxy.connect() as other, await proxy.connect() as failing:
        assert (await exchange(other, "GET", "/before")).status == 200
        failed = await exchange(failing, "GET", "/boom", until_closed=True)
        assert (failed.status, failed.header("connection"), failed.closed) == (500, "close", True)
        # The other connection, kept alive meanwhile, goes on as if nothing happened.
        assert (await exchange(other, "GET", "/after")).status == 200
    assert origin.targets == ["/before", "/after"]
    assert proxy.service.counters.internal_errors == 1
    assert proxy.service.counters.connection_crashes == 0


async def test_a_crashing_connection_answers_500_and_the_others_keep_serving(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    async with await proxy.connect() as other:
        assert (await exchange(other, "GET", "/before")).status == 200
        # A stream whose read fails with an exception of no I/O kind (a bug below the phases), handed over
        # as the listener hands over an accepted stream.
        broken = ScriptedStream([], close=False)
        connections = proxy.system.whereis("proxy/connections")
        assert connections is not None
        await start_child_soon(connections, broken)
        await trio.testing.wait_all_tasks_blocked()
        assert broken.written.startswith(b"HTTP/1.1 500 ")
        assert proxy.service.counters.connection_crashes == 1
        assert (await exchange(other, "GET", "/after")).status == 200
        assert (await proxy.get("/new")).status == 200  # the listener accepts as before
    assert origin.targets == ["/before", "/after", "/new"]


class AnswersItself(ToOrigin):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        await session.respond_error(204)
        return True


async def test_a_connection_whose_requests_never_wait_still_yields_once_per_request(start_proxy: Any) -> None:
    proxy = await start_proxy(AnswersItself())
    requests = 20
    # Every request there at once, on a stream that never checkpoints: nothing in a request waits.
    stream = ScriptedStream([b"GET / HTTP/1.1\r\nHost: h\r\n\r\n" * requests], close=True)
    connections = proxy.system.whereis("proxy/connections")
    assert connections is not None
    await start_child_soon(connections, stream)
    turns = 0
    while stream.written.count(b"HTTP/1.1 204 ") < requests:
        await trio.lowlevel.checkpoint()
        turns += 1
    assert turns >= requests - 1  # this task ran between the connection's requests
