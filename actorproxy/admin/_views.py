"""The admin API's JSON, built from live objects: the supervision tree, the clusters, the services'
counters, supervisor events and the effective configuration. Plain functions, so they are tested without a
server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from actorproxy.config import ServerConf, effective_config
from actorproxy.lb import Backend, BackendHealth, LoadBalancer
from actorproxy.proxy import ProxyCounters
from actorproxy.settings import REDACTED
from actors import ExitKind, TreeNode
from supervisors import (
    ChildCrashed,
    ChildExited,
    ChildRestarted,
    ChildStarted,
    ChildTerminated,
    RestartFailed,
    SupervisorEscalated,
    SupervisorEvent,
    SupervisorShutdown,
)

from ._latency import LATENCY_FIELD, LatencySample

__all__ = [
    "MAX_CHILDREN",
    "backend_view",
    "clusters_view",
    "config_view",
    "counters_view",
    "event_view",
    "find_backend",
    "node_view",
    "tree_view",
]

#: Children listed per actor; a busy connection supervisor has thousands, and the rest are counted only.
MAX_CHILDREN = 100


def _state(node: TreeNode) -> str:
    """running, starting, restarting (starting again after a crash), stopping or exited."""
    statistics = node.statistics
    if statistics.state == "starting" and statistics.restarts:
        return "restarting"
    return statistics.state


def node_view(node: TreeNode, now: float) -> dict[str, Any]:
    """One actor and its children (`MAX_CHILDREN` of them; `hidden_children` counts the rest)."""
    s = node.statistics
    reason = s.last_exit_reason
    shown = node.children[:MAX_CHILDREN]
    return {
        "name": s.path.rsplit("/", 1)[-1] or s.path,
        "path": s.path,
        "kind": s.actor_type,
        "state": _state(node),
        "uptime": None if s.started_at is None else max(0.0, now - s.started_at),
        "restarts": s.restarts,
        "mailbox": s.mailbox_size,
        "mailbox_peak": s.mailbox_peak,
        "mailbox_capacity": s.mailbox_capacity,
        "processed": s.processed,
        "last_exit": None if reason is None else str(reason),
        "last_exit_crashed": reason is not None and reason.kind is ExitKind.CRASHED,
        "children": [node_view(child, now) for child in shown],
        "hidden_children": len(node.children) - len(shown),
    }


def tree_view(roots: Iterable[TreeNode], now: float) -> list[dict[str, Any]]:
    """The whole live tree, from the actor system's top-level actors."""
    return [node_view(root, now) for root in roots]


def backend_view(backend: Backend, health: BackendHealth, ejections: int) -> dict[str, Any]:
    return {
        "address": backend.addr_str,
        "weight": backend.weight,
        "healthy": health.healthy,
        "enabled": health.enabled,
        "ejected": health.ejected,
        "ready": health.ready,
        "ejections": ejections,
    }


def clusters_view(clusters: Mapping[str, LoadBalancer]) -> list[dict[str, Any]]:
    """Each cluster, by name, with each backend's health, in the load balancer's order."""
    views = []
    for name in sorted(clusters):
        lb = clusters[name]
        table = lb.backends()
        backends = [
            backend_view(backend, table.health(backend) or BackendHealth(), table.ejections(backend))
            for backend in sorted(table.backends())
        ]
        check = lb.health_check
        views.append(
            {
                "name": name,
                "health_check": None if check is None else type(check).__name__,
                "ready": sum(1 for backend in backends if backend["ready"]),
                "backends": backends,
            }
        )
    return views


def find_backend(lb: LoadBalancer, address: str) -> Backend | None:
    """The backend of `lb` whose `addr_str` is `address` (as the API lists it)."""
    return next((b for b in lb.backends().backends() if b.addr_str == address), None)


def counters_view(name: str, counters: ProxyCounters) -> dict[str, Any]:
    """A service's counters since it started; `latency` is the request-duration histogram, if kept."""
    latency = LatencySample.of(getattr(counters, LATENCY_FIELD, None))
    return {
        "name": name,
        "requests": counters.requests,
        "responses": {f"{status}xx": count for status, count in sorted(counters.responses.items())},
        "errors": dict(sorted(counters.errors.items())),
        "retries": counters.retries,
        "rejected": counters.rejected,
        "internal_errors": counters.internal_errors,
        "connection_crashes": counters.connection_crashes,
        "latency": None
        if latency is None
        else {
            "bounds": list(latency.bounds),
            "counts": list(latency.counts),
            "sum": latency.sum,
            "count": latency.count,
        },
    }


#: What each supervisor event is called on the page, and whether it is bad news.
_EVENTS: Mapping[type, tuple[str, str]] = {
    ChildStarted: ("started", "info"),
    ChildRestarted: ("restarted", "warning"),
    ChildExited: ("exited", "info"),
    ChildCrashed: ("crashed", "error"),
    ChildTerminated: ("terminated", "info"),
    RestartFailed: ("restart failed", "error"),
    SupervisorEscalated: ("escalated", "error"),
    SupervisorShutdown: ("shut down", "warning"),
}


def event_view(event: SupervisorEvent, time: float) -> dict[str, Any]:
    """A supervisor event for the page's log: when, what, where, and the reason if any."""
    what, level = _EVENTS.get(type(event), (type(event).__name__, "info"))
    child = getattr(event, "child_id", "")
    detail = ""
    if isinstance(event, (ChildCrashed, ChildExited, ChildTerminated)):
        detail = str(event.reason)
    elif isinstance(event, ChildRestarted):
        detail = f"restart #{event.restarts}"
    elif isinstance(event, (RestartFailed, SupervisorEscalated)):
        detail = f"{type(event.error).__name__}: {event.error}"
    return {
        "t": time,
        "event": what,
        "level": level,
        "supervisor": event.supervisor,
        "child": child,
        "path": f"{event.supervisor.rstrip('/')}/{child}" if child else event.supervisor,
        "detail": detail,
    }


def config_view(conf: ServerConf) -> dict[str, Any]:
    """The effective configuration, every default included, secrets and the admin token redacted."""
    data = effective_config(conf)
    admin = data.get("admin")
    if isinstance(admin, dict) and admin.get("token") is not None:
        admin["token"] = REDACTED
    return data
