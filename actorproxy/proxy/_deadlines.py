"""`Deadlines`: the timeouts of reads on upstream sockets, kept without a cancel scope per read.

Rules:
- A `trio.CancelScope` with a deadline costs about 60,000 instructions to enter and leave (callgrind,
  trio 0.35: a cancel status, two generator context managers, the deadline heap), about a tenth of a
  proxied request, and nearly every upstream read waits under load. A read with a timeout registers its
  deadline and its socket instead (`arm`: a dict insertion) and removes them when it ends (`disarm`).
- One actor, the service's `PeerPoolActor`, ends the reads that run out of time: it wakes at the earliest
  deadline (`next_deadline`), and `expire` ends each overdue read with `trio.lowlevel.notify_closing` on
  its socket. The waiting task wakes with `trio.ClosedResourceError`, which the stream turns into
  `trio.TooSlowError` for the read it armed. The socket is then fit only to be closed, as after any
  timeout: the codec marks the connection failed and the engine aborts it. A read whose deadline passes
  while its data arrives keeps its data, as it would in a cancel scope: only a read still waiting ends.
- `notify_closing` wakes every task waiting on the socket, so a caller arms only a read that no other
  task shares the socket with (the codecs: not while a request body is still being written).
- Deadlines are kept in insertion order per timeout value (a service has few: its peers' read timeouts),
  so the earliest is the first entry of one of a few dicts, and arm and disarm are O(1).
- Arming a deadline earlier than the actor's next look (`wake_at`) tells the actor (`poke`). With the
  usual timeouts (60 s) that happens once when a service starts being used: after that each look finds
  a later deadline than any new read's, which is armed later still.
- Nothing is armed while no actor watches (`attach` / `detach`): a read then takes a cancel scope.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import trio

__all__ = ["Armed", "Deadlines"]


class Armed:
    """One read's deadline: `expired` once `Deadlines.expire` ended it."""

    __slots__ = ("deadline", "expired", "sock", "timeout")

    def __init__(self, sock: Any, deadline: float, timeout: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.timeout = timeout
        self.expired = False


class Deadlines:
    """The deadlines of the reads in progress, by timeout value; see the module rules."""

    __slots__ = ("_by_timeout", "_poke", "wake_at")

    def __init__(self) -> None:
        self._by_timeout: dict[float, dict[Armed, None]] = {}
        self._poke: Callable[[], None] | None = None
        #: When the watching actor looks at the deadlines next; infinity when it has nothing to look for.
        self.wake_at = math.inf

    def __len__(self) -> int:
        return sum(len(armed) for armed in self._by_timeout.values())

    @property
    def watched(self) -> bool:
        """Whether an actor ends the reads that run out of time (else `arm` arms nothing)."""
        return self._poke is not None

    def attach(self, poke: Callable[[], None]) -> None:
        """Start watching: `poke` tells the actor to look at the deadlines now (see `wake_at`)."""
        self._poke = poke
        self.wake_at = math.inf

    def detach(self) -> None:
        """Stop watching: reads already armed keep their deadlines until they end, unenforced."""
        self._poke = None

    def arm(self, sock: Any, timeout: float) -> Armed | None:
        """Register a read on `sock` that may wait `timeout` seconds; None when no actor watches."""
        poke = self._poke
        if poke is None:
            return None
        armed = Armed(sock, trio.current_time() + timeout, timeout)
        reads = self._by_timeout.get(timeout)
        if reads is None:
            reads = self._by_timeout[timeout] = {}
        reads[armed] = None
        if armed.deadline < self.wake_at:
            self.wake_at = armed.deadline
            poke()
        return armed

    def disarm(self, armed: Armed) -> None:
        """The read ended (with data, an error or a cancellation): forget its deadline."""
        reads = self._by_timeout.get(armed.timeout)
        if reads is not None:
            reads.pop(armed, None)

    def next_deadline(self) -> float:
        """The earliest deadline armed, or infinity."""
        return min(
            (next(iter(reads)).deadline for reads in self._by_timeout.values() if reads), default=math.inf
        )

    def expire(self, now: float) -> int:
        """End every read whose deadline is past `now`; return how many."""
        ended = 0
        for reads in self._by_timeout.values():
            while reads:
                armed = next(iter(reads))
                if armed.deadline > now:
                    break
                del reads[armed]
                armed.expired = True
                ended += 1
                trio.lowlevel.notify_closing(armed.sock)
        return ended
