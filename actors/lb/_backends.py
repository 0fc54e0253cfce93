"""`Backends`: the current backend set and its health table, as synchronous bookkeeping (no actors, no I/O).

Rules:
- This is the state half of Pingora's `Backends`; discovery and health checks are run by the load balancer,
  which feeds their results in here and publishes snapshots. Nothing here awaits.
- `apply` swaps the set only when it differs from the current one (Pingora's `do_update`). Backends compare
  by address and weight, never by `ext`, so a rediscovered backend keeps the instance (and `ext`) first seen.
  Backends that stay keep their health entry; new ones start healthy and enabled (Pingora's
  `Health::default()`); removed ones are forgotten. The enablement map is applied after the swap, to known
  backends only.
- `ready` is healthy and enabled. Unlike Pingora without a health check, an unknown backend is not ready:
  a backend this table has never seen must not be handed out.
- `version` grows by one on every observable change (set, health or enablement), so a publisher compares one
  integer to know whether its snapshot is stale; `apply`'s return value says only whether the set changed,
  which is what decides rebuilding a selector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import attrs

from ._backend import Backend

__all__ = ["BackendHealth", "Backends"]


@attrs.frozen
class BackendHealth:
    """The health entry of one backend (Pingora's `Health`, without the flip counter of health checks).

    Args:
        healthy: the last verdict of health checking; True until a check says otherwise.
        enabled: whether an operator or discovery allows traffic to it; disabling keeps `healthy` as is.
    """

    healthy: bool = True
    enabled: bool = True

    @property
    def ready(self) -> bool:
        """Healthy and enabled: the backend may be selected."""
        return self.healthy and self.enabled


_NEW = BackendHealth()


class Backends:
    """The backends a load balancer currently knows, with their health and enablement.

    Args:
        backends: an initial set, applied as by `apply` with no enablement map.
    """

    __slots__ = ("_backends", "_health", "_version")

    def __init__(self, backends: Iterable[Backend] = ()) -> None:
        self._backends: frozenset[Backend] = frozenset()
        self._health: dict[Backend, BackendHealth] = {}
        self._version = 0
        self.apply(frozenset(backends), {})

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
        """Whether `backend` may get traffic: known, healthy and enabled."""
        entry = self._health.get(backend)
        return entry is not None and entry.ready

    def apply(self, discovered: frozenset[Backend], enablement: Mapping[Backend, bool]) -> bool:
        """Take the result of a discovery: swap the set if it changed, then apply the enablement map.

        Args:
            discovered: the backends discovery found.
            enablement: backend -> enabled, overriding enablement of those in the set; others are ignored.

        Returns:
            True when the set changed (so the selector must be rebuilt), False otherwise, even when the
            enablement map changed an entry (that still bumps `version`).
        """
        changed = discovered != self._backends
        if changed:
            old = self._health
            # The surviving instances are kept, so `ext` is the one first seen (Pingora keeps the old set).
            kept = {b for b in self._backends if b in discovered}
            self._backends = frozenset(kept | discovered)
            self._health = {b: old.get(b, _NEW) for b in self._backends}
            self._version += 1
        for backend, enabled in enablement.items():
            self.set_enable(backend, enabled)
        return changed

    def set_enable(self, backend: Backend, enabled: bool) -> bool:
        """Allow or stop traffic to `backend` without touching its health (Pingora's `set_enable`).

        Returns:
            True when the entry changed; False when it already was so or the backend is unknown (a no-op).
        """
        entry = self._health.get(backend)
        if entry is None or entry.enabled == enabled:
            return False
        self._health[backend] = attrs.evolve(entry, enabled=enabled)
        self._version += 1
        return True

    def set_health(self, backend: Backend, healthy: bool) -> bool:
        """Record a health verdict for `backend`.

        Returns:
            True when the verdict flipped; False when it did not or the backend is unknown (a no-op).
        """
        entry = self._health.get(backend)
        if entry is None or entry.healthy == healthy:
            return False
        self._health[backend] = attrs.evolve(entry, healthy=healthy)
        self._version += 1
        return True

    def __repr__(self) -> str:
        ready = sum(entry.ready for entry in self._health.values())
        return f"<Backends version={self._version} backends={len(self._backends)} ready={ready}>"
