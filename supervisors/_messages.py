"""What supervisors answer, and typed client functions so callers never build the envelopes.

A supervisor never raises in its own handler because a caller asked for something impossible (that would
crash the supervisor); it answers with the error and the client function raises it in the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from actors import DEFAULT_ASK_TIMEOUT, ActorProxyError, ActorRef, ExitReason, MailboxFull

from ._spec import ChildSpec, Restart

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "Escalation",
    "SupervisorError",
    "SupervisorStatistics",
    "count_children",
    "delete_child",
    "restart_child",
    "start_child",
    "start_child_soon",
    "supervisor_statistics",
    "terminate_child",
    "which_children",
]


class SupervisorError(ActorProxyError):
    """A supervisor refused a request (unknown child, duplicate id, child still running...)."""


class Escalation(ActorProxyError):
    """A supervisor gave up after too many restarts; the child's error is the `__cause__`."""

    def __init__(self, supervisor: str, child_id: str, reason: ExitReason) -> None:
        super().__init__(f"{supervisor}: restart intensity exceeded, last exit of {child_id!r}: {reason}")
        self.supervisor = supervisor
        self.child_id = child_id
        self.reason = reason


@attrs.frozen(kw_only=True)
class ChildInfo:
    """One row of `which_children` (OTP: {Id, Child, Type, Modules})."""

    id: str
    ref: ActorRef | None
    state: str  # "running", "restarting" or "stopped"
    restart: Restart
    is_supervisor: bool
    restarts: int


@attrs.frozen(kw_only=True)
class ChildCounts:
    """`count_children`: specs known, children running, and how many of those are supervisors/workers."""

    specs: int
    active: int
    supervisors: int
    workers: int


@attrs.frozen(kw_only=True)
class SupervisorStatistics:
    children: int
    restarts: int
    crashes: int
    restart_window: int


@attrs.frozen
class WhichChildren:
    pass


@attrs.frozen
class CountChildren:
    pass


@attrs.frozen
class GetStatistics:
    pass


@attrs.frozen
class StartChild:
    """Static supervisors: add and start `spec`. Dynamic supervisors: start a child with `args`.

    `soon`: start without waiting for the child's `on_start` and without a reply; if the supervisor cannot
    start it (shutting down, at max_children, a failing factory), `on_refused` is called instead.
    """

    spec: ChildSpec | None = None
    args: tuple[Any, ...] = ()
    soon: bool = False
    on_refused: Callable[[], object] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class TerminateChild:
    """Stop a child by id (static) or by ref (dynamic)."""

    child: str | ActorRef


@attrs.frozen
class RestartChild:
    child_id: str


@attrs.frozen
class DeleteChild:
    child_id: str


@attrs.frozen
class Failure:
    """An error answer; the client function raises `error`."""

    error: BaseException


async def _call(supervisor: ActorRef, message: Any, timeout: float | None) -> Any:
    reply = await supervisor.ask(message, timeout=timeout)
    if isinstance(reply, Failure):
        raise reply.error
    return reply


async def which_children(
    supervisor: ActorRef, *, timeout: float | None = DEFAULT_ASK_TIMEOUT
) -> list[ChildInfo]:
    """Every child the supervisor knows, in start order."""
    result: list[ChildInfo] = await _call(supervisor, WhichChildren(), timeout)
    return result


async def count_children(supervisor: ActorRef, *, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> ChildCounts:
    result: ChildCounts = await _call(supervisor, CountChildren(), timeout)
    return result


async def supervisor_statistics(
    supervisor: ActorRef, *, timeout: float | None = DEFAULT_ASK_TIMEOUT
) -> SupervisorStatistics:
    """Restarts performed and crashes seen so far by this supervisor incarnation."""
    result: SupervisorStatistics = await _call(supervisor, GetStatistics(), timeout)
    return result


async def start_child(
    supervisor: ActorRef, spec_or_arg: Any = None, *args: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT
) -> ActorRef:
    """Start a child and return its ref.

    For a `Supervisor`, pass a `ChildSpec`. For a `DynamicSupervisor`, pass the arguments for its spec's
    `start` callable.

    Raises:
        SupervisorError: duplicate id, or too many children.
        StartFailed: the child failed to start.
    """
    if isinstance(spec_or_arg, ChildSpec):
        message = StartChild(spec=spec_or_arg)
    else:
        message = StartChild(args=(() if spec_or_arg is None else (spec_or_arg,)) + args)
    ref: ActorRef = await _call(supervisor, message, timeout)
    return ref


async def start_child_soon(
    supervisor: ActorRef, *args: Any, on_refused: Callable[[], object] | None = None
) -> None:
    """Have a `DynamicSupervisor` start a child with `args`, without waiting for it to start.

    Returns as soon as the request is queued, without a schedule point unless the supervisor's mailbox is
    full (then it waits for room: the caller's backpressure). If the child cannot be started,
    `on_refused()` is called, so the caller can release what it handed over (a socket, say).
    """
    if not supervisor.is_alive:
        if on_refused is not None:
            on_refused()
        return
    message = StartChild(args=args, soon=True, on_refused=on_refused)
    try:
        # No schedule point when the request can be queued at once: a burst of starts (an accept loop
        # draining its backlog) then reaches the supervisor as one batch.
        supervisor.tell_nowait(message)
    except MailboxFull:
        await supervisor.tell(message)


async def terminate_child(
    supervisor: ActorRef, child: str | ActorRef, *, timeout: float | None = None
) -> ExitReason:
    """Stop a child with its shutdown policy; a static supervisor keeps its spec (restart it later)."""
    reason: ExitReason = await _call(supervisor, TerminateChild(child), timeout)
    return reason


async def restart_child(
    supervisor: ActorRef, child_id: str, *, timeout: float | None = DEFAULT_ASK_TIMEOUT
) -> ActorRef:
    """Start again a child that was terminated (or exited and was not restarted)."""
    ref: ActorRef = await _call(supervisor, RestartChild(child_id), timeout)
    return ref


async def delete_child(
    supervisor: ActorRef, child_id: str, *, timeout: float | None = DEFAULT_ASK_TIMEOUT
) -> None:
    """Forget the spec of a child that is not running."""
    await _call(supervisor, DeleteChild(child_id), timeout)
