"""Messages nobody will handle.

A message becomes a dead letter when its target has exited, a drop policy discards it, or a reply arrives
after the asker gave up. Each is counted per (target path, message type) and logged at a bounded rate, so a
flood of them costs a counter increment, not a log line each.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import attrs
import trio

__all__ = ["DeadLetter", "DeadLetters"]

logger = logging.getLogger("actorproxy.deadletters")

# At most this many dead-letter log lines per window; the rest are summarised when the window rolls over.
LOG_BURST = 10
LOG_WINDOW = 10.0


@attrs.frozen
class DeadLetter:
    """One undeliverable message and why it was not delivered."""

    target: str
    message: Any
    reason: str


def _now() -> float:
    try:
        return trio.current_time()
    except RuntimeError:  # outside a trio run: only counters matter then
        return 0.0


class DeadLetters:
    """Counters per (target, message type) and a rate-limited log."""

    __slots__ = ("_logged", "_suppressed", "_window_start", "counts", "listeners", "total")

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.total = 0
        self.listeners: list[Any] = []
        self._window_start = -LOG_WINDOW
        self._logged = 0
        self._suppressed = 0

    def record(self, target: str, message: Any, reason: str) -> None:
        """Count one dead letter, log it if the rate allows, and tell the listeners."""
        self.counts[(target, type(message).__name__)] += 1
        self.total += 1
        now = _now()
        if now - self._window_start >= LOG_WINDOW:
            if self._suppressed:
                logger.warning("%d more dead letters were not logged", self._suppressed)
            self._window_start = now
            self._logged = 0
            self._suppressed = 0
        if self._logged < LOG_BURST:
            self._logged += 1
            logger.info("dead letter to %s (%s): %r", target, reason, message)
        else:
            self._suppressed += 1
        if self.listeners:
            letter = DeadLetter(target, message, reason)
            for listener in self.listeners:
                listener(letter)

    def count(self, target: str | None = None, message_type: type | str | None = None) -> int:
        """Dead letters recorded, optionally only those for `target` and/or of `message_type`."""
        if target is None and message_type is None:
            return self.total
        type_name = message_type.__name__ if isinstance(message_type, type) else message_type
        return sum(
            n
            for (path, name), n in self.counts.items()
            if (target is None or path == target) and (type_name is None or name == type_name)
        )
