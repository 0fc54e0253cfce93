"""A bounded mailbox with a priority control lane.

Rules:
- Two lanes. The control lane (stop requests, child exits, monitor notices) is unbounded and always read
  first, so a stop request overtakes any amount of queued data. The data lane is bounded by `capacity` and
  applies the overflow policy when full.
- No trio channel underneath: one parked receiver task and a parking lot of blocked senders, woken with
  `reschedule` directly. A message that is already queued is returned without a schedule point; the reader
  decides when to checkpoint (measured: a channel hop costs about twice a direct reschedule).
- `close()` hands back whatever data was still queued so the owner can fail asks and record dead letters,
  and wakes every blocked sender so none waits on a mailbox nobody reads.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from typing import Any

import attrs
import trio
from trio.lowlevel import Abort, ParkingLot, Task, current_task, reschedule, wait_task_rescheduled

__all__ = ["DEFAULT_MAILBOX_CAPACITY", "Mailbox", "MailboxConfig", "Overflow"]

# Large enough that a burst never blocks a healthy actor, small enough that a stuck one pushes back soon.
DEFAULT_MAILBOX_CAPACITY = 1024


class Overflow(enum.Enum):
    """What a full data lane does with one more message."""

    BLOCK = "block"  # `tell` waits for room (backpressure); `tell_nowait` raises MailboxFull
    FAIL = "fail"  # the sender gets MailboxFull at once
    DROP_NEWEST = "drop_newest"  # the new message becomes a dead letter
    DROP_OLDEST = "drop_oldest"  # the oldest queued message becomes a dead letter


@attrs.frozen(kw_only=True)
class MailboxConfig:
    """Size and overflow policy of one actor's data lane."""

    capacity: int = attrs.field(default=DEFAULT_MAILBOX_CAPACITY, validator=attrs.validators.ge(1))
    overflow: Overflow = Overflow.BLOCK


class MailboxClosed(Exception):
    """Internal: the owner has exited; the sender turns this into ActorDead or a dead letter."""


class _Timeout:
    __slots__ = ()

    def __repr__(self) -> str:
        return "TIMEOUT"


TIMEOUT: Any = _Timeout()

# The data lane of every mailbox that has never been sent data: an empty deque costs ~760 bytes, and an idle
# actor needs none. Never appended to (the senders swap in a deque of their own first), so always empty.
_NO_DATA: deque[Any] = deque()


class Mailbox:
    """Two-lane queue read by exactly one task."""

    __slots__ = (
        "_blocked",
        "_control",
        "_data",
        "_receiver",
        "_senders",
        "capacity",
        "closed",
        "overflow",
        "peak",
    )

    def __init__(self, config: MailboxConfig | None = None) -> None:
        config = config or MailboxConfig()
        self.capacity = config.capacity
        self.overflow = config.overflow
        self._data: deque[Any] = _NO_DATA
        self._control: deque[Any] | None = None
        self._receiver: Task | None = None
        self._senders: ParkingLot | None = None
        self._blocked = 0
        self.peak = 0
        self.closed = False

    def __len__(self) -> int:
        return len(self._data) + (len(self._control) if self._control else 0)

    @property
    def blocked_senders(self) -> int:
        """Senders waiting for room in the data lane."""
        return self._blocked

    @property
    def empty(self) -> bool:
        return not (self._control or self._data)

    def park_receiver(self) -> None:
        """Register the current task as the one to wake; then `await wait_task_rescheduled(abort_receive)`.

        Split from `get` so the reader's loop can wait without one more suspended coroutine frame per idle
        actor (frames are most of an idle actor's memory).
        """
        self._receiver = current_task()

    def abort_receive(self, _: Any) -> Abort:
        # Cleared here, synchronously: between a cancellation and the task running again, a sender must not
        # see the task as parked and reschedule it a second time.
        self._receiver = None
        return Abort.SUCCEEDED

    def _wake_receiver(self) -> None:
        task = self._receiver
        if task is not None:
            self._receiver = None
            reschedule(task)

    def put_nowait(self, item: Any) -> Any:
        """Queue `item` on the data lane without waiting.

        Returns:
            None when nothing was dropped, otherwise the message the drop policy discarded (the new one for
            DROP_NEWEST, the oldest queued one for DROP_OLDEST).

        Raises:
            MailboxClosed: the owner has exited.
            trio.WouldBlock: the lane is full and the policy is BLOCK or FAIL.
        """
        if self.closed:
            raise MailboxClosed
        data = self._data
        dropped = None
        if len(data) >= self.capacity:
            overflow = self.overflow
            if overflow is Overflow.DROP_NEWEST:
                return item
            if overflow is Overflow.DROP_OLDEST:
                dropped = data.popleft()
            else:
                raise trio.WouldBlock
        if data is _NO_DATA:
            data = self._data = deque()
        data.append(item)
        self.peak = max(self.peak, len(data))
        self._wake_receiver()
        return dropped

    def must_wait(self) -> bool:
        """Whether `put` would wait for room now (BLOCK policy, data lane full, mailbox open)."""
        return len(self._data) >= self.capacity and self.overflow is Overflow.BLOCK and not self.closed

    async def put(self, item: Any) -> Any:
        """Queue `item`, waiting for room when the policy is BLOCK; same results as `put_nowait`."""
        if self.overflow is Overflow.BLOCK:
            while len(self._data) >= self.capacity and not self.closed:
                if self._senders is None:
                    self._senders = ParkingLot()
                self._blocked += 1
                try:
                    await self._senders.park()
                finally:
                    self._blocked -= 1
        return self.put_nowait(item)

    def put_internal(self, item: Any) -> None:
        """Queue `item` on the data lane regardless of capacity (timer messages the actor sent itself)."""
        if self.closed:
            raise MailboxClosed
        if self._data is _NO_DATA:
            self._data = deque()
        self._data.append(item)
        self._wake_receiver()

    def put_control(self, item: Any) -> None:
        """Queue `item` on the control lane: unbounded, read before any data."""
        if self.closed:
            raise MailboxClosed
        if self._control is None:
            self._control = deque()
        self._control.append(item)
        self._wake_receiver()

    def get_nowait(self) -> Any:
        """The next message, control lane first.

        Raises:
            trio.WouldBlock: both lanes are empty.
        """
        control = self._control
        if control:
            return control.popleft()
        data = self._data
        if not data:
            raise trio.WouldBlock
        item = data.popleft()
        if self._blocked:
            assert self._senders is not None
            self._senders.unpark()
        return item

    async def get(self, deadline: float = math.inf) -> Any:
        """The next message, waiting until one arrives or `deadline` passes (then `TIMEOUT`)."""
        while True:
            if self._control or self._data:
                return self.get_nowait()
            if deadline == math.inf:
                self._receiver = current_task()
                await wait_task_rescheduled(self.abort_receive)
            else:
                with trio.CancelScope(deadline=deadline) as scope:
                    self._receiver = current_task()
                    await wait_task_rescheduled(self.abort_receive)
                if scope.cancelled_caught:
                    return TIMEOUT

    def close(self) -> list[Any]:
        """Refuse further messages; return the data still queued and wake every blocked sender."""
        self.closed = True
        leftover = list(self._data)
        self._data.clear()
        if self._control:
            self._control.clear()
        if self._senders is not None:
            self._senders.unpark_all()
        return leftover
