"""Restart intensity: at most `intensity` restarts within any `period` seconds (OTP's MaxR / MaxT)."""

from __future__ import annotations

from collections import deque

__all__ = ["RestartIntensity"]


class RestartIntensity:
    """A sliding window of restart times.

    A restart at `now` is allowed while, counting it, no more than `intensity` restarts happened within
    `period` seconds; restarts exactly `period` apart still share a window, as in OTP.
    """

    __slots__ = ("_times", "intensity", "period")

    def __init__(self, intensity: int, period: float) -> None:
        if intensity < 0 or period <= 0:
            raise ValueError("intensity must be >= 0 and period > 0")
        self.intensity = intensity
        self.period = period
        self._times: deque[float] = deque()

    def __len__(self) -> int:
        return len(self._times)

    def add(self, now: float) -> bool:
        """Record a restart at `now`; False means the limit is exceeded and the supervisor must give up."""
        times = self._times
        times.append(now)
        while times and now - times[0] > self.period:
            times.popleft()
        return len(times) <= self.intensity
