"""`LoadBalancer`: backends, their health and a selector, read by requests from an immutable snapshot.

Pingora's `LoadBalancer<S>`, with its ArcSwap turned into one attribute holding a frozen `Snapshot`.

Rules:
- Requests call `select`/`select_with`, which read the current snapshot only: no message, no await, no lock.
  One request sees one snapshot from start to end, however many candidates it tries.
- Exactly one writer changes the state behind the snapshot: the `LoadBalancerActor` running this load
  balancer (see `_background`). It runs discovery (`update`) and health rounds (`run_health_check`) and
  applies `set_enable`; each change that matters publishes a new snapshot. The state and the snapshot live
  on this object, not in the actor, so a crashed and restarted actor leaves requests served from the last
  snapshot.
- The selector is built from every known backend (Pingora builds it from the whole set) and rebuilt only
  when discovery changes the set; health and enablement flips only replace the snapshot's `ready` set. So
  an unhealthy backend's keys fall back to the next candidates while every other key stays where it was
  (consistent hashing keeps its promise), and a round-robin counter survives health flips.
- `select` never returns a backend that is not ready (healthy and enabled). `select_with`'s `accept` gets
  `(backend, ready)` and decides alone, as in Pingora: it may take a backend that is not ready.
- A health check's verdicts turn into health through a `HealthTracker` (consecutive thresholds); only
  flips reach the `Backends` table. Backends kept by discovery keep their health; new ones start healthy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from ._backend import Backend
from ._backends import Backends
from ._discovery import ServiceDiscovery, Static
from ._health import HealthCheck, HealthTracker, run_checks
from ._selection import BackendSelection as _Selector
from ._selection import FNVHash, Random, RoundRobin, UniqueIterator, Weighted, sorted_backends

__all__ = ["LoadBalancer", "SelectionFactory", "Snapshot", "selection_factory"]

logger = logging.getLogger("actorproxy.lb")

#: Builds a selector from the backend set, deduplicated and sorted.
SelectionFactory = Callable[[tuple[Backend, ...]], _Selector]

_ALGORITHMS: tuple[type[Any], ...] = (RoundRobin, Random, FNVHash)


def selection_factory(selection: Any) -> SelectionFactory:
    """Turn what `LoadBalancer` accepts as `selection` into a factory of selectors.

    Args:
        selection: `RoundRobin`, `Random` or `FNVHash` (a `SelectionAlgorithm` class: Pingora's
            `Weighted<H>` over a fresh instance), `Consistent` or any callable building a selector from the
            backend tuple (e.g. `lambda backends: LeastConnections(backends, inflight)`).

    Raises:
        TypeError: `selection` is neither.
    """
    if isinstance(selection, type) and (
        issubclass(selection, _ALGORITHMS) or (hasattr(selection, "next") and not hasattr(selection, "iter"))
    ):
        algorithm: Callable[[], Any] = selection
        return lambda backends: Weighted(backends, algorithm())
    if callable(selection):
        factory: SelectionFactory = selection
        return factory
    raise TypeError(f"selection: expected an algorithm class or a selector factory, got {selection!r}")


@attrs.frozen
class Snapshot:
    """What requests select from: replaced whole, never changed.

    Args:
        version: grows with each publication (the `Backends` table version it was built from).
        selector: built from every backend in `backends`.
        backends: the backend set.
        ready: the backends that may get traffic (healthy and enabled).
    """

    version: int
    selector: _Selector
    backends: frozenset[Backend]
    ready: frozenset[Backend]


class LoadBalancer:
    """A backend set, its health and a selection algorithm (Pingora's `LoadBalancer`).

    Build one with `try_from_iter` (static addresses) or `from_backends` (a `Backends` table or a discovery),
    set `health_check_frequency`/`update_frequency`/`parallel_health_check` and `set_health_check`, then run
    it with `background_service(name, lb)`.

    Args:
        discovery: where the backend set comes from.
        selection: see `selection_factory`; round robin by default.
        table: the health table to start from (a fresh empty one by default).

    Attributes:
        health_check_frequency: seconds between health rounds; None: one round at start only.
        update_frequency: seconds between discoveries; None: one discovery at start only.
        parallel_health_check: probe all backends of a round at once instead of one after another.
    """

    def __init__(
        self, discovery: ServiceDiscovery, *, selection: Any = RoundRobin, table: Backends | None = None
    ) -> None:
        self.discovery = discovery
        self._factory = selection_factory(selection)
        self._table = table if table is not None else Backends()
        self._check: HealthCheck | None = None
        self._tracker: HealthTracker | None = None
        #: Whether a discovery has succeeded (or the set was given up front).
        self.discovered = table is not None
        self.health_check_frequency: float | None = None
        self.update_frequency: float | None = None
        self.parallel_health_check = False
        self._snapshot = self._build(rebuild=True, previous=None)

    @classmethod
    def try_from_iter(cls, addrs: Iterable[object], *, selection: Any = RoundRobin) -> LoadBalancer:
        """Weight-1 backends at `addrs`, discovered at once (Pingora's `try_from_iter`).

        Raises:
            ValueError: an address is not valid; the message gives its index and the value.
        """
        static = Static.try_from_iter(addrs)
        return cls(static, selection=selection, table=Backends(static.get()))

    @classmethod
    def from_backends(
        cls, backends: Backends | ServiceDiscovery, *, selection: Any = RoundRobin
    ) -> LoadBalancer:
        """From a `Backends` table (its set becomes a `Static` discovery) or from a discovery.

        With a discovery the set is empty until the first `update` (the background service's start).
        """
        if isinstance(backends, Backends):
            return cls(Static(backends.backends()), selection=selection, table=backends)
        return cls(backends, selection=selection)

    # -- reading: the request path ---------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot."""
        return self._snapshot

    def select(self, key: bytes, max_iterations: int) -> Backend | None:
        """The first ready backend for `key`, trying at most `max_iterations` candidates (Pingora's `select`).

        Returns:
            The backend, or None when no ready backend came up within `max_iterations` draws.
        """
        snapshot = self._snapshot
        ready = snapshot.ready
        for backend in UniqueIterator(snapshot.selector.iter(key), max_iterations):
            if backend in ready:
                return backend
        return None

    def select_with(
        self, key: bytes, max_iterations: int, accept: Callable[[Backend, bool], bool]
    ) -> Backend | None:
        """The first backend for `key` that `accept(backend, ready)` takes (Pingora's `select_with`).

        `accept` decides alone: it may take a backend that is not ready (e.g. to ignore health checks).
        """
        snapshot = self._snapshot
        ready = snapshot.ready
        for backend in UniqueIterator(snapshot.selector.iter(key), max_iterations):
            if accept(backend, backend in ready):
                return backend
        return None

    def backends(self) -> frozenset[Backend]:
        """The current backend set (of the current snapshot)."""
        return self._snapshot.backends

    def ready(self, backend: Backend) -> bool:
        """Whether the current snapshot lets `backend` get traffic."""
        return backend in self._snapshot.ready

    def ready_backends(self) -> frozenset[Backend]:
        """The backends the current snapshot lets get traffic."""
        return self._snapshot.ready

    # -- writing: called by the LoadBalancerActor ------------------------------------------------------------

    @property
    def health_check(self) -> HealthCheck | None:
        return self._check

    def set_health_check(self, check: HealthCheck | None) -> None:
        """Probe backends with `check` (None: no health checking; every known backend stays healthy)."""
        self._check = check
        self._tracker = HealthTracker.for_check(check) if check is not None else None

    async def update(self) -> bool:
        """Run discovery once and publish the result (Pingora's `update`).

        Returns:
            True when the backend set changed.

        Raises:
            Exception: what discovery raised; the last set and snapshot are kept.
        """
        discovered, enablement = await self.discovery.discover()
        changed = self._table.apply(discovered, enablement)
        self.discovered = True
        if changed and self._tracker is not None:
            self._tracker.retain(discovered)
        self._publish(rebuild=changed)
        return changed

    async def run_health_check(self) -> dict[Backend, bool]:
        """Probe every backend once and publish the flips (Pingora's `run_health_check`).

        Returns:
            The backends that flipped, with their new health; empty without a health check.
        """
        check, tracker = self._check, self._tracker
        if check is None or tracker is None:
            return {}
        table = self._table
        backends = sorted_backends(table.backends())
        try:
            return await run_checks(check, backends, tracker, parallel=self.parallel_health_check)
        finally:
            # The tracker is the truth: copy all of it, so a round cut short (a raising `health_changed`,
            # a cancel) leaves no flip recorded there but missing from the table.
            for backend in backends:
                table.set_health(backend, tracker.healthy(backend))
            self._publish(rebuild=False)

    def set_enable(self, backend: Backend, enabled: bool) -> bool:
        """Allow or stop traffic to `backend` and publish it (Pingora's `Backends::set_enable`).

        Returns:
            True when it changed; False when it already was so or the backend is unknown (a no-op).
        """
        changed = self._table.set_enable(backend, enabled)
        self._publish(rebuild=False)
        return changed

    def _publish(self, *, rebuild: bool) -> None:
        previous = self._snapshot
        if not rebuild and previous.version == self._table.version:
            return
        self._snapshot = self._build(rebuild=rebuild, previous=previous)

    def _build(self, *, rebuild: bool, previous: Snapshot | None) -> Snapshot:
        table = self._table
        backends = table.backends()
        if rebuild or previous is None:
            selector = self._factory(sorted_backends(backends))
        else:
            selector = previous.selector
        ready = frozenset(backend for backend in backends if table.ready(backend))
        return Snapshot(version=table.version, selector=selector, backends=backends, ready=ready)

    def __repr__(self) -> str:
        snapshot = self._snapshot
        return (
            f"<LoadBalancer version={snapshot.version} backends={len(snapshot.backends)}"
            f" ready={len(snapshot.ready)} selector={snapshot.selector!r}>"
        )
