"""Passive health (outlier detection): failures seen by real traffic take a backend out for a while.

Pure and synchronous, as `HealthTracker` is: the caller passes the time (`trio.current_time()`, so tests run
on a virtual clock) and applies the decisions to its health table.

Rules:
- Every finished attempt at a backend is an `Outcome`. A connect failure and a broken exchange (reset,
  timeout, garbage) are failures; a 5xx answer is one when `count_server_errors` (the default); a success
  ends the streak; an attempt ended by the client or by the proxy itself says nothing about the backend.
- `consecutive_failures` failures in a row eject the backend for `base_ejection_time` times the number of
  times it has been ejected, capped at `max_ejection_time` (Envoy's outlier detection rule), so a backend
  that keeps failing stays out longer each time.
- At most `max_ejection_percent` of the backends are out at once, rounded down but at least one, and never
  all of them: a cluster of one is never ejected (a request to a doubtful backend beats a certain 502).
  An ejection over the cap does not happen; the streak goes on, so the next failure asks again.
- An ejected backend returns when its time is up (`sweep`) or when an active health check that started
  after the ejection passes (`uneject`; one that started before saw the backend before it failed). Each
  whole `base_ejection_time` it then stays in without being ejected again takes one off its ejection
  count, so the cool-down shrinks back after the backend recovers.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from actorproxy.config import (
    DEFAULT_BASE_EJECTION_TIME,
    DEFAULT_CONSECUTIVE_FAILURES,
    DEFAULT_MAX_EJECTION_PERCENT,
    DEFAULT_MAX_EJECTION_TIME,
)
from actorproxy.proxy import Outcome

from ._backend import Backend

__all__ = ["OutlierDetection", "OutlierTracker"]


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not value > 0:  # also rejects NaN
        raise ValueError(f"{attribute.name}: must be > 0, got {value!r}")


def _at_least_one(instance: object, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        raise ValueError(f"{attribute.name}: must be an int >= 1, got {value!r}")


def _percent(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not 0 <= value <= 100:
        raise ValueError(f"{attribute.name}: must be between 0 and 100, got {value!r}")


@attrs.frozen(kw_only=True)
class OutlierDetection:
    """When real traffic takes a backend out, and for how long.

    Args:
        consecutive_failures: failed attempts in a row that eject a backend.
        count_server_errors: whether a 5xx answer counts as a failure (a 4xx never does).
        base_ejection_time: seconds out after the first ejection; the n-th ejection lasts n times as long.
        max_ejection_time: the longest an ejection lasts, seconds.
        max_ejection_percent: how much of the cluster may be out at once (at least one backend, never all).
        sweep_interval: how often the load balancer's actor looks for backends whose time is up, seconds.
        uneject_on_active_success: a passing active health check brings an ejected backend back at once.
    """

    consecutive_failures: int = attrs.field(default=DEFAULT_CONSECUTIVE_FAILURES, validator=_at_least_one)
    count_server_errors: bool = True
    base_ejection_time: float = attrs.field(default=DEFAULT_BASE_EJECTION_TIME, validator=_positive)
    max_ejection_time: float = attrs.field(default=DEFAULT_MAX_EJECTION_TIME, validator=_positive)
    max_ejection_percent: float = attrs.field(default=DEFAULT_MAX_EJECTION_PERCENT, validator=_percent)
    sweep_interval: float = attrs.field(default=1.0, validator=_positive)
    uneject_on_active_success: bool = True

    def __attrs_post_init__(self) -> None:
        if self.max_ejection_time < self.base_ejection_time:
            raise ValueError(
                f"max_ejection_time: must be >= base_ejection_time ({self.base_ejection_time!r}),"
                f" got {self.max_ejection_time!r}"
            )

    def is_failure(self, outcome: Outcome) -> bool | None:
        """True for a failure, False for a success, None for no verdict."""
        if outcome is Outcome.SUCCESS:
            return False
        if outcome is Outcome.ABANDONED:
            return None
        if outcome is Outcome.SERVER_ERROR:
            return self.count_server_errors or None
        return True

    def ejection_cap(self, cluster_size: int) -> int:
        """How many of `cluster_size` backends may be out at once."""
        if cluster_size < 2:
            return 0
        allowed = max(1, int(cluster_size * self.max_ejection_percent / 100))
        return min(allowed, cluster_size - 1)


@attrs.define
class _Record:
    failures: int = 0
    ejections: int = 0
    ejected_until: float | None = None
    ejected_at: float = 0.0
    # When the backend last came back, or last had its ejection count decreased.
    back_since: float = 0.0


class OutlierTracker:
    """The passive health of each backend, from the outcomes reported so far.

    Args:
        config: the thresholds and times.
    """

    __slots__ = ("_records", "config")

    def __init__(self, config: OutlierDetection) -> None:
        self.config = config
        self._records: dict[Backend, _Record] = {}

    def record(self, backend: Backend, outcome: Outcome, now: float, cluster_size: int) -> bool:
        """Record one outcome; return True when it ejects `backend`."""
        failed = self.config.is_failure(outcome)
        if failed is None:
            return False
        record = self._records.get(backend)
        if record is None:
            if not failed:
                return False  # the common case: a success of a backend with no history costs nothing
            record = self._records[backend] = _Record(back_since=now)
        if not failed:
            record.failures = 0
            return False
        record.failures += 1
        if record.ejected_until is not None or record.failures < self.config.consecutive_failures:
            return False
        if len(self.ejected()) >= self.config.ejection_cap(cluster_size):
            return False
        record.failures = 0
        record.ejections += 1
        config = self.config
        cool_down = min(config.base_ejection_time * record.ejections, config.max_ejection_time)
        record.ejected_at = now
        record.ejected_until = now + cool_down
        return True

    def ejected(self) -> frozenset[Backend]:
        """The backends out now."""
        return frozenset(b for b, record in self._records.items() if record.ejected_until is not None)

    def is_ejected(self, backend: Backend) -> bool:
        record = self._records.get(backend)
        return record is not None and record.ejected_until is not None

    def ejections(self, backend: Backend) -> int:
        """How many times `backend` has been ejected, less what good behaviour since took off."""
        record = self._records.get(backend)
        return 0 if record is None else record.ejections

    def next_return(self) -> float | None:
        """The earliest time an ejected backend comes back, or None when none is out."""
        times = [r.ejected_until for r in self._records.values() if r.ejected_until is not None]
        return min(times, default=None)

    def sweep(self, now: float) -> list[Backend]:
        """Bring back the backends whose time is up and shrink the counts of those that stayed in.

        Returns:
            The backends that came back.
        """
        returned = []
        base = self.config.base_ejection_time
        for backend, record in list(self._records.items()):
            if record.ejected_until is not None:
                if now >= record.ejected_until:
                    record.ejected_until = None
                    record.back_since = now
                    returned.append(backend)
                continue
            while record.ejections and now - record.back_since >= base:
                record.ejections -= 1
                record.back_since += base
            if not record.ejections and not record.failures:
                del self._records[backend]
        return returned

    def uneject(self, backend: Backend, now: float, *, probed_at: float | None = None) -> bool:
        """Bring `backend` back before its time (an active check passed); True when it was out.

        Args:
            probed_at: when the passing probe started; a probe that started before the ejection saw the
                backend before it failed, and brings nothing back.
        """
        record = self._records.get(backend)
        if record is None or record.ejected_until is None:
            return False
        if probed_at is not None and probed_at < record.ejected_at:
            return False
        record.ejected_until = None
        record.failures = 0
        record.back_since = now
        return True

    def retain(self, backends: Iterable[Backend]) -> None:
        """Forget every backend not in `backends` (discovery removed them)."""
        keep = set(backends)
        for backend in [b for b in self._records if b not in keep]:
            del self._records[backend]

    def __repr__(self) -> str:
        return f"<OutlierTracker tracked={len(self._records)} ejected={len(self.ejected())}>"
