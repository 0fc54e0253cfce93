"""The running side of an actor: its context, its mailbox loop and its lifecycle.

Rules:
- One `ActorContext` per incarnation. A restart builds a new one (new mailbox, new timers, new ref), as a
  restarted Erlang process gets a new pid; names are re-registered, stale refs see `ActorDead`.
- Stop is a control message, never a cancel: `request_stop` queues it ahead of all data and cancels the
  scopes the actor opened with `cancel_on_stop()`. `kill` cancels the whole incarnation; whoever kills
  decides when (a grace deadline, or at once for brutal shutdown).
- The exit reason is decided in one place, `run_actor`: returned before a stop request is normal, after one
  is shutdown, cancelled by its own kill scope is killed, and an exception is a crash, even when it was raised
  while the scope was being cancelled. A BaseException that is not our cancellation (KeyboardInterrupt, a
  parent's cancellation) propagates and is never reported to the parent as a crash.
- On exit, always and in this order: `on_stop` (shielded, with a deadline), queued asks failed and queued
  tells recorded as dead letters, the name released, monitors told, then the parent told. So a supervisor
  that restarts the child finds its name free.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio
from trio.lowlevel import wait_task_rescheduled

from ._actor import Actor
from ._errors import ActorDead, AskFailed, MailboxFull, StartTimeout
from ._exit import ExitKind, ExitReason
from ._mailbox import TIMEOUT, Mailbox, MailboxClosed, MailboxConfig
from ._messages import ActorExited
from ._ref import ActorRef
from ._reply import Ask
from ._statistics import ActorStatistics, TreeNode
from ._timers import Timers

if TYPE_CHECKING:
    from ._system import ActorSystem

__all__ = ["CLEANUP_TIMEOUT", "ActorContext", "run_actor"]

logger = logging.getLogger("actorproxy.actors")

# How long `on_stop` may take once the actor is stopping; it runs shielded, so it needs its own bound.
CLEANUP_TIMEOUT = 5.0
# Messages handled back to back before the mailbox loop yields to other tasks (fairness when never idle).
CHECKPOINT_EVERY = 32


class _Stop:
    __slots__ = ()

    def __repr__(self) -> str:
        return "STOP"


STOP: Any = _Stop()

ExitCallback = Callable[["ActorContext", ExitReason], object]


class ActorContext:
    """Everything the kernel keeps for one running actor; the actor reaches it as `self.context`."""

    __slots__ = (
        "_exit_callbacks",
        "_exited",
        "_kill_scope",
        "_killed",
        "_stop_scopes",
        "_timers",
        "actor",
        "children",
        "exit_reason",
        "last_exit_reason",
        "mailbox",
        "name",
        "parent",
        "path",
        "processed",
        "ref",
        "restarts",
        "start_timeout",
        "started",
        "started_at",
        "state",
        "stop_requested",
        "system",
    )

    def __init__(
        self,
        system: ActorSystem,
        actor: Actor,
        path: str,
        *,
        name: str | None = None,
        parent: ActorContext | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        restarts: int = 0,
        last_exit_reason: ExitReason | None = None,
    ) -> None:
        self.system = system
        self.actor = actor
        self.path = path
        self.name = name
        self.parent = parent
        self.mailbox = Mailbox(mailbox)
        self.start_timeout = start_timeout
        self.restarts = restarts
        self.last_exit_reason = last_exit_reason
        self.ref: ActorRef = ActorRef(self)
        self.state = "starting"
        self.started = False
        #: trio's clock when `on_start` returned (uptime is measured from it); None until then.
        self.started_at: float | None = None
        self.stop_requested = False
        self.processed = 0
        self.exit_reason: ExitReason | None = None
        self.children: dict[int, ActorContext] | None = None
        self._kill_scope = trio.CancelScope()
        self._killed = False
        self._stop_scopes: list[trio.CancelScope] | None = None
        self._timers: Timers | None = None
        self._exited: trio.Event | None = None
        self._exit_callbacks: list[ExitCallback] | None = None
        actor.context = self
        if parent is not None:
            if parent.children is None:
                parent.children = {}
            parent.children[id(self)] = self

    def __repr__(self) -> str:
        return f"<ActorContext {self.path} {self.state}>"

    # -- what the actor uses -------------------------------------------------------------------------------

    @property
    def timers(self) -> Timers:
        """This incarnation's keyed timers."""
        if self._timers is None:
            self._timers = Timers(self.mailbox)
        return self._timers

    @property
    def alive(self) -> bool:
        return self.exit_reason is None

    @contextmanager
    def cancel_on_stop(self) -> Iterator[trio.CancelScope]:
        """A cancel scope cancelled when a stop is requested (for actors with their own `run` loop)."""
        scope = trio.CancelScope()
        if self.stop_requested:
            scope.cancel()
        if self._stop_scopes is None:
            self._stop_scopes = []
        self._stop_scopes.append(scope)
        try:
            with scope:
                yield scope
        finally:
            self._stop_scopes.remove(scope)

    async def serve_mailbox(self) -> None:
        """Hand each message to `actor.receive` until a stop is requested (the default `Actor.run`)."""
        mailbox = self.mailbox
        receive = self.actor.receive
        since_checkpoint = 0
        while True:
            timers = self._timers
            if timers:
                timers.fire_due()
                message = await mailbox.get(timers.next_deadline())
                if message is TIMEOUT:
                    continue
            else:
                while mailbox.empty:
                    mailbox.park_receiver()
                    await wait_task_rescheduled(mailbox.abort_receive)
                message = mailbox.get_nowait()
            if message is STOP:
                return
            self.processed += 1
            if type(message) is Ask:
                await self._answer(receive, message)
            else:
                await receive(message)
            since_checkpoint += 1
            if since_checkpoint >= CHECKPOINT_EVERY:
                since_checkpoint = 0
                await trio.lowlevel.checkpoint()

    async def _answer(self, receive: Callable[[Any], Any], ask: Ask) -> None:
        try:
            result = await receive(ask.message)
        except Exception as exc:
            failure = AskFailed(self.path, ask.message, exc)
            failure.__cause__ = exc
            ask.fail(failure)
            raise
        except BaseException:
            ask.fail(ActorDead(self.path))
            raise
        if not ask.reply(result):
            self.system.dead_letters.record(self.path, result, "reply after the asker gave up")

    # -- what senders use ------------------------------------------------------------------------------------

    def _dropped(self, item: Any) -> None:
        if type(item) is Ask:
            item.fail(MailboxFull(self.path, self.mailbox.capacity))
            item = item.message
        self.system.dead_letters.record(self.path, item, "dropped by the overflow policy")

    def send_nowait(self, item: Any) -> None:
        """Queue a tell or an ask without waiting (see `ActorRef.tell_nowait`)."""
        try:
            dropped = self.mailbox.put_nowait(item)
        except MailboxClosed:
            self._undeliverable(item)
            return
        except trio.WouldBlock:
            raise MailboxFull(self.path, self.mailbox.capacity) from None
        if dropped is not None:
            self._dropped(dropped)

    async def send(self, item: Any) -> None:
        """Queue a tell or an ask, waiting for room under the BLOCK policy (see `ActorRef.tell`)."""
        if not self.mailbox.must_wait():
            self.send_nowait(item)
            return
        try:
            dropped = await self.mailbox.put(item)
        except MailboxClosed:
            self._undeliverable(item)
            return
        except trio.WouldBlock:
            raise MailboxFull(self.path, self.mailbox.capacity) from None
        if dropped is not None:
            self._dropped(dropped)

    def _undeliverable(self, item: Any) -> None:
        if type(item) is Ask:
            raise ActorDead(self.path)
        self.system.dead_letters.record(self.path, item, "actor exited")

    def post_control(self, message: Any) -> bool:
        """Queue `message` ahead of all data; False if the actor has exited."""
        try:
            self.mailbox.put_control(message)
        except MailboxClosed:
            return False
        return True

    # -- what parents and the system use -------------------------------------------------------------------

    def request_stop(self) -> None:
        """Ask the actor to finish: a STOP on the control lane, and its `cancel_on_stop` scopes cancelled."""
        if self.stop_requested or self.exit_reason is not None:
            return
        self.stop_requested = True
        self.post_control(STOP)
        if self._stop_scopes:
            for scope in self._stop_scopes:
                scope.cancel()
        self.actor.on_stop_request()

    def finish(self) -> None:
        """End the mailbox loop after the current message; the exit is normal (the actor's work is done)."""
        self.post_control(STOP)

    def kill(self) -> None:
        """Cancel the incarnation now; its shielded cleanup still runs."""
        self._killed = True
        self._kill_scope.cancel()

    def add_exit_callback(self, callback: ExitCallback) -> None:
        """Call `callback(context, reason)` when the actor exits (at once if it already has)."""
        if self.exit_reason is not None:
            callback(self, self.exit_reason)
            return
        if self._exit_callbacks is None:
            self._exit_callbacks = []
        self._exit_callbacks.append(callback)

    def monitor(self, watcher: ActorContext) -> None:
        """Deliver `ActorExited` to `watcher` when this actor exits."""
        ref = self.ref
        self.add_exit_callback(lambda _, reason: watcher.post_control(ActorExited(ref, reason)))

    async def wait_exit(self) -> ExitReason:
        """Wait until the actor has exited and return why."""
        if self.exit_reason is None:
            if self._exited is None:
                self._exited = trio.Event()
            await self._exited.wait()
        assert self.exit_reason is not None
        return self.exit_reason

    async def terminate(self, shutdown: float) -> ExitReason:
        """Stop the actor: at once if `shutdown` <= 0, else request a stop and kill it `shutdown` s later."""
        if self.exit_reason is not None:
            return self.exit_reason
        if shutdown <= 0:
            self.kill()
        else:
            self.request_stop()
            if shutdown != math.inf:
                with trio.move_on_after(shutdown):
                    return await self.wait_exit()
                self.kill()
        return await self.wait_exit()

    def statistics(self) -> ActorStatistics:
        mailbox = self.mailbox
        return ActorStatistics(
            path=self.path,
            actor_type=type(self.actor).__name__,
            state=self.state,
            mailbox_size=len(mailbox),
            mailbox_peak=mailbox.peak,
            mailbox_capacity=mailbox.capacity,
            blocked_senders=mailbox.blocked_senders,
            processed=self.processed,
            restarts=self.restarts,
            last_exit_reason=self.exit_reason or self.last_exit_reason,
            started_at=self.started_at,
        )

    def tree(self) -> TreeNode:
        children = tuple(child.tree() for child in (self.children or {}).values())
        return TreeNode(statistics=self.statistics(), children=children)

    # -- exit ----------------------------------------------------------------------------------------------

    async def _cleanup(self, reason: ExitReason) -> ExitReason:
        self.state = "stopping"
        if self.started:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + CLEANUP_TIMEOUT):
                try:
                    await self.actor.on_stop(reason)
                except Exception as exc:
                    logger.exception("%s: on_stop raised", self.path)
                    if reason.kind is not ExitKind.CRASHED:
                        reason = ExitReason.crashed(exc)
        if self._timers is not None:
            self._timers.cancel_all()
        dead_letters = self.system.dead_letters
        for item in self.mailbox.close():
            if type(item) is Ask:
                item.fail(ActorDead(self.path))
            dead_letters.record(self.path, item.message if type(item) is Ask else item, "actor exited")
        if self.name is not None:
            self.system.registry.release(self.name, self)
        if self.parent is not None and self.parent.children is not None:
            self.parent.children.pop(id(self), None)
        self.exit_reason = reason
        self.state = "exited"
        if self._exited is not None:
            self._exited.set()
        return reason

    def _notify(self, reason: ExitReason) -> None:
        callbacks, self._exit_callbacks = self._exit_callbacks, None
        for callback in callbacks or ():
            callback(self, reason)


def _returned(context: ActorContext, scope: trio.CancelScope) -> ExitReason:
    """The exit reason of an incarnation whose body returned (or was cancelled by its own kill scope)."""
    if scope.cancelled_caught and not context._killed and not context.started:
        assert context.start_timeout is not None
        return ExitReason.crashed(StartTimeout(context.path, context.start_timeout))
    if scope.cancelled_caught:
        return ExitReason.KILLED
    if context.stop_requested:
        return ExitReason.SHUTDOWN
    return ExitReason.NORMAL


async def run_actor(
    context: ActorContext,
    on_exit: ExitCallback | None,
    *,
    notify_failed_start: bool = False,
    task_status: trio.TaskStatus[Any] = trio.TASK_STATUS_IGNORED,
) -> ExitReason:
    """Run one incarnation from `on_start` to its last exit notice; see the module rules.

    Args:
        context: the incarnation to run.
        on_exit: the parent's notice, called after cleanup if the actor had started and no BaseException
            propagates (a failed start is reported to whoever started it, once).
        notify_failed_start: call `on_exit` for a failed start too (an actor started without a handshake,
            whose start nobody waits for).
        task_status: reports the actor's ref once `on_start` has returned, or None if the start failed.
    """
    scope = context._kill_scope
    if context.start_timeout is not None and context.start_timeout != math.inf:
        scope.deadline = trio.current_time() + context.start_timeout
    # Held only until used: a TaskStatus pins the temporary nursery of `nursery.start` (~1 KB an actor).
    status = [task_status]
    del task_status

    def started() -> None:
        scope.deadline = math.inf
        context.started = True
        context.started_at = trio.current_time()
        context.state = "running"
        status.pop().started(context.ref)

    actor = context.actor
    propagating: BaseException | None = None
    try:
        with scope:
            # Plain actors skip the `_main` and `run` frames: an idle actor is mostly its suspended frames.
            if type(actor)._main is not Actor._main:
                await actor._main(started)
            else:
                await actor.on_start()
                started()
                del started  # not held while the actor runs: an idle actor keeps only what it needs
                if type(actor).run is Actor.run:
                    await context.serve_mailbox()
                else:
                    await actor.run()
        reason = _returned(context, scope)
    except Exception as exc:
        reason = ExitReason.crashed(exc)
    except BaseException as exc:
        # A parent's cancellation or a KeyboardInterrupt goes on up; errors mixed into the same group are
        # still this actor's crash, so they are reported rather than carried off unnoticed.
        errors, propagating = exc.split(Exception) if isinstance(exc, BaseExceptionGroup) else (None, exc)
        reason = ExitReason.crashed(errors) if errors is not None else ExitReason(ExitKind.KILLED, exc)
    try:
        reason = await context._cleanup(reason)
        if reason.kind is ExitKind.CRASHED:
            logger.error("%s crashed", context.path, exc_info=reason.error)
    finally:
        context._notify(reason)
        if propagating is None and on_exit is not None and (context.started or notify_failed_start):
            on_exit(context, reason)
    if propagating is not None:
        raise propagating
    if status:
        status.pop().started(None)
    return reason
