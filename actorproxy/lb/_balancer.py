"""`LoadBalancer`: backends, their health and a selector, read by requests from an immutable snapshot.

Pingora's `LoadBalancer<S>`, with its ArcSwap turned into one attribute holding a frozen `Snapshot`.

Rules:
- Requests call `select`/`select_with`, which read the current snapshot only: no message, no await, no lock.
  One request sees one snapshot from start to end, however many candidates it tries.
- The state behind the snapshot is the `Backends` table. The `LoadBalancerActor` running this load
  balancer changes it on messages (discovery, health rounds, enablement, ejection sweeps); the request path
  changes it synchronously through `finish` (passive health must act at once: waiting for a mailbox hop
  would send more requests to a dying backend). Every change publishes a new snapshot through the table's
  change hook. The state and the snapshot live on this object, not in the actor, so a crashed and restarted
  actor leaves requests served from the last snapshot.
- The selector is built from every known backend (Pingora builds it from the whole set) and rebuilt only
  when discovery changes the set; health, enablement and ejections only replace the snapshot's `ready` set.
  So an unhealthy backend's keys fall back to the next candidates while every other key stays where it was
  (consistent hashing keeps its promise), and a round-robin counter survives health flips.
- `select` never returns a backend that is not ready (healthy, enabled, not ejected). `select_with`'s
  `accept` gets `(backend, ready)` and decides alone, as in Pingora: it may take a backend that is not ready.
- In-flight requests are counted per backend here, not in a selector, so `LeastConnections` and
  `PowerOfTwoChoices` keep their counts across set updates. The engine counts them when the peer
  `upstream_peer` returns connects to the backend `select` picked (see `actorproxy.proxy.note_pick`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from actorproxy.proxy import Outcome, note_pick

from ._backend import Backend
from ._backends import Backends
from ._discovery import ServiceDiscovery, Static
from ._health import HealthCheck
from ._outlier import OutlierDetection
from ._selection import BackendSelection as _Selector
from ._selection import (
    FNVHash,
    LeastConnections,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    UniqueIterator,
    Weighted,
    sorted_backends,
)

__all__ = ["LoadBalancer", "SelectionFactory", "Snapshot", "selection_factory"]

logger = logging.getLogger("actorproxy.lb")

#: Builds a selector from the backend set, deduplicated and sorted.
SelectionFactory = Callable[[tuple[Backend, ...]], _Selector]

_ALGORITHMS: tuple[type[Any], ...] = (RoundRobin, Random, FNVHash)


def selection_factory(
    selection: Any, inflight: Mapping[Backend, int] | None = None, config: Mapping[str, Any] | None = None
) -> SelectionFactory:
    """Turn what `LoadBalancer` accepts as `selection` into a factory of selectors.

    Args:
        selection: `RoundRobin`, `Random` or `FNVHash` (a `SelectionAlgorithm` class: Pingora's
            `Weighted<H>` over a fresh instance), `Consistent`, `LeastConnections`, `PowerOfTwoChoices`, or
            any callable building a selector from the backend tuple.
        inflight: the in-flight counts `LeastConnections` and `PowerOfTwoChoices` read.
        config: keyword arguments for each build (Pingora's `S::Config`): given to the algorithm class for
            the weighted ones (`{"rng": random.Random(7)}` for `Random`), to the selector class otherwise.

    Raises:
        TypeError: `selection` is neither.
    """
    kwargs = dict(config or {})
    counts: Mapping[Backend, int] = inflight if inflight is not None else {}
    if isinstance(selection, type) and issubclass(selection, (LeastConnections, PowerOfTwoChoices)):
        by_load: Callable[..., _Selector] = selection
        return lambda backends: by_load(backends, counts, **kwargs)
    if isinstance(selection, type) and (
        issubclass(selection, _ALGORITHMS) or (hasattr(selection, "next") and not hasattr(selection, "iter"))
    ):
        algorithm: Callable[..., Any] = selection
        return lambda backends: Weighted(backends, algorithm(**kwargs))
    if callable(selection):
        factory: Callable[..., _Selector] = selection
        if kwargs:
            return lambda backends: factory(backends, **kwargs)
        return factory
    raise TypeError(f"selection: expected an algorithm class or a selector factory, got {selection!r}")


@attrs.frozen
class Snapshot:
    """What requests select from: replaced whole, never changed.

    Args:
        version: grows with each publication (the `Backends` table version it was built from).
        selector: built from every backend in `backends`.
        backends: the backend set.
        ready: the backends that may get traffic (healthy, enabled, not ejected).
    """

    version: int
    selector: _Selector
    backends: frozenset[Backend]
    ready: frozenset[Backend]


class LoadBalancer:
    """A backend set, its health and a selection algorithm (Pingora's `LoadBalancer`).

    Build one with `try_from_iter` (static addresses) or `from_backends` (a `Backends` table or a discovery),
    set `health_check_frequency`/`update_frequency`/`parallel_health_check`, `set_health_check` and
    `set_outlier_detection`, then run it with `background_service(name, lb)`.

    Args:
        backends: a `Backends` table, or a discovery (wrapped in a fresh table, empty until the first
            `update`).
        selection: see `selection_factory`; round robin by default.
        config: see `selection_factory`.

    Attributes:
        health_check_frequency: seconds between health rounds; None: one round at start only.
        update_frequency: seconds between discoveries; None: one discovery at start only.
        parallel_health_check: probe all backends of a round at once instead of one after another.
        inflight: in-flight requests per backend (only backends with some are present).
    """

    def __init__(
        self,
        backends: Backends | ServiceDiscovery,
        *,
        selection: Any = RoundRobin,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        table = backends if isinstance(backends, Backends) else Backends(backends)
        if table.on_change is not None:
            raise ValueError("backends: this Backends table already belongs to a LoadBalancer")
        self._table = table
        self.inflight: dict[Backend, int] = {}
        self._factory = selection_factory(selection, self.inflight, config)
        self.health_check_frequency: float | None = None
        self.update_frequency: float | None = None
        self.parallel_health_check = False
        self._snapshot = self._build(rebuild=True, previous=None)
        table.on_change = self._publish

    @classmethod
    def try_from_iter(cls, addrs: Iterable[object], *, selection: Any = RoundRobin) -> LoadBalancer:
        """Weight-1 backends at `addrs`, discovered at once (Pingora's `try_from_iter`).

        Raises:
            ValueError: an address is not valid; the message gives its index and the value.
        """
        static = Static.try_from_iter(addrs)
        return cls(Backends(static.get()), selection=selection)

    @classmethod
    def from_backends(
        cls, backends: Backends | ServiceDiscovery, *, selection: Any = RoundRobin
    ) -> LoadBalancer:
        """From a `Backends` table or from a discovery (Pingora's `from_backends`).

        With a discovery the set is empty until the first `update` (the background service's start).
        """
        return cls(backends, selection=selection)

    @classmethod
    def from_backends_with_config(
        cls,
        backends: Backends | ServiceDiscovery,
        config: Mapping[str, Any] | None,
        *,
        selection: Any = RoundRobin,
    ) -> LoadBalancer:
        """As `from_backends`, with keyword arguments for every selector build (Pingora's `S::Config`)."""
        return cls(backends, selection=selection, config=config)

    # -- reading: the request path ---------------------------------------------------------------------------

    @property
    def snapshot(self) -> Snapshot:
        """The current snapshot."""
        return self._snapshot

    @property
    def discovery(self) -> ServiceDiscovery:
        return self._table.discovery

    @property
    def discovered(self) -> bool:
        """Whether a discovery has succeeded (or the set was given up front)."""
        return self._table.discovered

    def select(self, key: bytes, max_iterations: int) -> Backend | None:
        """The first ready backend for `key`, trying at most `max_iterations` candidates (Pingora's `select`).

        Returns:
            The backend, or None when no ready backend came up within `max_iterations` draws.
        """
        snapshot = self._snapshot
        ready = snapshot.ready
        for backend in UniqueIterator(snapshot.selector.iter(key), max_iterations):
            if backend in ready:
                note_pick(self, backend)
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
                note_pick(self, backend)
                return backend
        return None

    def backends(self) -> Backends:
        """The `Backends` table: the set (`get_backend()`), health, `ready`, `set_enable` (Pingora's)."""
        return self._table

    def ready(self, backend: Backend) -> bool:
        """Whether the current snapshot lets `backend` get traffic."""
        return backend in self._snapshot.ready

    def ready_backends(self) -> frozenset[Backend]:
        """The backends the current snapshot lets get traffic."""
        return self._snapshot.ready

    # -- the request path reports back -----------------------------------------------------------------------

    def begin(self, backend: Backend) -> None:
        """Count one more request in flight to `backend`."""
        inflight = self.inflight
        inflight[backend] = inflight.get(backend, 0) + 1

    def finish(self, backend: Backend, outcome: Outcome) -> None:
        """Count a request to `backend` done, and feed its outcome to passive health."""
        inflight = self.inflight
        left = inflight.get(backend, 0) - 1
        if left > 0:
            inflight[backend] = left
        else:
            inflight.pop(backend, None)
        self._table.report(backend, outcome)

    # -- writing: called by the LoadBalancerActor ------------------------------------------------------------

    @property
    def health_check(self) -> HealthCheck | None:
        return self._table.health_check

    def set_health_check(self, check: HealthCheck | None) -> None:
        """Probe backends with `check` (None: no health checking; every known backend stays healthy)."""
        self._table.set_health_check(check)

    @property
    def outlier_detection(self) -> OutlierDetection | None:
        return self._table.outlier_detection

    def set_outlier_detection(self, config: OutlierDetection | None) -> None:
        """Let failures of real requests eject backends for a while (None: no passive health)."""
        self._table.set_outlier_detection(config)

    async def update(self) -> bool:
        """Run discovery once and publish the result (Pingora's `update`).

        Returns:
            True when the backend set changed.

        Raises:
            Exception: what discovery raised; the last set and snapshot are kept.
        """
        return await self._table.update()

    async def run_health_check(self) -> dict[Backend, bool]:
        """Probe every backend once and publish the flips (Pingora's `run_health_check`).

        Returns:
            The backends that flipped, with their new health; empty without a health check.
        """
        return await self._table.run_health_check(self.parallel_health_check)

    def set_enable(self, backend: Backend, enabled: bool) -> bool:
        """Allow or stop traffic to `backend` and publish it (Pingora's `Backends::set_enable`).

        Returns:
            True when it changed; False when it already was so or the backend is unknown (a no-op).
        """
        return self._table.set_enable(backend, enabled)

    def sweep_ejections(self) -> list[Backend]:
        """Bring back the ejected backends whose time is up; return them."""
        return self._table.sweep_ejections()

    def _publish(self, rebuild: bool) -> None:
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
            f" ready={len(snapshot.ready)} inflight={sum(self.inflight.values())}"
            f" selector={snapshot.selector!r}>"
        )
