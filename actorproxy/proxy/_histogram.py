"""`Histogram`: a fixed-bucket histogram for the request path, counted in plain integers.

Rules:
- `observe` is one `bisect` and two additions: no lock, no allocation (one trio thread writes it; a scrape
  in the same thread reads it).
- Buckets are cumulative only when read (`buckets()`, Prometheus's `le` form); `counts[i]` holds the
  observations in `(bounds[i-1], bounds[i]]`, the last one those above every bound.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

__all__ = ["LATENCY_BOUNDS", "Histogram"]

#: Seconds: prometheus-client's default buckets with 1 ms and 2.5 ms added, for a proxy's sub-10 ms answers.
LATENCY_BOUNDS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


class Histogram:
    """Observations counted into buckets bounded by `bounds` (sorted, ascending), plus their sum."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: Sequence[float] = LATENCY_BOUNDS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        """Count one observation."""
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def buckets(self) -> list[tuple[str, float]]:
        """Cumulative `(le, count)` pairs, `+Inf` last, as Prometheus reads a histogram."""
        total = 0
        pairs = []
        for bound, count in zip(self.bounds, self.counts, strict=False):
            total += count
            pairs.append((repr(float(bound)), float(total)))
        pairs.append(("+Inf", float(self.count)))
        return pairs

    def quantile(self, q: float) -> float | None:
        """An estimate of the `q` quantile (0..1), by linear interpolation in its bucket; None when empty."""
        if not self.count:
            return None
        rank = q * self.count
        seen = 0
        lower = 0.0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            if count and seen + count >= rank:
                return lower + (bound - lower) * (rank - seen) / count
            seen += count
            lower = bound
        return self.bounds[-1]

    def __repr__(self) -> str:
        return f"<Histogram count={self.count} sum={self.sum:.3f}>"
