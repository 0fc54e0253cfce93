"""Shutdown per child (grace, brutal, infinity), KeyboardInterrupt, and the whole-tree drain."""

from __future__ import annotations

import signal
from typing import Any

import pytest
import trio
from helpers import Log, Worker

from actorproxy.server import shutdown_on_signals
from actorproxy.testing import living_tasks
from actors import Actor, ActorSystem, ExitKind, ExitReason, open_actor_system
from actors.testing import TestProbe
from supervisors import (
    BRUTAL,
    ChildSpec,
    ChildStarted,
    Supervisor,
    SupervisorEvent,
    supervisor_statistics,
    terminate_child,
    which_children,
)


class Stubborn(Actor):
    """Ignores stop requests; when finally cancelled, its shielded cleanup takes 1 s and is recorded."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def run(self) -> None:
        try:
            await trio.sleep_forever()
        finally:
            with trio.CancelScope(shield=True):
                await trio.sleep(1)
                self.log.add("cleaned", "stubborn")


async def test_graceful_child_drains_within_its_grace(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log, stop_delay=1.0), shutdown=2.0)])
    )
    reason = await terminate_child(sup, "w")
    assert reason == ExitReason.SHUTDOWN
    assert trio.current_time() == 1.0
    assert log[-1] == ("stop", "w", "shutdown")


async def test_stubborn_child_is_cancelled_exactly_at_its_deadline_and_cleans_up(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="s", start=lambda: Stubborn(log), shutdown=3.0)]))
    reason = await terminate_child(sup, "s")
    assert reason.kind is ExitKind.KILLED
    # Cancelled at t=3 exactly; its shielded cleanup then took its 1 s.
    assert log == [("cleaned", "stubborn")]
    assert log.times == [4.0]


async def test_brutal_child_is_cancelled_at_once(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log, stop_delay=1.0), shutdown=BRUTAL)])
    )
    reason = await terminate_child(sup, "w")
    assert reason.kind is ExitKind.KILLED
    # on_stop still runs (shielded); it starts at t=0, not after a stop request was waited on.
    assert log[-1] == ("stop", "w", "killed") and log.times[-1] == 1.0


async def test_error_raised_while_being_cancelled_is_reported(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    class FailsWhenCancelled(Actor):
        async def run(self) -> None:
            try:
                await trio.sleep_forever()
            finally:
                raise RuntimeError("cleanup failed")

    sup = await actor_system.spawn(Supervisor([ChildSpec(id="f", start=FailsWhenCancelled, shutdown=1.0)]))
    reason = await terminate_child(sup, "f")
    assert reason.kind is ExitKind.CRASHED
    assert isinstance(reason.error, RuntimeError)


async def test_keyboard_interrupt_propagates_and_is_not_a_restart(log: Log) -> None:
    class Interrupted(Actor):
        async def receive(self, message: Any) -> Any:
            raise KeyboardInterrupt

    seen: dict[str, Any] = {}
    with pytest.RaisesGroup(KeyboardInterrupt, flatten_subgroups=True):
        async with open_actor_system() as system:
            probe = TestProbe(system)
            system.events.subscribe(probe.ref, SupervisorEvent)
            sup = await system.spawn(
                Supervisor(
                    [ChildSpec(id="k", start=Interrupted), ChildSpec(id="w", start=lambda: Worker("w", log))],
                    intensity=5,
                )
            )
            [child, _] = await which_children(sup)
            seen["sup"] = sup
            assert child.ref is not None
            await child.ref.tell("go")
            await trio.sleep_forever()
    sup = seen["sup"]
    assert not sup.is_alive
    assert log.count("start", "w") == 1
    events = [await probe.receive() for _ in range(probe.pending)]
    assert [type(e) for e in events] == [ChildStarted, ChildStarted]  # no crash, no restart


async def test_whole_tree_shutdown_from_sigterm_is_ordered_graceful_and_leaks_nothing(
    log: Log, autojump_clock: Any
) -> None:
    before = living_tasks()

    def branch(name: str) -> Supervisor:
        return Supervisor(
            [
                ChildSpec(id=f"{name}{i}", start=lambda i=i: Worker(f"{name}{i}", log, stop_delay=0.5))
                for i in (1, 2)
            ]
        )

    async with open_actor_system() as system:
        await system.spawn(branch("a"), name="a")
        root = await system.spawn(
            Supervisor(
                [ChildSpec(id="b", start=lambda: branch("b")), ChildSpec(id="c", start=lambda: branch("c"))]
            ),
            name="root",
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(shutdown_on_signals, system)
            await trio.testing.wait_all_tasks_blocked()
            signal.raise_signal(signal.SIGTERM)
        assert not root.is_alive
        assert system.top_level() == []
    stops = [e[1] for e in log if e[0] == "stop"]
    # Last started first, children in reverse order, each drained in its grace (0.5 s each).
    assert stops == ["c2", "c1", "b2", "b1", "a2", "a1"]
    assert all(e[2] == "shutdown" for e in log if e[0] == "stop")
    assert trio.current_time() == pytest.approx(3.0)
    assert living_tasks() == before


async def test_supervisor_statistics_after_shutdown_request(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log))]))
    stats = await supervisor_statistics(sup)
    assert (stats.children, stats.restarts, stats.crashes) == (1, 0, 0)
    assert await sup.stop() == ExitReason.SHUTDOWN
    assert log[-1] == ("stop", "w", "shutdown")
