"""GCRA, the generic cell rate algorithm: a rate with a burst, kept as one timestamp per key. Pure.

Why GCRA: it is a token bucket (the same admissions, the same smooth refill, a burst of `burst` requests
at once), but its whole state per key is one number, the theoretical arrival time (TAT), updated by one
comparison. That number fits a slot of a shared-memory table and a single Redis key, and needs no timer to
refill anything.

Rules:
- A quota admits `count` requests per `period` seconds, at most `burst` of them at once. Each request moves
  the key's TAT `interval = period / count` seconds later (from now, if the TAT is in the past); a request
  is admitted when its new TAT is at most `burst x interval` seconds ahead of now. A fresh key admits
  `burst` requests at once, then one every `interval`.
- A refused request leaves the state unchanged: refusals do not push the key's recovery further out.
- A TAT further ahead than the quota ever puts one is stale (written under another clock: before a reboot,
  say) and is taken as no state at all.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import attrs

from actorproxy.config import parse_rate

__all__ = ["Decision", "Quota", "admitted_tat", "gcra"]

# Float seconds lose about 1e-11 at monotonic-clock magnitudes; this absorbs the rounding of `interval`.
EPSILON = 1e-9


@attrs.frozen
class Quota:
    """`count` requests per `period` seconds, with bursts of up to `burst` at once.

    Build one from the file's spelling with `Quota.parse("100/s", burst=20)`.
    """

    count: int
    period: float
    burst: int

    #: Seconds between two requests at the rate (the emission interval), computed once.
    interval: float = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.count < 1 or not self.period > 0 or self.burst < 1:
            raise ValueError(f"a quota needs count >= 1, period > 0 and burst >= 1, got {self!r}")
        object.__setattr__(self, "interval", self.period / self.count)

    @classmethod
    def parse(cls, rate: str, burst: int | None = None) -> Quota:
        """The quota of a rate written `<count>/<unit>` (`100/s`, `6000/min`); the burst defaults to the
        count.

        Raises:
            ValueError: the rate does not parse (the reason names the form).
        """
        count, period = parse_rate(rate)
        return cls(count, period, count if burst is None else burst)

    @property
    def tolerance(self) -> float:
        """How far ahead of now a key's TAT may be: `burst` intervals."""
        return self.burst * self.interval

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s burst {self.burst}"


class Decision(NamedTuple):
    """Whether a request is admitted, and what its key has left (a tuple: made on every check, and a frozen
    attrs record costs about four times as much to build).

    Attributes:
        allowed: admitted.
        limit: the burst: the most requests the key may send at once.
        remaining: requests the key may still send at once, after this one.
        retry_after: seconds until a refused request would be admitted (0 when admitted).
        reset_after: seconds until the key has its whole burst again.
    """

    allowed: bool
    limit: int
    remaining: int
    retry_after: float
    reset_after: float


def admitted_tat(quota: Quota, tat: float | None, now: float) -> float | None:
    """The TAT to store when one request for a key whose stored TAT is `tat` is admitted, or None when it is
    refused: `gcra`'s decision without its figures (the request path's check)."""
    interval = quota.interval
    tolerance = quota.burst * interval
    if tat is None or tat < now or tat > now + tolerance + EPSILON:
        tat = now
    new_tat = tat + interval
    return None if new_tat - tolerance > now + EPSILON else new_tat


def gcra(quota: Quota, tat: float | None, now: float, cost: int = 1) -> tuple[float | None, Decision]:
    """Decide a request of `cost` units for a key whose stored TAT is `tat` (None: no state).

    Returns:
        (the TAT to store, or None to leave the state as it is; the decision).
    """
    interval = quota.interval
    tolerance = quota.burst * interval
    if tat is None or tat < now or tat > now + tolerance + EPSILON:
        tat = now
    new_tat = tat + cost * interval
    allow_at = new_tat - tolerance
    if allow_at > now + EPSILON:
        ahead = tat - now
        remaining = max(0, math.floor((tolerance - ahead) / interval + EPSILON))
        return None, Decision(False, quota.burst, remaining, allow_at - now, ahead)
    ahead = new_tat - now
    remaining = max(0, math.floor((tolerance - ahead) / interval + EPSILON))
    return new_tat, Decision(True, quota.burst, remaining, 0.0, ahead)
