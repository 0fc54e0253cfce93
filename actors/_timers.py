"""Keyed timers that deliver messages to the actor that owns them.

Rules:
- A timer is a (key, message, due time, interval) entry; starting a key that exists replaces it.
- No task per timer: the owner's mailbox read waits until the earliest due time, then the due messages are
  queued on the data lane (past its capacity: an actor never blocks on its own timers).
- Timers belong to one incarnation. They die with it, so a restarted actor starts with none.
"""

from __future__ import annotations

import math
from collections.abc import Hashable
from typing import Any

import trio

from ._mailbox import Mailbox, MailboxClosed

__all__ = ["Timers"]


class Timers:
    """The keyed timers of one actor (`self.timers` inside an actor)."""

    __slots__ = ("_entries", "_mailbox")

    def __init__(self, mailbox: Mailbox) -> None:
        self._mailbox = mailbox
        self._entries: dict[Hashable, list[Any]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._entries

    def start_single(self, key: Hashable, message: Any, delay: float) -> None:
        """Deliver `message` once, `delay` seconds from now."""
        self._entries[key] = [trio.current_time() + delay, message, None]

    def start_periodic(self, key: Hashable, message: Any, interval: float) -> None:
        """Deliver `message` every `interval` seconds, the first time one interval from now."""
        if interval <= 0:
            raise ValueError("interval must be positive")
        self._entries[key] = [trio.current_time() + interval, message, interval]

    def cancel(self, key: Hashable) -> bool:
        """Cancel the timer `key`; False if there was none."""
        return self._entries.pop(key, None) is not None

    def cancel_all(self) -> None:
        self._entries.clear()

    def next_deadline(self) -> float:
        """The earliest due time, or infinity with no timers."""
        return min((entry[0] for entry in self._entries.values()), default=math.inf)

    def fire_due(self) -> None:
        """Queue the messages of every timer that is due; reschedule the periodic ones."""
        now = trio.current_time()
        for key, entry in list(self._entries.items()):
            due, message, interval = entry
            if due > now:
                continue
            if interval is None:
                del self._entries[key]
            else:
                # Fixed rate without catch-up bursts: a late firing does not queue the missed ones.
                entry[0] = max(due + interval, now)
            try:
                self._mailbox.put_internal(message)
            except MailboxClosed:
                return
