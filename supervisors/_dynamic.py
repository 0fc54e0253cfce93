"""`DynamicSupervisor`: any number of children of one spec, started on demand (OTP simple_one_for_one).

Listeners use one for their connections. Children have no order: at shutdown every child is asked to stop
at once and all share one grace deadline, so draining 10,000 connections takes one grace period, not 10,000.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

import trio

from actors import StartFailed

from ._base import Child, SupervisorBase
from ._messages import Failure, StartChild, SupervisorError, TerminateChild
from ._spec import ChildSpec

__all__ = ["DynamicSupervisor"]

logger = logging.getLogger("actorproxy.supervisors")


class DynamicSupervisor(SupervisorBase):
    """Starts children of `spec` with `start_child(ref, *args)`; restarts each alone (one_for_one).

    Args:
        spec: the template; `spec.start(*args)` makes each child, `spec.id` prefixes child ids.
        intensity: restarts allowed within `period` seconds before the supervisor gives up.
        period: seconds.
        max_children: refuse `start_child` beyond this many children (None: no limit).
    """

    def __init__(
        self, spec: ChildSpec, *, intensity: int = 1, period: float = 5.0, max_children: int | None = None
    ) -> None:
        super().__init__(intensity=intensity, period=period)
        self.spec = spec
        self.max_children = max_children
        self._by_id: dict[str, Child] = {}
        self._serial = itertools.count(1)

    def _children(self) -> Iterable[Child]:
        return self._by_id.values()

    def _forget(self, child: Child) -> None:
        self._by_id.pop(child.id, None)

    async def _start_initial(self) -> None:
        self._by_id = {}

    async def _restart(self, child: Child) -> None:
        await self._restart_group(child, [child])

    async def _terminate_all(self) -> None:
        children = [c for c in self._by_id.values() if c.context is not None]
        contexts = [c.context for c in children if c.context is not None]
        for child in children:
            child.context = None
        grace = (
            self.spec.shutdown
            if self.spec.shutdown is not None
            else max((c.shutdown for c in children), default=0.0)
        )
        if grace <= 0:
            for context in contexts:
                context.kill()
        else:
            for context in contexts:
                context.request_stop()
            with trio.move_on_after(grace):
                for context in contexts:
                    await context.wait_exit()
            for context in contexts:
                if context.alive:
                    context.kill()
        for child, context in zip(children, contexts, strict=True):
            child.last_reason = await context.wait_exit()

    def _refuse(self, message: StartChild, error: BaseException) -> Failure:
        if message.soon:
            logger.warning("%s: could not start a child: %s", self.context.path, error)
            if message.on_refused is not None:
                message.on_refused()
        return Failure(error)

    async def _handle_command(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            if message.spec is not None:
                return Failure(
                    SupervisorError("start_child on a DynamicSupervisor takes the spec's arguments")
                )
            if self.max_children is not None and len(self._by_id) >= self.max_children:
                error = SupervisorError(f"{self.context.path}: max_children ({self.max_children}) reached")
                return self._refuse(message, error)
            child = Child(self.spec, f"{self.spec.id}-{next(self._serial)}", message.args)
            self._by_id[child.id] = child
            try:
                return self._start_soon(child) if message.soon else await self._start(child)
            except StartFailed as exc:
                self._forget(child)
                return self._refuse(message, exc)
        if isinstance(message, TerminateChild):
            target = message.child
            found = next(
                (
                    c
                    for c in self._by_id.values()
                    if (c.context is not None and c.context.ref is target) or c.id == target
                ),
                None,
            )
            if found is None:
                return Failure(SupervisorError(f"{self.context.path}: no child {target!r}"))
            self.timers.cancel(("restart", found.id))
            reason = await self._terminate(found)
            self._forget(found)
            return reason
        return Failure(SupervisorError(f"{self.context.path} does not handle {type(message).__name__}"))
