"""`Backends`: a discovery, an optional health check, the current backend set and its health table.

Pingora's `Backends`, names kept (`new`, `set_health_check`, `update`, `run_health_check`, `ready`,
`set_enable`, `get_backend`), plus passive health.

Rules:
- `update` runs discovery and swaps the set only when it differs from the current one (Pingora's
  `do_update`). Backends compare by address and weight, never by `ext`, so a rediscovered backend keeps the
  instance (and `ext`) first seen. Backends that stay keep their health entry; new ones start healthy and
  enabled (Pingora's `Health::default()`); removed ones are forgotten, by the health checks' and the passive
  health's bookkeeping too. The enablement map is applied after the swap, to known backends only.
- `ready` is healthy, enabled and not ejected by passive health. Unlike Pingora without a health check, an
  unknown backend is not ready: a backend this table has never seen must not be handed out.
- A health round probes first and records after; only flips (after N consecutive opposite verdicts, see
  `HealthTracker`) change the table. A passing probe also brings back a backend passive health ejected.
- `report` takes the outcome of one real request (synchronous: it runs on the request path). Enough
  failures in a row eject the backend (see `_outlier`); `sweep_ejections` brings back those whose time is
  up, and `report` does so too, lazily, once the earliest return time has passed.
- `version` grows by one on every observable change (set, health, enablement, ejection), and each public
  change calls the change hook once (the owning `LoadBalancer` publishes a snapshot from it), with whether
  the set itself changed, which is what decides rebuilding a selector.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

import attrs
import trio

from actorproxy.proxy import Outcome

from ._backend import Backend
from ._discovery import ServiceDiscovery, Static
from ._health import HealthCheck, HealthTracker, run_checks
from ._outlier import OutlierDetection, OutlierTracker
from ._selection import sorted_backends

__all__ = ["BackendHealth", "Backends"]

logger = logging.getLogger("actorproxy.lb")

#: Called after each change with whether the backend set itself changed.
ChangeHook = Callable[[bool], None]


@attrs.frozen
class BackendHealth:
    """The health entry of one backend (Pingora's `Health`, without the flip counter of health checks).

    Args:
        healthy: the last verdict of health checking; True until a check says otherwise.
        enabled: whether an operator or discovery allows traffic to it; disabling keeps `healthy` as is.
        ejected: whether passive health has taken it out for a while.
    """

    healthy: bool = True
    enabled: bool = True
    ejected: bool = False

    @property
    def ready(self) -> bool:
        """Healthy, enabled and not ejected: the backend may be selected."""
        return self.healthy and self.enabled and not self.ejected


_NEW = BackendHealth()


class Backends:
    """The backends a load balancer knows, where they come from, and their health.

    Args:
        discovery: a `ServiceDiscovery`; or backends, which become a `Static` discovery applied at once.
    """

    __slots__ = (
        "_backends",
        "_check",
        "_health",
        "_next_return",
        "_outliers",
        "_tracker",
        "_version",
        "discovered",
        "discovery",
        "on_change",
    )

    def __init__(self, discovery: ServiceDiscovery | Iterable[Backend] = ()) -> None:
        self._backends: frozenset[Backend] = frozenset()
        self._health: dict[Backend, BackendHealth] = {}
        self._version = 0
        self._check: HealthCheck | None = None
        self._tracker: HealthTracker | None = None
        self._outliers: OutlierTracker | None = None
        self._next_return = math.inf
        #: Called after each change; set by the owning `LoadBalancer`.
        self.on_change: ChangeHook | None = None
        if hasattr(discovery, "discover"):
            self.discovery: ServiceDiscovery = cast(ServiceDiscovery, discovery)
            #: Whether a discovery has succeeded (or the set was given up front).
            self.discovered = False
        else:
            initial = frozenset(discovery)
            self.discovery = Static(initial)
            self.discovered = True
            self.apply(initial, {})

    @classmethod
    def new(cls, discovery: ServiceDiscovery) -> Backends:
        """A table fed by `discovery`, empty until the first `update` (Pingora's `Backends::new`)."""
        return cls(discovery)

    # -- reading ---------------------------------------------------------------------------------------------

    @property
    def version(self) -> int:
        """How many changes this table has seen; grows by one per change."""
        return self._version

    def backends(self) -> frozenset[Backend]:
        """The current backend set."""
        return self._backends

    def get_backend(self) -> frozenset[Backend]:
        """The current backend set (Pingora's name for `backends()`)."""
        return self._backends

    def __contains__(self, backend: object) -> bool:
        return backend in self._health

    def __len__(self) -> int:
        return len(self._backends)

    def lookup(self, backend: Backend) -> Backend | None:
        """The stored backend equal to `backend` (same address and weight), with its own `ext`; or None."""
        if backend not in self._health:
            return None
        # A frozenset has no "get the stored element", and the set is small next to a rebuild: scan it.
        for stored in self._backends:
            if stored == backend:
                return stored
        return None  # pragma: no cover - the health table and the set hold the same backends

    def health(self, backend: Backend) -> BackendHealth | None:
        """The health entry of `backend`, or None when it is not in the set."""
        return self._health.get(backend)

    def ready(self, backend: Backend) -> bool:
        """Whether `backend` may get traffic: known, healthy, enabled and not ejected."""
        entry = self._health.get(backend)
        return entry is not None and entry.ready

    @property
    def health_check(self) -> HealthCheck | None:
        return self._check

    @property
    def outlier_detection(self) -> OutlierDetection | None:
        return None if self._outliers is None else self._outliers.config

    def ejected(self) -> frozenset[Backend]:
        """The backends passive health has taken out."""
        return frozenset(b for b, entry in self._health.items() if entry.ejected)

    def ejections(self, backend: Backend) -> int:
        """How many times passive health has ejected `backend` (less what good behaviour took off since)."""
        return 0 if self._outliers is None else self._outliers.ejections(backend)

    # -- configuring -----------------------------------------------------------------------------------------

    def set_health_check(self, check: HealthCheck | None) -> None:
        """Probe backends with `check` (None: no health checking; every known backend stays healthy)."""
        self._check = check
        self._tracker = HealthTracker.for_check(check) if check is not None else None

    def set_outlier_detection(self, config: OutlierDetection | None) -> None:
        """Let real traffic eject failing backends (None: no passive health; every ejection ends now)."""
        self._outliers = OutlierTracker(config) if config is not None else None
        self._next_return = math.inf
        if config is None and any(self._set(b, ejected=False) for b in list(self._health)):
            self._notify(False)

    # -- discovery -------------------------------------------------------------------------------------------

    async def update(self, callback: Callable[[frozenset[Backend]], object] | None = None) -> bool:
        """Run discovery once and apply the result (Pingora's `update`).

        Args:
            callback: called with the new set when it changed.

        Returns:
            True when the backend set changed.

        Raises:
            Exception: what discovery raised; the table is left as it was.
        """
        discovered, enablement = await self.discovery.discover()
        changed = self.apply(discovered, enablement)
        self.discovered = True
        if changed and callback is not None:
            callback(self._backends)
        return changed

    def apply(self, discovered: frozenset[Backend], enablement: Mapping[Backend, bool]) -> bool:
        """Take the result of a discovery: swap the set if it changed, then apply the enablement map.

        Args:
            discovered: the backends discovery found.
            enablement: backend -> enabled, overriding enablement of those in the set; others are ignored.

        Returns:
            True when the set changed (so the selector must be rebuilt), False otherwise, even when the
            enablement map changed an entry (that still bumps `version`).
        """
        before = self._version
        changed = discovered != self._backends
        if changed:
            old = self._health
            # The surviving instances are kept, so `ext` is the one first seen (Pingora keeps the old set).
            kept = {b for b in self._backends if b in discovered}
            self._backends = frozenset(kept | discovered)
            self._health = {b: old.get(b, _NEW) for b in self._backends}
            self._version += 1
            if self._tracker is not None:
                self._tracker.retain(self._backends)
            if self._outliers is not None:
                self._outliers.retain(self._backends)
        for backend, enabled in enablement.items():
            self._set(backend, enabled=enabled)
        if self._version != before:
            self._notify(changed)
        return changed

    # -- health ----------------------------------------------------------------------------------------------

    async def run_health_check(self, parallel: bool = False) -> dict[Backend, bool]:
        """Probe every backend once and record the flips (Pingora's `run_health_check`).

        Returns:
            The backends that flipped, with their new health; empty without a health check.
        """
        check, tracker = self._check, self._tracker
        if check is None or tracker is None:
            return {}
        backends = sorted_backends(self._backends)
        verdicts: dict[Backend, bool] = {}
        before = self._version
        started = trio.current_time()
        try:
            return await run_checks(check, backends, tracker, parallel=parallel, verdicts=verdicts)
        finally:
            # The tracker is the truth: copy all of it, so a round cut short (a raising `health_changed`,
            # a cancel) leaves no flip recorded there but missing from the table.
            for backend in backends:
                self._set(backend, healthy=tracker.healthy(backend))
            outliers = self._outliers
            if outliers is not None and outliers.config.uneject_on_active_success:
                now = trio.current_time()
                for backend, ok in verdicts.items():
                    if ok and outliers.uneject(backend, now, probed_at=started):
                        self._set(backend, ejected=False)
                        logger.info("%r is back: an active health check passed", backend)
            if self._version != before:
                self._notify(False)

    def set_enable(self, backend: Backend, enabled: bool) -> bool:
        """Allow or stop traffic to `backend` without touching its health (Pingora's `set_enable`).

        Returns:
            True when the entry changed; False when it already was so or the backend is unknown (a no-op).
        """
        changed = self._set(backend, enabled=enabled)
        if changed:
            self._notify(False)
        return changed

    def set_health(self, backend: Backend, healthy: bool) -> bool:
        """Record a health verdict for `backend`.

        Returns:
            True when the verdict flipped; False when it did not or the backend is unknown (a no-op).
        """
        changed = self._set(backend, healthy=healthy)
        if changed:
            self._notify(False)
        return changed

    # -- passive health: the request path -------------------------------------------------------------------

    def report(self, backend: Backend, outcome: Outcome) -> bool:
        """Record how one real request to `backend` ended; True when that ejected it.

        A no-op without outlier detection or for a backend this table does not know (any more).
        """
        outliers = self._outliers
        if outliers is None or backend not in self._health:
            return False
        now = trio.current_time()
        ejected = outliers.record(backend, outcome, now, len(self._backends))
        changed = False
        if ejected:
            changed = self._set(backend, ejected=True)
            self._next_return = min(self._next_return, outliers.next_return() or math.inf)
            logger.warning(
                "%r ejected for %g s after %d failures in a row (ejection %d)",
                backend,
                self._next_return - now,
                outliers.config.consecutive_failures,
                outliers.ejections(backend),
            )
        if now >= self._next_return:
            changed = bool(self._sweep(now)) or changed
        if changed:
            self._notify(False)
        return ejected

    def sweep_ejections(self) -> list[Backend]:
        """Bring back the ejected backends whose time is up.

        Returns:
            The backends that came back.
        """
        returned = self._sweep(trio.current_time())
        if returned:
            self._notify(False)
        return returned

    def _sweep(self, now: float) -> list[Backend]:
        outliers = self._outliers
        if outliers is None:
            return []
        returned = outliers.sweep(now)
        for backend in returned:
            self._set(backend, ejected=False)
            logger.info("%r is back after its ejection", backend)
        self._next_return = outliers.next_return() or math.inf
        return returned

    # -- internals -------------------------------------------------------------------------------------------

    def _set(self, backend: Backend, **changes: Any) -> bool:
        entry = self._health.get(backend)
        if entry is None:
            return False
        new = attrs.evolve(entry, **changes)
        if new == entry:
            return False
        self._health[backend] = new
        self._version += 1
        return True

    def _notify(self, rebuild: bool) -> None:
        if self.on_change is not None:
            self.on_change(rebuild)

    def __repr__(self) -> str:
        ready = sum(entry.ready for entry in self._health.values())
        ejected = sum(entry.ejected for entry in self._health.values())
        return (
            f"<Backends version={self._version} backends={len(self._backends)} ready={ready}"
            f" ejected={ejected} discovery={self.discovery!r}>"
        )
