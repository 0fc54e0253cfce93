"""`session.enter_context`: what a request holds is let go when it ends, whatever way it ends: an answer,
an error, a cancellation, or a crash of its connection actor."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from memory_proxy import ToOrigin
from trio.testing import MockClock

from actorproxy.limits import Guard, Inflight
from actorproxy.proxy import ProxyCounters, ProxyHttp, Session
from actorproxy.testing import Origin, OriginRequest, OriginResponse, exchange


class Holding(ToOrigin):
    """Each request holds an in-flight guard for its path, tied to it."""

    def __init__(self) -> None:
        super().__init__()
        self.inflight = Inflight()
        self.entered = trio.Event()
        # Kept, so that no guard is released by the garbage collector: only the engine releases them here.
        self.guards: list[Guard] = []

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        self.guards.append(session.enter_context(self.inflight.incr(session.req_header.path)))
        self.entered.set()
        return False


async def test_a_request_lets_its_contexts_go_when_answered_or_failed(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    app = Holding()
    proxy = await start_proxy(app)
    assert (await proxy.get("/a")).status == 200
    app.address = ("10.9.9.9", 80)  # nobody serves it: connect refused, 502
    assert (await proxy.get("/a")).status == 502
    assert app.inflight.get("/a") == 0


async def test_a_cancelled_request_lets_its_contexts_go(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    never = trio.Event()

    async def hang(request: OriginRequest) -> OriginResponse:
        await never.wait()
        return OriginResponse()

    origin.respond = hang
    app = Holding()
    proxy = await start_proxy(app, grace_period=1.0)
    async with await proxy.connect() as client:
        await client.send_all(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        await app.entered.wait()
        assert app.inflight.get("/slow") == 1
        # The drain's grace runs out: the request in flight is cancelled.
        await proxy.system.shutdown()
    assert app.inflight.get("/slow") == 0


async def test_a_crashing_connection_actor_lets_its_requests_contexts_go(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = Holding()
    proxy = await start_proxy(app)
    counters = proxy.service.counters

    def broken(self: ProxyCounters, status: int) -> None:
        raise RuntimeError("a bug below the phases")

    # Counting the response raises out of the engine, and so out of the connection actor.
    monkeypatch.setattr(ProxyCounters, "count_response", broken)
    async with await proxy.connect() as client:
        await client.send_all(b"GET /crash HTTP/1.1\r\nHost: x\r\n\r\n")
        await trio.testing.wait_all_tasks_blocked()
    assert counters.connection_crashes == 1
    assert app.inflight.get("/crash") == 0


async def test_contexts_exit_last_entered_first_and_every_one_exits(
    autojump_clock: MockClock, start_proxy: Any, origin: Origin
) -> None:
    exited: list[str] = []

    class Ordered(ProxyHttp):
        async def request_filter(self, session: Session, ctx: Any) -> bool:
            session.enter_context(_Recorder("first", exited))
            session.enter_context(_Recorder("second", exited))
            await session.respond_error(204)
            return True

    proxy = await start_proxy(Ordered())
    async with await proxy.connect() as client:
        assert (await exchange(client, "GET", "/")).status == 204
    assert exited == ["second", "first"]


class _Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def __enter__(self) -> _Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.log.append(self.name)
