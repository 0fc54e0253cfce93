"""`Inflight`: how many requests of each key are in progress, in bounded memory (Pingora's
`pingora_limits::inflight`).

Rules:
- `incr(key)` counts the key up and returns a `Guard` holding the estimate (`guard.count`); the guard
  counts it down again exactly once: on `release()`, at the end of its `with` block, or, as a last resort,
  when it is garbage-collected (Pingora's `Drop`). Tie it to a request with `session.enter_context(guard)`:
  the proxy releases it when the request ends, whatever way it ends (an error, a cancellation, a crash of
  the connection).
- Counting is a count-min sketch (`Estimator`): an estimate is never below the true count and above it only
  through keys sharing counters (see `Estimator` for the bound).
"""

from __future__ import annotations

from collections.abc import Hashable
from types import TracebackType
from typing import Protocol

from ._estimator import Estimator

__all__ = ["Guard", "Inflight"]

# Pingora's `Inflight`: 4 hashes of 8,192 slots.
INFLIGHT_HASHES = 4
INFLIGHT_SLOTS = 8192


class _Counter(Protocol):
    def incr_at(self, indexes: tuple[int, ...], value: int) -> int: ...

    def get_at(self, indexes: tuple[int, ...]) -> int: ...


class Guard:
    """One key counted in progress by `value`, until released.

    Attributes:
        count: the key's estimated count right after this guard counted it.
    """

    __slots__ = ("_counter", "_indexes", "count", "released", "value")

    def __init__(self, counter: _Counter, indexes: tuple[int, ...], value: int) -> None:
        self._counter = counter
        self._indexes = indexes
        self.value = value
        self.released = False
        self.count = counter.incr_at(indexes, value)

    def __repr__(self) -> str:
        state = "released" if self.released else f"count={self.count}"
        return f"<Guard value={self.value} {state}>"

    def incr(self) -> int:
        """Count the key up by `value` once more (to be released together); return the new estimate."""
        self.count = self._counter.incr_at(self._indexes, self.value)
        return self.count

    def get(self) -> int:
        """The key's estimated count now."""
        return self._counter.get_at(self._indexes)

    def release(self) -> None:
        """Count the key down by `value`; a second call does nothing."""
        if not self.released:
            self.released = True
            self._counter.incr_at(self._indexes, -self.value)

    def __enter__(self) -> Guard:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __del__(self) -> None:
        # Pingora's guard counts down when dropped; a guard nobody released still does, when collected.
        if not getattr(self, "released", True):
            self.release()


class Inflight:
    """Counts what is in progress per key.

    Args:
        hashes: rows of the sketch.
        slots: counters per row.
    """

    __slots__ = ("estimator",)

    def __init__(self, hashes: int = INFLIGHT_HASHES, slots: int = INFLIGHT_SLOTS) -> None:
        self.estimator = Estimator(hashes, slots)

    def __repr__(self) -> str:
        return f"<Inflight {self.estimator.hashes} x {self.estimator.slots}>"

    def incr(self, key: Hashable, value: int = 1) -> Guard:
        """Count `key` in progress by `value`; the returned guard's `count` is the key's new estimate."""
        return Guard(self.estimator, self.estimator.indexes(key), value)

    def get(self, key: Hashable) -> int:
        """The estimated count of `key` in progress."""
        return self.estimator.get(key)
