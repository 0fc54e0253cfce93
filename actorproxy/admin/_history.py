"""The last minutes of each service's counters, sampled every second, and the rates the page plots.

A sample copies the cumulative counters; a point is what happened between two samples (requests and 5xx
responses per second, latency), so a restart of the sampler loses nothing but the gap.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

import attrs

from actorproxy.proxy import ProxyCounters

from ._latency import LATENCY_FIELD, LatencySample, latency_between

__all__ = ["HISTORY_LENGTH", "SAMPLE_INTERVAL", "History", "ServiceSample"]

#: Seconds between samples: the plots' resolution, and how often the page hears of new rates.
SAMPLE_INTERVAL = 1.0
#: Samples kept per service: five minutes at one a second ("the last minutes" on the page).
HISTORY_LENGTH = 300


@attrs.frozen
class ServiceSample:
    """One service's cumulative counters at `time` (trio's clock)."""

    time: float
    requests: int
    server_errors: int
    latency: LatencySample | None

    @classmethod
    def of(cls, time: float, counters: ProxyCounters) -> ServiceSample:
        latency = LatencySample.of(getattr(counters, LATENCY_FIELD, None))
        return cls(time, counters.requests, counters.responses.get(5, 0), latency)


def _point(before: ServiceSample, after: ServiceSample) -> dict[str, Any]:
    elapsed = after.time - before.time
    return {
        "t": after.time,
        "rps": max(0, after.requests - before.requests) / elapsed,
        "errors_per_second": max(0, after.server_errors - before.server_errors) / elapsed,
        "latency": latency_between(before.latency, after.latency),
    }


class History:
    """Samples by service name, the newest last, at most `length` each; one writer (the monitor)."""

    def __init__(self, length: int = HISTORY_LENGTH) -> None:
        self.length = length
        self._samples: dict[str, deque[ServiceSample]] = {}

    def record(self, time: float, counters: Iterable[tuple[str, ProxyCounters]]) -> None:
        """Add a sample of each service's counters; services no longer given are forgotten."""
        seen = set()
        for name, service_counters in counters:
            seen.add(name)
            samples = self._samples.get(name)
            if samples is None:
                samples = self._samples[name] = deque(maxlen=self.length)
            samples.append(ServiceSample.of(time, service_counters))
        for name in [name for name in self._samples if name not in seen]:
            del self._samples[name]

    def points(self, since: float | None = None) -> dict[str, list[dict[str, Any]]]:
        """Each service's points (rates between consecutive samples) newer than `since`, oldest first."""
        result = {}
        for name, samples in self._samples.items():
            points = []
            previous = None
            for sample in samples:
                if (
                    previous is not None
                    and (since is None or sample.time > since)
                    and sample.time > previous.time
                ):
                    points.append(_point(previous, sample))
                previous = sample
            result[name] = points
        return result

    @property
    def latest(self) -> float | None:
        """The time of the newest sample, if any."""
        times = [samples[-1].time for samples in self._samples.values() if samples]
        return max(times) if times else None
