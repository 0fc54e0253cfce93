"""`RouteLimiter` on the request path, in memory and on virtual time: a key over its rate gets 429 with its
headers while another key passes, a burst then the refill, in-flight limits, statistics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from actorproxy.limits import GcraTable, InflightTable, KeyFunction, Quota, RouteLimiter
from actorproxy.proxy import HttpPeer, ProxyHttp, Session, http_proxy_service
from actorproxy.testing import (
    MemoryListener,
    Origin,
    OriginRequest,
    OriginResponse,
    exchange,
    open_memory_network,
)
from actors import ActorSystem

ORIGIN = ("10.0.0.1", 80)


class Limited(ProxyHttp):
    """Every request goes through `limiter`, then to the origin."""

    def __init__(self, limiter: RouteLimiter) -> None:
        self.limiter = limiter

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        return not await self.limiter.admit(session)

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(ORIGIN, tls=False, sni="")


def limiter(rate: str | None = None, burst: int | None = None, inflight: int | None = None) -> RouteLimiter:
    """Keyed by `x-api-key`, counted in memory, on trio's (virtual) clock."""
    return RouteLimiter(
        "test",
        KeyFunction(["header:x-api-key"], "test"),
        quota=Quota.parse(rate, burst) if rate else None,
        inflight=inflight,
        table=GcraTable.in_memory(64),
        inflight_table=InflightTable(1),
        clock=trio.current_time,
    )


Get = Callable[..., Any]


@pytest.fixture
async def serve(actor_system: ActorSystem) -> AsyncIterator[Callable[..., Any]]:
    """`get = await serve(limiter, origin)`: `await get(key)` is one request with that API key."""
    async with open_memory_network() as network:

        async def start(limit: RouteLimiter, origin: Origin | None = None) -> Get:
            network.serve(ORIGIN, (origin or Origin()).serve)
            service = http_proxy_service(None, Limited(limit))
            listener = MemoryListener()
            service.add_listener(listener)
            service.connect = network.connect
            await actor_system.spawn(service.child_spec().start, name=service.name)

            async def get(key: str, target: str = "/") -> Any:
                async with await listener.connect() as client:
                    return await exchange(client, "GET", target, headers=[("X-Api-Key", key)])

            return get

        yield start


async def test_a_key_over_its_rate_gets_429_while_another_key_passes(
    autojump_clock: MockClock, serve: Any
) -> None:
    limit = limiter("1/min", burst=2)
    get = await serve(limit)
    assert [(await get("a")).status for _ in range(3)] == [200, 200, 429]
    assert (await get("b")).status == 200
    refused = await get("a")
    assert refused.status == 429
    assert refused.header("retry-after") == "60"  # one request a minute, and the burst is spent
    assert refused.header("ratelimit-policy") == '"rate";q=1;w=60'
    assert refused.header("ratelimit") == '"rate";r=0;t=120'
    assert refused.body == b"rate limit exceeded\n"
    stats = limit.statistics()
    assert (stats.allowed, stats.limited, stats.limited_inflight) == (3, 2, 0)


async def test_a_burst_passes_at_once_then_the_rate_refills_it(autojump_clock: MockClock, serve: Any) -> None:
    get = await serve(limiter("2/s", burst=3))  # one request every 0.5 s
    start = trio.current_time()
    assert [(await get("a")).status for _ in range(4)] == [200, 200, 200, 429]
    await trio.sleep_until(start + 0.5)
    assert [(await get("a")).status for _ in range(2)] == [200, 429]
    await trio.sleep_until(start + 1.5)
    assert [(await get("a")).status for _ in range(3)] == [200, 200, 429]


async def test_in_flight_requests_of_a_key_are_bounded_and_freed_when_they_end(
    autojump_clock: MockClock, serve: Any
) -> None:
    release = trio.Event()

    async def slow(request: OriginRequest) -> OriginResponse:
        if request.target == "/slow":
            await release.wait()
        return OriginResponse(body=b"done")

    limit = limiter(inflight=2)
    get = await serve(limit, Origin(slow))
    statuses: list[int] = []
    async with trio.open_nursery() as nursery:
        for _ in range(2):
            nursery.start_soon(lambda: _append(statuses, get("a", "/slow")))
        await trio.testing.wait_all_tasks_blocked()
        third = await get("a")
        assert (third.status, third.header("ratelimit-policy")) == (429, '"inflight";q=2')
        assert (await get("b")).status == 200  # another key has its own count
        release.set()
    assert statuses == [200, 200]
    assert (await get("a")).status == 200
    assert limit.inflight_table is not None and limit.inflight_table.get("test\x1fa") == 0
    assert limit.statistics().limited_inflight == 1


async def _append(statuses: list[int], response: Any) -> None:
    statuses.append((await response).status)


async def test_a_request_the_rate_refuses_does_not_stay_counted_in_flight(
    autojump_clock: MockClock, serve: Any
) -> None:
    limit = limiter("1/min", burst=1, inflight=5)
    get = await serve(limit)
    assert [(await get("a")).status for _ in range(2)] == [200, 429]
    assert limit.inflight_table is not None and limit.inflight_table.get("test\x1fa") == 0
