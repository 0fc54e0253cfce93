"""The actor system: the root of the tree, its registry, dead letters and event stream.

Rules:
- `open_actor_system()` owns the one nursery that top-level actors run in (the system is the root
  supervisor: its children are temporary and never restarted). Leaving the block normally drains every
  top-level actor, last spawned first, each with its shutdown grace; leaving it by a BaseException
  (cancellation, KeyboardInterrupt) cancels them at once, as a fast shutdown.
- `new_context` + `start_in` are the two steps every spawner uses, supervisors included: build the
  incarnation (the name is claimed here, synchronously), then start it as a task of some nursery and wait
  until its `on_start` has returned.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial

import trio

from ._actor import Actor
from ._context import ActorContext, ExitCallback, run_actor
from ._deadletters import DeadLetters
from ._errors import StartFailed
from ._events import EventStream
from ._exit import ExitKind, ExitReason
from ._mailbox import MailboxConfig
from ._ref import ActorRef
from ._registry import Registry
from ._statistics import TreeNode

__all__ = ["ActorFactory", "ActorSystem", "open_actor_system"]

logger = logging.getLogger("actorproxy.system")

ActorFactory = type[Actor] | Callable[[], Actor] | Actor


def _instantiate(factory: ActorFactory) -> Actor:
    actor = factory if isinstance(factory, Actor) else factory()
    if not isinstance(actor, Actor):
        raise TypeError(f"an actor factory must return an Actor, got {actor!r}")
    return actor


def _start_failure(context: ActorContext) -> StartFailed:
    reason = context.exit_reason
    assert reason is not None
    if isinstance(reason.error, StartFailed) and reason.error.path == context.path:
        return reason.error  # already says which actor failed (a supervisor naming its child)
    failure = StartFailed(context.path, str(reason))
    failure.__cause__ = reason.error
    return failure


class ActorSystem:
    """Spawns top-level actors and holds what all actors share. Create with `open_actor_system()`."""

    def __init__(self, nursery: trio.Nursery, name: str = "actorproxy") -> None:
        self.name = name
        self.registry = Registry()
        self.dead_letters = DeadLetters()
        self.events = EventStream()
        self._nursery = nursery
        self._top: dict[ActorContext, float] = {}
        self._ids = itertools.count(1)
        self._closing = False

    def __repr__(self) -> str:
        return f"<ActorSystem {self.name} top-level={len(self._top)}>"

    # -- building and starting incarnations ------------------------------------------------------------------

    def new_context(
        self,
        factory: ActorFactory,
        *,
        path: str | None = None,
        name: str | None = None,
        parent: ActorContext | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        restarts: int = 0,
        last_exit_reason: ExitReason | None = None,
    ) -> ActorContext:
        """Build (not start) one incarnation of the actor `factory` makes; claims `name` now.

        Raises:
            NameTaken: a live actor holds `name`.
        """
        actor = _instantiate(factory)
        if path is None:
            leaf = name or f"{type(actor).__name__}-{next(self._ids)}"
            path = f"{parent.path if parent else ''}/{leaf}"
        if start_timeout is None:
            start_timeout = actor.start_timeout
        context = ActorContext(
            self,
            actor,
            path,
            name=name,
            parent=parent,
            mailbox=mailbox,
            start_timeout=start_timeout,
            restarts=restarts,
            last_exit_reason=last_exit_reason,
        )
        if name is not None:
            self.registry.register(name, context)
        return context

    async def start_in(
        self, nursery: trio.Nursery, context: ActorContext, on_exit: ExitCallback | None = None
    ) -> ActorRef:
        """Run `context` as a task of `nursery` and return its ref once `on_start` has returned.

        Raises:
            StartFailed: `on_start` raised (the `__cause__`) or timed out (StartTimeout as the cause).
        """
        await nursery.start(run_actor, context, on_exit)
        if not context.started:
            raise _start_failure(context)
        return context.ref

    def start_soon_in(
        self, nursery: trio.Nursery, context: ActorContext, on_exit: ExitCallback | None = None
    ) -> ActorRef:
        """Run `context` as a task of `nursery` without waiting for its `on_start`.

        For actors started in bulk on a hot path (one per accepted connection): no start handshake. A start
        that fails is reported through `on_exit`, like any other exit.
        """
        # `run_actor` itself, not a wrapper around it: an idle actor is mostly its suspended frames.
        nursery.start_soon(partial(run_actor, notify_failed_start=True), context, on_exit)
        return context.ref

    # -- top-level actors ----------------------------------------------------------------------------------

    async def spawn(
        self,
        factory: ActorFactory,
        *,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        shutdown_timeout: float | None = None,
    ) -> ActorRef:
        """Start a top-level actor and return its ref once it has started.

        Args:
            factory: an Actor subclass, a callable returning an Actor, or an Actor instance.
            name: register the actor under this name (unique while it lives).
            mailbox: capacity and overflow policy; 1,024 messages with BLOCK by default.
            start_timeout: seconds `on_start` may take (inf: no limit); None lets the actor class decide.
            shutdown_timeout: grace at system shutdown before the actor is killed; 0 kills at once.

        Raises:
            NameTaken: `name` is in use.
            StartFailed: the actor failed to start.
        """
        if self._closing:
            raise RuntimeError("the actor system is shutting down")
        context = self.new_context(factory, name=name, mailbox=mailbox, start_timeout=start_timeout)
        self._top[context] = context.actor.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        return await self.start_in(self._nursery, context, self._top_exited)

    async def run(
        self,
        factory: ActorFactory,
        *,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        shutdown_timeout: float | None = None,
        task_status: trio.TaskStatus[ActorRef] = trio.TASK_STATUS_IGNORED,
    ) -> ExitReason:
        """Run a top-level actor in the calling task until it exits (use with `nursery.start` for its ref).

        The caller is the actor's parent: a crash (a supervisor's escalation, say) is raised here.

        Raises:
            StartFailed: the actor failed to start.
            Exception: the error the actor crashed with.
        """
        context = self.new_context(factory, name=name, mailbox=mailbox, start_timeout=start_timeout)
        self._top[context] = context.actor.shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        try:
            reason = await run_actor(context, None, task_status=task_status)
        finally:
            self._top.pop(context, None)
        if not context.started:
            raise _start_failure(context)
        if reason.kind is ExitKind.CRASHED:
            assert reason.error is not None
            raise reason.error
        return reason

    def _top_exited(self, context: ActorContext, reason: ExitReason) -> None:
        self._top.pop(context, None)

    def whereis(self, name: str) -> ActorRef | None:
        """The running actor registered as `name`, or None."""
        return self.registry.whereis(name)

    def top_level(self) -> list[ActorRef]:
        """Running top-level actors in start order."""
        return [context.ref for context in self._top]

    # -- shutdown ------------------------------------------------------------------------------------------

    async def shutdown(self) -> None:
        """Drain the whole tree: stop top-level actors last-started first, each within its grace.

        Supervisors stop their children the same way, so the drain goes top-down. Idempotent.
        """
        self._closing = True
        while self._top:
            context, grace = next(reversed(self._top.items()))
            await context.terminate(grace)
            self._top.pop(context, None)

    def cancel(self) -> None:
        """Cancel every actor at once, with no stop request (what leaving `open_actor_system` by a
        BaseException does); for a drain that has run out of time. Idempotent."""
        self._closing = True
        self._nursery.cancel_scope.cancel()

    # -- introspection -------------------------------------------------------------------------------------

    def tree(self) -> tuple[TreeNode, ...]:
        """The live tree, one node per running actor, with each actor's statistics."""
        return tuple(context.tree() for context in self._top)

    def dump_tree(self) -> str:
        """The live tree as indented text, one actor a line."""
        lines = [f"actor system {self.name!r}"]
        for node in self.tree():
            lines.extend(node.render(1))
        return "\n".join(lines)


@asynccontextmanager
async def open_actor_system(name: str = "actorproxy") -> AsyncIterator[ActorSystem]:
    """Open an actor system; on exit, drain it gracefully (or cancel it, if leaving by a BaseException)."""
    async with trio.open_nursery() as nursery:
        system = ActorSystem(nursery, name)
        try:
            yield system
        except Exception:
            with trio.CancelScope(shield=True):
                await system.shutdown()
            raise
        except BaseException:
            system._closing = True
            nursery.cancel_scope.cancel()
            raise
        with trio.CancelScope(shield=True):
            await system.shutdown()
        nursery.cancel_scope.cancel()
