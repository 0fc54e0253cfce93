"""Fault injection: wrap any actor so it crashes, hangs or starts slowly on cue."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import trio

from .._actor import Actor
from .._exit import ExitReason
from .._system import ActorFactory, _instantiate

__all__ = ["FaultyActor", "InjectedFault", "crash_on_nth", "fail_start", "hang_on_stop", "slow_start"]


class InjectedFault(Exception):
    """The error a fault-injected actor raises."""


class FaultyActor(Actor):
    """Behaves as `inner` except for the injected faults.

    Args:
        inner: the actor to wrap (class, factory or instance); a do-nothing actor by default.
        crash_on: raise `InjectedFault` on this message number (1-based) instead of handling it.
        start_delay: sleep this long in `on_start` (a slow start).
        start_error: raise this from `on_start` (a start that fails).
        hang_on_stop: ignore stop requests; only a kill ends it.
    """

    def __init__(
        self,
        inner: ActorFactory | None = None,
        *,
        crash_on: int | None = None,
        start_delay: float = 0.0,
        start_error: BaseException | None = None,
        hang_on_stop: bool = False,
    ) -> None:
        self.inner = _instantiate(inner) if inner is not None else Actor()
        self.crash_on = crash_on
        self.start_delay = start_delay
        self.start_error = start_error
        self.hang_on_stop = hang_on_stop
        self.received = 0

    async def on_start(self) -> None:
        self.inner.context = self.context
        if self.start_delay:
            await trio.sleep(self.start_delay)
        if self.start_error is not None:
            raise self.start_error
        await self.inner.on_start()

    async def receive(self, message: Any) -> Any:
        self.received += 1
        if self.crash_on is not None and self.received == self.crash_on:
            raise InjectedFault(f"{self.context.path}: injected crash on message {self.received}")
        return await self.inner.receive(message)

    async def run(self) -> None:
        await self.context.serve_mailbox()
        if self.hang_on_stop:
            await trio.sleep_forever()

    async def on_stop(self, reason: ExitReason) -> None:
        await self.inner.on_stop(reason)


def crash_on_nth(n: int, inner: ActorFactory | None = None) -> Callable[[], FaultyActor]:
    """A factory of actors that crash on their `n`th message (each incarnation counts from 1)."""
    return lambda: FaultyActor(inner, crash_on=n)


def hang_on_stop(inner: ActorFactory | None = None) -> Callable[[], FaultyActor]:
    """A factory of actors that ignore stop requests."""
    return lambda: FaultyActor(inner, hang_on_stop=True)


def slow_start(delay: float, inner: ActorFactory | None = None) -> Callable[[], FaultyActor]:
    """A factory of actors whose `on_start` takes `delay` seconds."""
    return lambda: FaultyActor(inner, start_delay=delay)


def fail_start(
    error: BaseException | None = None, inner: ActorFactory | None = None
) -> Callable[[], FaultyActor]:
    """A factory of actors whose `on_start` raises `error` (an `InjectedFault` by default)."""
    return lambda: FaultyActor(inner, start_error=error or InjectedFault("injected start failure"))
