"""`CacheLock`: one upstream request per key for concurrent misses (Pingora's cache lock), on trio.

    async with lock.hold(key) as ticket:
        if ticket.status is LockStatus.WRITER:
            ... fetch upstream, store the response ...
            ticket.done()                     # the waiters look up again and find it
        elif ticket.status is LockStatus.DONE:
            ... look up again: the writer stored it ...
        else:                                 # ABANDONED or TIMEOUT
            ... go upstream without the lock ...

Rules:
- The first caller for a key becomes its writer; the others wait, at most until `lock_timeout` seconds
  after the lock was taken (so a writer that hangs costs each waiter less the later it comes), then go
  upstream themselves (TIMEOUT).
- The lock is released whatever way the writer's block ends: `done()` and a normal exit wake the waiters
  with DONE; an exception, a cancellation, or a block left without `done()` wake them with ABANDONED.
  Release is a synchronous step (set the outcome, wake, forget the key), so it needs no shielding.
- `take(key)` is the writer's way in without an await (and `release(ticket)` its way out), for a caller
  that goes upstream at once when nobody holds the key: no context manager, no event until a waiter comes.
- One process: worker processes (`threads: N`) each hold their own locks, so a key costs at most one
  upstream request per worker.
"""

from __future__ import annotations

import enum
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import trio

from actorproxy.config import DEFAULT_CACHE_LOCK_TIMEOUT

__all__ = ["DEFAULT_LOCK_TIMEOUT", "CacheLock", "LockStatus", "LockTicket"]

#: Pingora's cache lock waits 5 s by default before a reader gives up on the writer.
DEFAULT_LOCK_TIMEOUT = DEFAULT_CACHE_LOCK_TIMEOUT


class LockStatus(enum.Enum):
    """What a caller of `CacheLock.hold` is to do."""

    #: Fetch and store; call `ticket.done()` once stored.
    WRITER = "writer"
    #: The writer stored the response: look it up again.
    DONE = "done"
    #: The writer ended without storing: go upstream (or take the lock again).
    ABANDONED = "abandoned"
    #: Waited `lock_timeout` for the writer: go upstream without the lock.
    TIMEOUT = "timeout"


class LockTicket:
    """A caller's place at a key's lock: `status` says what to do."""

    __slots__ = ("key", "status")

    def __init__(self, key: str, status: LockStatus) -> None:
        self.key = key
        self.status = status

    def __repr__(self) -> str:
        return f"<LockTicket {self.key!r} {self.status.value}>"

    def done(self) -> None:
        """The writer stored the response: the waiters will look it up (call only as the WRITER).

        Raises:
            RuntimeError: this ticket is not the writer's.
        """
        raise RuntimeError(f"{self!r}: only the writer marks the lock done")


class _Held(LockTicket):
    """The writer's ticket, which is also the key's lock while it is held: one object per fill."""

    __slots__ = ("deadline", "finished", "outcome", "released")

    def __init__(self, key: str, deadline: float) -> None:
        self.key = key
        self.status = LockStatus.WRITER
        self.deadline = deadline
        # Made by the first waiter: a writer nobody waits for sets nothing.
        self.finished: trio.Event | None = None
        self.released = False
        self.outcome = LockStatus.ABANDONED

    def done(self) -> None:
        self.outcome = LockStatus.DONE


class CacheLock:
    """Per-key locks for cache fills in this process.

    Args:
        lock_timeout: seconds a waiter waits for a writer, counted from when the writer took the lock.
    """

    def __init__(self, *, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> None:
        self.lock_timeout = lock_timeout
        self._locks: dict[str, _Held] = {}

    def __repr__(self) -> str:
        return f"<CacheLock {len(self._locks)} held>"

    def held(self, key: str) -> bool:
        """Whether a writer holds `key` now."""
        return key in self._locks

    def take(self, key: str) -> LockTicket | None:
        """`key`'s lock as its writer, when nobody holds it: the WRITER ticket, to end with `release`
        however the fetch ends; None: another writer holds it (wait with `hold`)."""
        locks = self._locks
        if key in locks:
            return None
        held = locks[key] = _Held(key, trio.current_time() + self.lock_timeout)
        return held

    def release(self, ticket: LockTicket, *, failed: bool = False) -> None:
        """End the writer's hold: its waiters wake with DONE if it called `done()` and did not fail (an
        exception, a cancellation), else with ABANDONED. Synchronous: it needs no shielding."""
        if not isinstance(ticket, _Held):
            raise RuntimeError(f"{ticket!r}: only the writer releases the lock")
        if failed:
            ticket.outcome = LockStatus.ABANDONED
        if self._locks.get(ticket.key) is ticket:
            del self._locks[ticket.key]
        ticket.released = True
        if ticket.finished is not None:
            ticket.finished.set()

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[LockTicket]:
        """Take `key`'s lock as its writer, or wait for its writer; the ticket says which, and how it
        ended."""
        ticket = self.take(key)
        if ticket is not None:
            try:
                # No checkpoint for the writer: a miss goes upstream at once, and the request around it
                # has checkpoints enough (trio's rule is for loops that could otherwise never yield).
                yield ticket
            except BaseException:
                self.release(ticket, failed=True)
                raise
            self.release(ticket)
            return
        lock = self._locks[key]
        if lock.finished is None:
            lock.finished = trio.Event()
        with trio.move_on_at(lock.deadline):
            await lock.finished.wait()
        status = lock.outcome if lock.released else LockStatus.TIMEOUT
        yield LockTicket(key, status)
