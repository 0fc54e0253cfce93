"""`RedisRateLimiter` against a real redis-server, under `trio.run` (coredis on trio through anyio): atomic
GCRA, the key's expiry, and a Redis that stops, hangs and comes back."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator

import pytest
import trio
from trio.testing import wait_all_tasks_blocked

from actorproxy.config import RedisConf
from actorproxy.limits import Quota, RedisRateLimiter
from actorproxy.testing import RedisServer
from actors import ActorSystem
from supervisors import GenBackgroundService

QUOTA = Quota.parse("1/min", burst=5)


@pytest.fixture
async def limiter(own_redis: RedisServer, system: ActorSystem) -> AsyncIterator[RedisRateLimiter]:
    """A limiter on `own_redis`, run as a background service; it retries 0.2 s after a failure."""
    limiter = RedisRateLimiter(RedisConf(url=own_redis.url, timeout=0.2), retry_interval=0.2)
    service = GenBackgroundService("redis limits", limiter)
    await system.spawn(service.child_spec().start, name=service.name)
    yield limiter


async def test_checks_are_atomic_across_concurrent_callers(limiter: RedisRateLimiter) -> None:
    decisions = []

    async def check() -> None:
        decisions.append(await limiter.check("k", QUOTA))

    async with trio.open_nursery() as nursery:
        for _ in range(40):
            nursery.start_soon(check)
    assert sum(d is not None and d.allowed for d in decisions) == QUOTA.burst
    refused = next(d for d in decisions if d is not None and not d.allowed)
    assert (refused.remaining, round(refused.retry_after)) == (0, 60)
    stats = limiter.statistics()
    assert stats.checks == 40
    assert stats.batches < 40  # the checks made while one was on its way travelled together


async def test_a_batch_survives_its_leader_going_away(own_redis: RedisServer, system: ActorSystem) -> None:
    # One sending slot; Redis stopped, so the first batch holds it. The second batch's leader is cancelled
    # while it waits for the slot; the checks that joined its batch still get Redis's answers.
    limiter = RedisRateLimiter(RedisConf(url=own_redis.url, timeout=10, max_connections=1))
    service = GenBackgroundService("redis limits", limiter)
    await system.spawn(service.child_spec().start, name=service.name)
    assert (await limiter.check("warm", QUOTA)) is not None  # the connection is open
    decisions = []

    async def check() -> None:
        decisions.append(await limiter.check("k", QUOTA))

    assert own_redis.pid is not None
    os.kill(own_redis.pid, signal.SIGSTOP)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(check)  # leads the first batch: sent, no answer while Redis is stopped
            await wait_all_tasks_blocked()
            leader = trio.CancelScope()
            nursery.start_soon(_check_in, limiter, leader)  # leads the second, waits for the slot
            await wait_all_tasks_blocked()
            for _ in range(4):
                nursery.start_soon(check)  # join the second batch
            await wait_all_tasks_blocked()
            leader.cancel()
            os.kill(own_redis.pid, signal.SIGCONT)
    finally:
        os.kill(own_redis.pid, signal.SIGCONT)
    assert len(decisions) == 5 and all(d is not None for d in decisions)
    # The cancelled leader's check was counted too: 6 checks of a burst of 5, one refused.
    assert [d is not None and d.allowed for d in decisions].count(True) == QUOTA.burst - 1
    assert limiter.statistics().batches == 3


async def _check_in(limiter: RedisRateLimiter, scope: trio.CancelScope) -> None:
    with scope:
        await limiter.check("k", QUOTA)


async def test_a_script_redis_forgot_is_loaded_again(
    limiter: RedisRateLimiter, own_redis: RedisServer
) -> None:
    assert (await limiter.check("k", QUOTA)) is not None
    assert await _command(own_redis, b"SCRIPT FLUSH") == b"+OK\r\n"
    decision = await limiter.check("k", QUOTA)
    assert decision is not None and decision.remaining == QUOTA.burst - 2
    assert limiter.statistics().errors == 0


async def test_the_key_expires_when_its_burst_is_whole_again(
    limiter: RedisRateLimiter, own_redis: RedisServer
) -> None:
    await limiter.check("k", Quota.parse("10/s", burst=1))
    ttl = await _command(own_redis, b"PTTL actorproxy:rl:k")
    assert 0 < int(ttl.strip(b":\r\n")) <= 101


async def _command(server: RedisServer, line: bytes) -> bytes:
    stream = await trio.open_tcp_stream("127.0.0.1", server.port)
    async with stream:
        await stream.send_all(line + b"\r\n")
        return await stream.receive_some(256)


async def test_a_redis_that_goes_away_answers_none_then_is_used_again(
    limiter: RedisRateLimiter, own_redis: RedisServer
) -> None:
    assert (await limiter.check("k", QUOTA)) is not None
    await trio.to_thread.run_sync(own_redis.stop)
    assert await limiter.check("k", QUOTA) is None
    assert await limiter.check("k", QUOTA) is None  # within the retry interval: not even tried
    stats = limiter.statistics()
    assert (stats.errors, stats.skipped, stats.degraded) == (1, 1, True)
    await trio.to_thread.run_sync(own_redis.start)
    with trio.fail_after(10):
        while await limiter.check("k", QUOTA) is None:  # noqa: ASYNC110 - another process comes back
            await trio.sleep(0.05)
    assert not limiter.statistics().degraded


async def test_a_hanging_redis_costs_one_timeout_per_retry_interval(
    limiter: RedisRateLimiter, own_redis: RedisServer
) -> None:
    assert (await limiter.check("k", QUOTA)) is not None
    assert own_redis.pid is not None
    os.kill(own_redis.pid, signal.SIGSTOP)
    try:
        with trio.fail_after(10):  # the call's own timeout (0.2 s) ends it, not this one
            assert await limiter.check("k", QUOTA) is None
            assert await limiter.check("k", QUOTA) is None
        assert limiter.statistics().skipped == 1
    finally:
        os.kill(own_redis.pid, signal.SIGCONT)
