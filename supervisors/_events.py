"""Supervisor events: published on the system's event stream and logged.

Subscribe with `system.events.subscribe(ref, SupervisorEvent)`; an admin view streams them from there.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs

from actors import ActorRef, ExitReason

__all__ = [
    "ChildCrashed",
    "ChildExited",
    "ChildRestarted",
    "ChildStarted",
    "ChildTerminated",
    "RestartFailed",
    "SupervisorEscalated",
    "SupervisorEvent",
    "SupervisorShutdown",
]

logger = logging.getLogger("actorproxy.supervisors")


@attrs.frozen
class SupervisorEvent:
    """Base of every supervisor event; `supervisor` is the supervisor's path."""

    supervisor: str


@attrs.frozen
class ChildStarted(SupervisorEvent):
    child_id: str
    ref: ActorRef


@attrs.frozen
class ChildRestarted(SupervisorEvent):
    child_id: str
    ref: ActorRef
    restarts: int


@attrs.frozen
class ChildExited(SupervisorEvent):
    """A child ended on its own, normally."""

    child_id: str
    reason: ExitReason


@attrs.frozen
class ChildCrashed(SupervisorEvent):
    """A child ended on its own, abnormally (crashed, or killed by someone else)."""

    child_id: str
    reason: ExitReason


@attrs.frozen
class ChildTerminated(SupervisorEvent):
    """The supervisor stopped a child (shutdown, a sibling's restart, or a terminate request)."""

    child_id: str
    reason: ExitReason


@attrs.frozen
class RestartFailed(SupervisorEvent):
    child_id: str
    error: BaseException = attrs.field(eq=False)


@attrs.frozen
class SupervisorEscalated(SupervisorEvent):
    """Restart intensity was exceeded: the supervisor stopped its children and exits with the cause."""

    child_id: str
    error: BaseException = attrs.field(eq=False)


@attrs.frozen
class SupervisorShutdown(SupervisorEvent):
    """The supervisor ended because its significant children did (auto-shutdown)."""

    child_id: str


_LEVELS: dict[type, int] = {
    ChildStarted: logging.DEBUG,
    ChildRestarted: logging.INFO,
    ChildExited: logging.DEBUG,
    ChildCrashed: logging.WARNING,
    ChildTerminated: logging.DEBUG,
    RestartFailed: logging.ERROR,
    SupervisorEscalated: logging.ERROR,
    SupervisorShutdown: logging.INFO,
}


def log_event(event: Any) -> None:
    logger.log(_LEVELS.get(type(event), logging.INFO), "%s", event)
