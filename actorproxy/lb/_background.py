"""The actor that runs a `LoadBalancer`, and `LoadBalancerService`, which puts it in a server's tree.

Rules:
- `LoadBalancerActor` is the only writer of its load balancer's state. Its `on_start` runs discovery, then
  one health round when a check is set, and publishes the snapshot: the start handshake (the supervisor's,
  the server's) is the readiness signal. Then keyed periodic timers send it `RunHealthCheck` every
  `health_check_frequency` and `UpdateBackends` every `update_frequency` (None: never again), and with
  passive health `SweepEjections` every `sweep_interval`, which brings back backends whose ejection is over.
- A discovery that fails at the very first start fails the start (a server must not come up with no
  backends because a file is broken); later it is logged and the last set is kept, as in Pingora.
- A crash loses nothing requests need: the snapshot is on the `LoadBalancer`, and the restarted actor
  runs discovery and a health round again before it counts as started.
- `LoadBalancerService` is what `actorproxy.server.background_service(name, lb)` returns for a load
  balancer. Its start is the load balancer's readiness, so a proxy service added with
  `depends_on=[service]` opens its listeners only once the first discovery and health round are done.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

import attrs

from actors import Actor, ExitReason
from supervisors import ChildSpec, Restart, Supervisor

from ._backend import Backend
from ._balancer import LoadBalancer

__all__ = [
    "LoadBalancerActor",
    "LoadBalancerService",
    "RunHealthCheck",
    "SelectBackend",
    "SetEnable",
    "SweepEjections",
    "UpdateBackends",
]

logger = logging.getLogger("actorproxy.lb")


@attrs.frozen
class SelectBackend:
    """Ask: the backend `LoadBalancer.select(key, max_iterations)` gives (parity and tests; the hot path
    calls `select` directly)."""

    key: bytes = b""
    max_iterations: int = 256


@attrs.frozen
class RunHealthCheck:
    """Run one health round now; an ask answers the flips (backend -> new health)."""


@attrs.frozen
class UpdateBackends:
    """Run discovery now; an ask answers whether the set changed."""


@attrs.frozen
class SetEnable:
    """Allow or stop traffic to `backend`; an ask answers whether it changed."""

    backend: Backend
    enabled: bool


@attrs.frozen
class SweepEjections:
    """Bring back the ejected backends whose time is up; an ask answers them."""


_HEALTH_TIMER = "health check"
_SWEEP_TIMER = "ejection sweep"
_UPDATE_TIMER = "update"


class LoadBalancerActor(Actor):
    """Runs discovery and health checks for `lb` and applies enablement changes to it.

    Args:
        lb: the load balancer whose state this actor owns.
    """

    #: The first discovery plus a health round may take several connect timeouts.
    start_timeout: float | None = 30.0

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    async def on_start(self) -> None:
        lb = self.lb
        await self._update(first=not lb.discovered)
        await lb.run_health_check()
        if lb.health_check is not None and lb.health_check_frequency is not None:
            self.timers.start_periodic(_HEALTH_TIMER, RunHealthCheck(), lb.health_check_frequency)
        if lb.update_frequency is not None:
            self.timers.start_periodic(_UPDATE_TIMER, UpdateBackends(), lb.update_frequency)
        outliers = lb.outlier_detection
        if outliers is not None:
            self.timers.start_periodic(_SWEEP_TIMER, SweepEjections(), outliers.sweep_interval)

    async def receive(self, message: Any) -> Any:
        lb = self.lb
        if isinstance(message, SelectBackend):
            return lb.select(message.key, message.max_iterations)
        if isinstance(message, RunHealthCheck):
            return await lb.run_health_check()
        if isinstance(message, UpdateBackends):
            return await self._update(first=False)
        if isinstance(message, SetEnable):
            return lb.set_enable(message.backend, message.enabled)
        if isinstance(message, SweepEjections):
            return lb.sweep_ejections()
        return await super().receive(message)

    async def on_stop(self, reason: ExitReason) -> None:
        # Connections an HTTP check keeps for reuse belong to this incarnation; a restart opens new ones.
        aclose = getattr(self.lb.health_check, "aclose", None)
        if aclose is not None:
            await aclose()

    async def _update(self, *, first: bool) -> bool:
        try:
            return await self.lb.update()
        except Exception:
            if first:
                raise
            logger.exception("discovery for %r failed; keeping the last backend set", self.lb)
            return False


class LoadBalancerService:
    """A load balancer run as a service of `actorproxy.Server` (what Pingora's `background_service` makes of
    a `LoadBalancer`; not the `supervisors.BackgroundService` trait, which other background tasks implement).

    Args:
        name: the service name (its actor path under the server).
        lb: the load balancer to run.
    """

    def __init__(self, name: str, lb: LoadBalancer) -> None:
        self.name = name
        self.lb = lb

    def task(self) -> LoadBalancer:
        """The load balancer, for the proxy application to select from (Pingora's `task()`)."""
        return self.lb

    def actor_spec(self) -> ChildSpec:
        """The bare `LoadBalancerActor`, for a supervisor of the user's own."""
        return ChildSpec(id="lb", start=partial(LoadBalancerActor, self.lb), restart=Restart.PERMANENT)

    def child_spec(self) -> ChildSpec:
        """The service as a child of the server's root: a supervisor restarting the `LoadBalancerActor`."""
        spec = self.actor_spec()
        return ChildSpec(id=self.name, start=lambda: Supervisor([spec], intensity=10, period=10))

    def __repr__(self) -> str:
        return f"<LoadBalancerService {self.name} {self.lb!r}>"
