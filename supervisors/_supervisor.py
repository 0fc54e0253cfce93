"""`Supervisor`: a fixed, ordered list of children under one restart strategy."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from actors import StartFailed

from ._base import Child, SupervisorBase
from ._messages import DeleteChild, Failure, RestartChild, StartChild, SupervisorError, TerminateChild
from ._spec import AutoShutdown, ChildSpec, Restart, Strategy

__all__ = ["Supervisor"]


class Supervisor(SupervisorBase):
    """Starts `children` in order and keeps them running by `strategy`.

    Args:
        children: the child specs, in start order (ids must be unique).
        strategy: one_for_one, one_for_all or rest_for_one.
        intensity: restarts allowed within `period` seconds before the supervisor gives up (OTP: 1).
        period: the window of `intensity`, seconds (OTP: 5).
        auto_shutdown: end the supervisor when its significant children end.
    """

    def __init__(
        self,
        children: Sequence[ChildSpec] = (),
        *,
        strategy: Strategy = Strategy.ONE_FOR_ONE,
        intensity: int = 1,
        period: float = 5.0,
        auto_shutdown: AutoShutdown = AutoShutdown.NEVER,
    ) -> None:
        super().__init__(intensity=intensity, period=period, auto_shutdown=auto_shutdown)
        ids = [spec.id for spec in children]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"duplicate child ids: {', '.join(duplicates)}")
        self.strategy = strategy
        self.specs = tuple(children)
        self._list: list[Child] = []

    def _children(self) -> Iterable[Child]:
        return self._list

    def _find(self, child_id: str) -> Child | None:
        return next((c for c in self._list if c.id == child_id), None)

    def _forget(self, child: Child) -> None:
        if child in self._list:
            self._list.remove(child)

    async def _start_initial(self) -> None:
        self._list = []
        for spec in self.specs:
            child = Child(spec, spec.id)
            self._list.append(child)
            try:
                await self._start(child)
            except StartFailed as exc:
                self._list.remove(child)
                await self._terminate_all()
                raise StartFailed(self.context.path, f"child {spec.id!r} failed to start") from exc

    async def _restart(self, child: Child) -> None:
        if self.strategy is Strategy.ONE_FOR_ONE:
            await self._restart_group(child, [child])
            return
        index = self._list.index(child)
        affected = self._list if self.strategy is Strategy.ONE_FOR_ALL else self._list[index:]
        for other in reversed(list(affected)):
            if other is not child:
                await self._terminate(other)
        # OTP: temporary children stopped for a sibling's restart are not started again.
        for other in list(affected):
            if other is not child and other.spec.restart is Restart.TEMPORARY:
                self._list.remove(other)
        index = self._list.index(child)
        group = list(self._list) if self.strategy is Strategy.ONE_FOR_ALL else self._list[index:]
        await self._restart_group(child, group)

    async def _handle_command(self, message: Any) -> Any:
        if isinstance(message, StartChild):
            spec = message.spec
            if spec is None:
                return Failure(SupervisorError("start_child on a Supervisor takes a ChildSpec"))
            if self._find(spec.id) is not None:
                return Failure(SupervisorError(f"{self.context.path}: child {spec.id!r} already exists"))
            child = Child(spec, spec.id)
            self._list.append(child)
            try:
                return await self._start(child)
            except StartFailed as exc:
                self._list.remove(child)
                return Failure(exc)
        if isinstance(message, TerminateChild | RestartChild | DeleteChild):
            child_id = message.child if isinstance(message, TerminateChild) else message.child_id
            found = self._find(child_id) if isinstance(child_id, str) else None
            if found is None:
                return Failure(SupervisorError(f"{self.context.path}: no child {child_id!r}"))
            child = found
            if isinstance(message, TerminateChild):
                self.timers.cancel(("restart", child.id))
                reason = await self._terminate(child)
                if child.spec.restart is Restart.TEMPORARY:
                    self._forget(child)
                return reason
            if child.context is not None:
                return Failure(SupervisorError(f"{self.context.path}: child {child_id!r} is running"))
            if isinstance(message, DeleteChild):
                self.timers.cancel(("restart", child.id))
                self._forget(child)
                return None
            try:
                return await self._start(child)
            except StartFailed as exc:
                return Failure(exc)
        return Failure(SupervisorError(f"{self.context.path} does not handle {type(message).__name__}"))
