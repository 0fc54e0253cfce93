"""The cache lock on virtual time: one writer per key (by `hold`, or `take` and `release`), waiters woken
however the writer's block ends, and waiting bounded by `lock_timeout` from when the lock was taken."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import trio
import trio.testing

from actorproxy.cache import CacheLock, LockStatus, LockTicket

WAITERS = 100


async def crowd(lock: CacheLock, writer_body: Any) -> Counter[LockStatus]:
    """100 callers miss one key together; the writer runs `writer_body(ticket)`."""
    seen: Counter[LockStatus] = Counter()

    async def caller() -> None:
        try:
            async with lock.hold("key") as ticket:
                seen[ticket.status] += 1
                if ticket.status is LockStatus.WRITER:
                    await writer_body(ticket)
        except RuntimeError:
            pass  # the writer's own failure, raised to it alone

    async with trio.open_nursery() as nursery:
        for _ in range(WAITERS):
            nursery.start_soon(caller)
    assert not lock.held("key")
    return seen


async def test_one_writer_fetches_and_the_others_find_it_done(autojump_clock: trio.testing.MockClock) -> None:
    async def fetch(ticket: Any) -> None:
        await trio.sleep(1)  # the upstream request
        ticket.done()

    seen = await crowd(CacheLock(lock_timeout=5), fetch)
    assert seen == {LockStatus.WRITER: 1, LockStatus.DONE: WAITERS - 1}
    assert trio.current_time() == 1


async def test_a_writer_that_raises_releases_the_waiters_as_abandoned(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async def fail(ticket: Any) -> None:
        await trio.sleep(1)
        raise RuntimeError("upstream failed")

    seen = await crowd(CacheLock(lock_timeout=5), fail)
    assert seen == {LockStatus.WRITER: 1, LockStatus.ABANDONED: WAITERS - 1}


async def test_a_writer_that_ends_without_done_abandons(autojump_clock: trio.testing.MockClock) -> None:
    async def not_cacheable(ticket: Any) -> None:
        await trio.sleep(1)

    seen = await crowd(CacheLock(), not_cacheable)
    assert seen == {LockStatus.WRITER: 1, LockStatus.ABANDONED: WAITERS - 1}


async def test_a_hung_writer_costs_the_waiters_lock_timeout_at_most(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = CacheLock(lock_timeout=5)
    seen: Counter[LockStatus] = Counter()
    woken: list[float] = []

    async def waiter(delay: float) -> None:
        await trio.sleep(delay)
        async with lock.hold("key") as ticket:
            seen[ticket.status] += 1
            woken.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        writer = trio.CancelScope()

        async def hung_writer() -> None:
            with writer:
                async with lock.hold("key") as ticket:
                    assert ticket.status is LockStatus.WRITER
                    await trio.sleep_forever()

        nursery.start_soon(hung_writer)
        await trio.testing.wait_all_tasks_blocked()
        for n in range(WAITERS):
            nursery.start_soon(waiter, n * 0.04)  # arriving over 4 s
        await trio.sleep(10)
        assert lock.held("key")  # the writer still holds it: waiters gave up on it
        writer.cancel()
    assert seen == {LockStatus.TIMEOUT: WAITERS}
    assert set(woken) == {5.0}  # all woken when the lock is 5 s old, however late they came
    assert not lock.held("key")


async def test_a_cancelled_writer_releases_the_lock(autojump_clock: trio.testing.MockClock) -> None:
    lock = CacheLock(lock_timeout=5)
    statuses: list[LockStatus] = []

    async def writer(task_status: trio.TaskStatus[trio.CancelScope]) -> None:
        with trio.CancelScope() as scope:
            async with lock.hold("key"):
                task_status.started(scope)
                await trio.sleep_forever()

    async def waiter() -> None:
        async with lock.hold("key") as ticket:
            statuses.append(ticket.status)

    async with trio.open_nursery() as nursery:
        scope = await nursery.start(writer)
        nursery.start_soon(waiter)
        await trio.sleep(1)
        scope.cancel()
    assert statuses == [LockStatus.ABANDONED]
    assert trio.current_time() == 1
    async with lock.hold("key") as ticket:  # free again: the next caller writes
        assert ticket.status is LockStatus.WRITER


async def test_keys_are_independent_and_only_the_writer_marks_done(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lock = CacheLock()
    async with lock.hold("a") as first, lock.hold("b") as second:
        assert first.status is second.status is LockStatus.WRITER
    async with trio.open_nursery() as nursery:

        async def write() -> None:
            async with lock.hold("c") as ticket:
                await trio.sleep(1)
                ticket.done()

        nursery.start_soon(write)
        await trio.testing.wait_all_tasks_blocked()
        async with lock.hold("c") as waited:
            assert waited.status is LockStatus.DONE
            with pytest.raises(RuntimeError, match="only the writer"):
                waited.done()


async def test_take_and_release_hold_the_key_without_a_wait(autojump_clock: trio.testing.MockClock) -> None:
    lock = CacheLock(lock_timeout=5)
    ticket = lock.take("key")
    assert ticket is not None and ticket.status is LockStatus.WRITER
    assert lock.take("key") is None  # held: the caller waits with hold()
    statuses: list[LockStatus] = []

    async def waiter() -> None:
        async with lock.hold("key") as waiting:
            statuses.append(waiting.status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        ticket.done()
        lock.release(ticket)
    assert statuses == [LockStatus.DONE]
    assert trio.current_time() == 0
    assert not lock.held("key")


async def test_a_writer_released_as_failed_wakes_its_waiters_abandoned() -> None:
    lock = CacheLock()
    ticket = lock.take("key")
    assert ticket is not None
    statuses: list[LockStatus] = []

    async def waiter() -> None:
        async with lock.hold("key") as waiting:
            statuses.append(waiting.status)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        ticket.done()  # then the fetch failed after all
        lock.release(ticket, failed=True)
    assert statuses == [LockStatus.ABANDONED]
    with pytest.raises(RuntimeError, match="only the writer"):
        lock.release(LockTicket("key", LockStatus.DONE))
    fresh = lock.take("key")
    assert fresh is not None
    lock.release(fresh)  # nobody waited: nothing to wake
    assert not lock.held("key")
