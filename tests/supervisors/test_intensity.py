"""Restart intensity: the sliding window, escalation with its cause, nesting."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers import Log, Worker

from actorproxy.testing import living_tasks
from actors import Actor, ActorSystem
from supervisors import ChildSpec, Escalation, RestartIntensity, Supervisor, which_children


async def crash(sup, child_id: str) -> None:
    ref = next(c.ref for c in await which_children(sup) if c.id == child_id)
    await ref.tell("crash")
    await ref.join()


async def test_fourth_crash_in_window_stops_siblings_and_escalates_with_the_cause(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    before = living_tasks()
    children = [ChildSpec(id=i, start=lambda i=i: Worker(i, log)) for i in "abc"]
    escalation: list[BaseException] = []

    async def parent(task_status: trio.TaskStatus[Any]) -> None:
        try:
            await actor_system.run(Supervisor(children, intensity=3, period=5), task_status=task_status)
        except Escalation as exc:
            escalation.append(exc)

    async with trio.open_nursery() as nursery:
        sup = await nursery.start(parent)
        for _ in range(3):
            await crash(sup, "b")
            await which_children(sup)
            await trio.sleep(1)
        await crash(sup, "b")
        await sup.join()

    assert log.count("start", "b") == 4
    [error] = escalation
    assert isinstance(error.__cause__, ValueError) and str(error.__cause__) == "b crashed"
    assert error.child_id == "b"
    # Siblings stopped in reverse start order, gracefully.
    assert [e for e in log if e[0] == "stop"][-2:] == [("stop", "c", "shutdown"), ("stop", "a", "shutdown")]
    assert living_tasks() == before


async def test_sliding_window_never_escalates_when_crashes_are_spaced_out(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="b", start=lambda: Worker("b", log))], intensity=1, period=5)
    )
    for _ in range(10):
        await trio.sleep(6)
        await crash(sup, "b")
        await which_children(sup)
    assert trio.current_time() >= 60
    assert sup.is_alive
    assert log.count("start", "b") == 11


async def test_crashes_closer_than_the_period_escalate(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="b", start=lambda: Worker("b", log))], intensity=1, period=5)
    )
    await crash(sup, "b")
    await trio.sleep(5)  # exactly one period apart still shares the window (OTP)
    await crash(sup, "b")
    reason = await sup.join()
    assert isinstance(reason.error, Escalation)


class SelfCrashing(Actor):
    """Crashes one second after each start."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.add("start", "leaf")
        self.timers.start_single("crash", "crash", 1.0)

    async def receive(self, message: Any) -> Any:
        raise ValueError("leaf crashed")


async def test_nested_intensity_starts_the_leaf_six_times_before_the_outer_escalates(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    def inner() -> Supervisor:
        return Supervisor([ChildSpec(id="leaf", start=lambda: SelfCrashing(log))], intensity=2, period=5)

    outer = Supervisor([ChildSpec(id="inner", start=inner)], intensity=1, period=5)
    with pytest.raises(Escalation) as caught:
        await actor_system.run(outer)
    assert log.count("start", "leaf") == 6
    assert trio.current_time() == 6
    inner_escalation = caught.value.__cause__
    assert isinstance(inner_escalation, Escalation)
    assert isinstance(inner_escalation.__cause__, ValueError)


def test_restart_intensity_window_is_inclusive() -> None:
    window = RestartIntensity(2, 5.0)
    assert window.add(0.0) and window.add(1.0)
    assert not window.add(5.0)  # three restarts within [0, 5]
    window = RestartIntensity(2, 5.0)
    assert window.add(0.0) and window.add(1.0) and window.add(5.5)


def test_restart_intensity_rejects_bad_values() -> None:
    with pytest.raises(ValueError):
        RestartIntensity(-1, 5)
    with pytest.raises(ValueError):
        RestartIntensity(1, 0)
