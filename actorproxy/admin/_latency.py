"""Latency from a request-duration histogram: the shape it must have, and quantiles of what it counted
between two samples.

The histogram is the service counters' `request_duration` (`ProxyCounters.request_duration`, kept by the
metrics): `bounds` are the buckets' upper bounds in seconds, ascending; `counts[i]` is how many requests took
at most `bounds[i]` and more than `bounds[i - 1]` (per bucket, not cumulative), with one more count after
the last bound for the slower ones (or exactly `len(bounds)` counts when the last bound is +inf); `sum` is the
seconds of every request and `count` how many there were. Counters whose histogram is missing have no
latency, and the page shows the request and error rates alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import attrs

__all__ = ["LATENCY_FIELD", "QUANTILES", "DurationHistogram", "LatencySample", "latency_between"]

#: The counters' attribute holding the request-duration histogram (the metrics' field).
LATENCY_FIELD = "request_duration"
#: The quantiles the page plots: median, p90 and p99, as latency dashboards usually show.
QUANTILES = (0.5, 0.9, 0.99)


@runtime_checkable
class DurationHistogram(Protocol):
    """A histogram of request durations in seconds (see the module header for the bucket rules)."""

    @property
    def bounds(self) -> Sequence[float]: ...
    @property
    def counts(self) -> Sequence[int]: ...
    @property
    def sum(self) -> float: ...
    @property
    def count(self) -> int: ...


@attrs.frozen
class LatencySample:
    """A histogram's state at one instant, copied (the live one keeps counting)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    sum: float
    count: int

    @classmethod
    def of(cls, histogram: object) -> LatencySample | None:
        """A copy of `histogram`, or None if it is not a `DurationHistogram`."""
        if not isinstance(histogram, DurationHistogram):
            return None
        return cls(
            tuple(histogram.bounds), tuple(histogram.counts), float(histogram.sum), int(histogram.count)
        )


def _quantile(bounds: tuple[float, ...], counts: Sequence[int], total: int, q: float) -> float:
    """The `q` quantile, interpolated linearly inside its bucket (as Prometheus' histogram_quantile)."""
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = bounds[index - 1] if 0 < index <= len(bounds) else 0.0
            if index >= len(bounds) or math.isinf(bounds[index]):
                return lower  # the open last bucket: its lower bound is all that is known
            return lower + (bounds[index] - lower) * (rank - seen) / count
        seen += count
    return bounds[-1] if bounds else 0.0


def latency_between(before: LatencySample | None, after: LatencySample | None) -> dict[str, float] | None:
    """Mean and quantiles (seconds) of the requests counted between two samples; None if there were none
    or the buckets changed."""
    if before is None or after is None or before.bounds != after.bounds:
        return None
    total = after.count - before.count
    if total <= 0 or len(before.counts) != len(after.counts):
        return None
    counts = [b - a for a, b in zip(before.counts, after.counts, strict=True)]
    result = {"mean": (after.sum - before.sum) / total}
    for q in QUANTILES:
        result[f"p{round(q * 100)}"] = _quantile(after.bounds, counts, total, q)
    return result
