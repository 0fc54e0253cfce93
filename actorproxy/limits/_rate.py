"""`Rate`: how often each key was seen over a fixed window, in bounded memory (Pingora's
`pingora_limits::rate`).

Rules (Pingora's):
- Two count-min sketches take turns: one counts the current window, the other holds the last complete one.
  `observe` adds to the current window and returns the key's count in it so far; `rate` is the last complete
  window's count per second. When a window has passed, the next call flips them (clearing the older); when
  two have passed with no call, both are cleared, so a stale count never resurfaces.
- A window starts when the previous one was flipped, not on a fixed grid: windows are `window` seconds
  long from the first call after the last flip.
- Estimates carry the sketch's error (`Estimator`): never below the true count, and above it only by
  collisions among the keys of the same window.
- The clock is a parameter (`time.monotonic` by default; `trio.current_time` gives virtual time in tests).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import TypeVar

import attrs

from ._estimator import Estimator

__all__ = ["PROPORTIONAL_RATE_ESTIMATE_CALC_FN", "Rate", "RateComponents"]

T = TypeVar("T")

# Pingora's `Rate`: 4 hashes of 1,024 slots (enough for a short window's keys).
RATE_HASHES = 4
RATE_SLOTS = 1024


@attrs.frozen
class RateComponents:
    """What `Rate.rate_with` hands a custom rate function.

    Attributes:
        prev_samples: the key's count in the last complete window.
        curr_samples: its count so far in the current window.
        interval: the window, in seconds.
        current_interval_fraction: how far into the current window the call is, 0 to 1.
    """

    prev_samples: int
    curr_samples: int
    interval: float
    current_interval_fraction: float


def _proportional(components: RateComponents) -> float:
    weighted = components.prev_samples * (1.0 - components.current_interval_fraction)
    return (weighted + components.curr_samples) / components.interval


#: A rate over the last `interval` seconds: the last window's count weighted by the part of it still inside
#: that span, plus the current window's count (Cloudflare's sliding-window estimate).
PROPORTIONAL_RATE_ESTIMATE_CALC_FN: Callable[[RateComponents], float] = _proportional


class Rate:
    """Counts events per key over windows of `window` seconds.

    Args:
        window: the window's length in seconds (Pingora's `interval`).
        clock: seconds from any fixed point; `time.monotonic` by default.
        hashes: rows of each sketch.
        slots: counters per row of each sketch.
    """

    __slots__ = ("_clock", "_current", "_last_reset", "_previous", "window")

    def __init__(
        self,
        window: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        hashes: int = RATE_HASHES,
        slots: int = RATE_SLOTS,
    ) -> None:
        if not window > 0:
            raise ValueError(f"a Rate's window is a positive number of seconds, got {window!r}")
        self.window = float(window)
        self._clock = clock
        self._current = Estimator(hashes, slots)
        self._previous = Estimator(hashes, slots)
        self._last_reset = clock()

    def __repr__(self) -> str:
        return f"<Rate window={self.window:g}s>"

    def observe(self, key: Hashable, events: int = 1) -> int:
        """Count `events` more of `key`; return its count in the current window so far."""
        self._maybe_reset()
        return self._current.incr(key, events)

    def rate(self, key: Hashable) -> float:
        """Events of `key` per second in the last complete window (0.0 if it saw none)."""
        past = self._maybe_reset()
        if past >= 2 * self.window:
            return 0.0
        return self._previous.get(key) / self.window

    def rate_with(self, key: Hashable, calc: Callable[[RateComponents], T]) -> T:
        """Whatever `calc` makes of `key`'s counts (see `RateComponents`), e.g.
        `PROPORTIONAL_RATE_ESTIMATE_CALC_FN` for a smooth rate over the last `window` seconds."""
        past = self._maybe_reset()
        window = self.window
        if past >= 2 * window:
            prev = curr = 0
        elif past >= window:
            prev, curr = self._previous.get(key), 0
        else:
            prev, curr = self._previous.get(key), self._current.get(key)
        fraction = (past % window) / window
        return calc(RateComponents(prev, curr, window, fraction))

    def _maybe_reset(self) -> float:
        """Flip the windows if the current one is over; return the seconds since the last flip."""
        now = self._clock()
        past = now - self._last_reset
        if past < self.window:
            return past
        self._last_reset = now
        previous = self._previous
        previous.reset()
        if past >= 2 * self.window:
            # The window that just ended is as stale as the one before it.
            self._current.reset()
        self._previous, self._current = self._current, previous
        return past
