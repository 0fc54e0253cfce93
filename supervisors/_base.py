"""What static and dynamic supervisors share: the nursery, starting and stopping children, restart
intensity, back-off, auto-shutdown, escalation and the answers to introspection requests.

Rules (OTP's `supervisor`, with trio's structure):
- The supervisor owns one nursery for its whole incarnation; every child is a task of it. It signals
  "started" only when all initial children have started; if one fails, those already started are stopped
  in reverse order and the supervisor fails to start.
- A child's exit reaches the supervisor as a control message tagged with the child's incarnation; a report
  about an incarnation that is no longer current (one the supervisor stopped itself, or replaced) is
  ignored.
- Every restart attempt counts toward the intensity, failed ones too. A failed restart is retried through
  the supervisor's own mailbox (data lane), so a stop request is handled between attempts.
- Too many restarts: stop every child in reverse start order, then exit with `Escalation` (its cause is
  the child's error), for the parent to handle as this supervisor's crash.
- Children the supervisor stops (shutdown, a sibling's restart, a terminate request) never trigger
  restarts or auto-shutdown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import attrs
import trio

from actors import Actor, ActorContext, ActorRef, ExitReason, StartFailed

from ._events import (
    ChildCrashed,
    ChildExited,
    ChildRestarted,
    ChildStarted,
    ChildTerminated,
    RestartFailed,
    SupervisorEscalated,
    SupervisorShutdown,
    log_event,
)
from ._intensity import RestartIntensity
from ._messages import (
    ChildCounts,
    ChildInfo,
    CountChildren,
    Escalation,
    Failure,
    GetStatistics,
    StartChild,
    SupervisorError,
    SupervisorStatistics,
    WhichChildren,
)
from ._spec import INFINITY, AutoShutdown, BackoffState, ChildSpec, Restart

__all__ = ["SupervisorBase"]


class Child:
    """A supervisor's record of one child across its incarnations."""

    __slots__ = (
        "args",
        "backoff",
        "context",
        "id",
        "is_supervisor",
        "last_reason",
        "restarting",
        "restarts",
        "shutdown",
        "spec",
        "started_at",
    )

    def __init__(self, spec: ChildSpec, child_id: str, args: tuple[Any, ...] = ()) -> None:
        self.spec = spec
        self.id = child_id
        self.args = args
        self.context: ActorContext | None = None
        self.shutdown = spec.shutdown if spec.shutdown is not None else 5.0
        self.is_supervisor = False
        self.restarts = 0
        self.last_reason: ExitReason | None = None
        self.restarting = False
        self.started_at = 0.0
        self.backoff = BackoffState(spec.backoff) if spec.backoff is not None else None

    @property
    def state(self) -> str:
        if self.context is not None:
            return "running"
        return "restarting" if self.restarting else "stopped"

    def info(self) -> ChildInfo:
        return ChildInfo(
            id=self.id,
            ref=self.context.ref if self.context is not None else None,
            state=self.state,
            restart=self.spec.restart,
            is_supervisor=self.is_supervisor,
            restarts=self.restarts,
        )


@attrs.frozen
class _ChildExited:
    child: Child
    context: ActorContext
    reason: ExitReason


class _ExitNotice:
    """Called with a child's context and exit reason when it exits: tells its supervisor.

    Held for every child's life (a connection is one): one small object, where a partial of a bound method
    took four (about 250 bytes).
    """

    __slots__ = ("child", "supervisor")

    def __init__(self, supervisor: SupervisorBase, child: Child) -> None:
        self.supervisor = supervisor
        self.child = child

    def __call__(self, context: ActorContext, reason: ExitReason) -> None:
        self.supervisor.context.post_control(_ChildExited(self.child, context, reason))


@attrs.frozen
class _RestartDue:
    """Start again the children of `group` that are still known and not running (back-off or retry)."""

    group: tuple[Child, ...]


class SupervisorBase(Actor):
    """Supervision machinery; use `Supervisor` or `DynamicSupervisor`."""

    start_timeout = None
    shutdown_timeout = INFINITY
    is_supervisor = True

    def __init__(
        self, *, intensity: int = 1, period: float = 5.0, auto_shutdown: AutoShutdown = AutoShutdown.NEVER
    ) -> None:
        if intensity < 0:
            raise ValueError("intensity must be >= 0")
        if period <= 0:
            raise ValueError("period must be > 0")
        self.intensity = intensity
        self.period = period
        self.auto_shutdown = auto_shutdown
        self._nursery: trio.Nursery | None = None
        self._window = RestartIntensity(intensity, period)
        self._failure: BaseException | None = None
        self._closing = False
        self._restarts = 0
        self._crashes = 0

    # -- what subclasses provide -----------------------------------------------------------------------------

    def _children(self) -> Iterable[Child]:
        """Children in start order."""
        raise NotImplementedError

    async def _start_initial(self) -> None:
        raise NotImplementedError

    async def _restart(self, child: Child) -> None:
        """Apply the strategy to `child`, which exited and is to be restarted."""
        raise NotImplementedError

    def _forget(self, child: Child) -> None:
        raise NotImplementedError

    async def _handle_command(self, message: Any) -> Any:
        raise NotImplementedError

    # -- lifecycle -----------------------------------------------------------------------------------------

    async def _main(self, started: Callable[[], None]) -> None:
        self._window = RestartIntensity(self.intensity, self.period)
        failure: StartFailed | None = None
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            try:
                await self._start_initial()
            except StartFailed as exc:
                failure = exc
            else:
                started()
                await self.context.serve_mailbox()
            self._closing = True
            await self._terminate_all()
        if failure is not None:
            raise failure
        if self._failure is not None:
            raise self._failure

    async def _terminate_all(self) -> None:
        for child in reversed(list(self._children())):
            await self._terminate(child)

    # -- starting and stopping one child ---------------------------------------------------------------------

    def _publish(self, event: Any) -> None:
        log_event(event)
        self.system.events.publish(event)

    def _incarnation(self, child: Child, *, restart: bool) -> ActorContext:
        """Build (not start) the next incarnation of `child`.

        Raises:
            StartFailed: the factory or the name registration failed.
        """
        spec = child.spec
        path = f"{self.context.path}/{child.id}"
        if restart:
            child.restarts += 1
        factory: Callable[[], Actor] = (lambda: spec.start(*child.args)) if child.args else spec.start
        try:
            return self.system.new_context(
                factory,
                path=path,
                name=spec.name,
                parent=self.context,
                mailbox=spec.mailbox,
                start_timeout=spec.start_timeout,
                restarts=child.restarts,
                last_exit_reason=child.last_reason,
            )
        except Exception as exc:
            raise StartFailed(path, repr(exc)) from exc

    def _exit_notice(self, child: Child) -> Callable[[ActorContext, ExitReason], object]:
        return _ExitNotice(self, child)

    def _running(self, child: Child, context: ActorContext, *, restart: bool) -> None:
        child.context = context
        child.restarting = False
        child.started_at = trio.current_time()
        child.is_supervisor = context.actor.is_supervisor
        spec = child.spec
        child.shutdown = spec.shutdown if spec.shutdown is not None else context.actor.shutdown_timeout
        if restart:
            self._publish(ChildRestarted(self.context.path, child.id, context.ref, child.restarts))
        else:
            self._publish(ChildStarted(self.context.path, child.id, context.ref))

    async def _start(self, child: Child, *, restart: bool = False) -> ActorRef:
        """Start one incarnation of `child` and wait until its `on_start` has returned.

        Raises:
            StartFailed: the factory, the name registration or `on_start` failed.
        """
        assert self._nursery is not None
        context = self._incarnation(child, restart=restart)
        ref = await self.system.start_in(self._nursery, context, self._exit_notice(child))
        self._running(child, context, restart=restart)
        return ref

    def _start_soon(self, child: Child) -> ActorRef:
        """Start `child` without waiting for its `on_start`; a failed start arrives as its exit.

        Raises:
            StartFailed: the factory or the name registration failed.
        """
        assert self._nursery is not None
        context = self._incarnation(child, restart=False)
        self._running(child, context, restart=False)
        return self.system.start_soon_in(self._nursery, context, self._exit_notice(child))

    async def _terminate(self, child: Child) -> ExitReason | None:
        """Stop `child` with its shutdown policy; its exit report is then stale and ignored."""
        context = child.context
        if context is None:
            child.restarting = False
            return child.last_reason
        child.context = None
        reason = await context.terminate(child.shutdown)
        child.last_reason = reason
        self._publish(ChildTerminated(self.context.path, child.id, reason))
        return reason

    # -- exits, restarts, escalation -----------------------------------------------------------------------

    def _count_restart(self, child: Child, reason: ExitReason) -> bool:
        """Count one restart attempt; on exceeding the intensity, escalate and return False."""
        self._restarts += 1
        if self._window.add(trio.current_time()):
            return True
        error = Escalation(self.context.path, child.id, reason)
        error.__cause__ = reason.error
        self._failure = error
        self._closing = True
        self._publish(SupervisorEscalated(self.context.path, child.id, error))
        self.context.request_stop()
        return False

    async def _child_exited(self, child: Child, context: ActorContext, reason: ExitReason) -> None:
        if child.context is not context:
            return  # an incarnation we stopped or replaced already
        child.context = None
        child.last_reason = reason
        if reason.is_normal:
            self._publish(ChildExited(self.context.path, child.id, reason))
        else:
            self._crashes += 1
            self._publish(ChildCrashed(self.context.path, child.id, reason))
        if not child.spec.restart.should_restart(reason):
            if child.spec.restart is Restart.TEMPORARY:
                self._forget(child)
            if child.spec.significant:
                self._check_auto_shutdown(child)
            return
        if self._count_restart(child, reason):
            await self._restart(child)

    async def _restart_group(self, child: Child, group: list[Child]) -> None:
        """Start `group` (in order) again, after `child`'s back-off delay if it has one."""
        for member in group:
            member.restarting = True
        delay = 0.0
        if child.backoff is not None:
            delay = child.backoff.next_delay(trio.current_time() - child.started_at)
        if delay > 0:
            self.timers.start_single(("restart", child.id), _RestartDue(tuple(group)), delay)
        else:
            await self._start_group(tuple(group))

    async def _start_group(self, group: tuple[Child, ...]) -> None:
        known = set(map(id, self._children()))
        for index, member in enumerate(group):
            if id(member) not in known or member.context is not None or not member.restarting:
                continue
            try:
                await self._start(member, restart=True)
            except StartFailed as exc:
                self._publish(RestartFailed(self.context.path, member.id, exc))
                if not self._count_restart(member, ExitReason.crashed(exc)):
                    return
                retry = _RestartDue(group[index:])
                delay = member.backoff.next_delay(0.0) if member.backoff is not None else 0.0
                if delay > 0:
                    self.timers.start_single(("restart", member.id), retry, delay)
                else:
                    self.context.mailbox.put_internal(retry)
                return

    def _check_auto_shutdown(self, child: Child) -> None:
        mode = self.auto_shutdown
        if mode is AutoShutdown.NEVER:
            return
        if mode is AutoShutdown.ALL_SIGNIFICANT and any(
            c.spec.significant and (c.context is not None or c.restarting) for c in self._children()
        ):
            return
        self._closing = True
        self._publish(SupervisorShutdown(self.context.path, child.id))
        self.context.request_stop()

    # -- messages ------------------------------------------------------------------------------------------

    async def receive(self, message: Any) -> Any:
        kind = type(message)
        if kind is _ChildExited:
            if not self._closing:
                await self._child_exited(message.child, message.context, message.reason)
            return None
        if kind is _RestartDue:
            if not self._closing:
                await self._start_group(message.group)
            return None
        if kind is WhichChildren:
            return [child.info() for child in self._children()]
        if kind is CountChildren:
            children = list(self._children())
            running = [c for c in children if c.context is not None]
            supervisors = sum(1 for c in running if c.is_supervisor)
            return ChildCounts(
                specs=len(children),
                active=len(running),
                supervisors=supervisors,
                workers=len(running) - supervisors,
            )
        if kind is GetStatistics:
            return SupervisorStatistics(
                children=sum(1 for _ in self._children()),
                restarts=self._restarts,
                crashes=self._crashes,
                restart_window=len(self._window),
            )
        if self._closing:
            if isinstance(message, StartChild) and message.on_refused is not None:
                message.on_refused()
            return Failure(SupervisorError(f"{self.context.path} is shutting down"))
        return await self._handle_command(message)
