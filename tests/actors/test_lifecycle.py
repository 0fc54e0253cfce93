"""Lifecycle hooks, exit reasons, monitors, timers, statistics and the tree dump."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers import Log, Worker

from actors import (
    Actor,
    ActorExited,
    ActorSystem,
    ExitKind,
    ExitReason,
    StartFailed,
    UnhandledMessage,
    open_actor_system,
)
from actors.testing import TestProbe
from supervisors import ChildRestarted, ChildSpec, Supervisor, which_children


async def test_exit_reasons(actor_system: ActorSystem, log: Log, autojump_clock: Any) -> None:
    class Returns(Actor):
        async def run(self) -> None:
            await trio.sleep(1)

    class Looping(Actor):
        async def run(self) -> None:
            with self.context.cancel_on_stop():
                await trio.sleep_forever()

    assert await (await actor_system.spawn(Returns)).join() == ExitReason.NORMAL
    looping = await actor_system.spawn(Looping)
    assert await looping.stop() == ExitReason.SHUTDOWN  # cancel_on_stop interrupted the sleep
    worker = await actor_system.spawn(lambda: Worker("w", log))
    await worker.tell("crash")
    reason = await worker.join()
    assert reason.kind is ExitKind.CRASHED and str(reason.error) == "w crashed"
    assert log[-1] == ("stop", "w", "crashed")  # on_stop sees the reason


async def test_unhandled_message_crashes_the_actor(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Actor)
    await ref.tell("nobody handles this")
    reason = await ref.join()
    assert isinstance(reason.error, UnhandledMessage)


async def test_failed_start_raises_in_the_spawner_and_runs_no_on_stop(
    actor_system: ActorSystem, log: Log
) -> None:
    class Broken(Worker):
        async def on_start(self) -> None:
            raise OSError("port in use")

    with pytest.raises(StartFailed) as caught:
        await actor_system.spawn(lambda: Broken("b", log))
    assert isinstance(caught.value.__cause__, OSError)
    assert log == []


async def test_monitor_delivers_the_exit_reason_even_after_the_fact(
    actor_system: ActorSystem, log: Log, probe: TestProbe
) -> None:
    ref = await actor_system.spawn(lambda: Worker("w", log))
    ref.monitor(probe.ref)
    await ref.tell("crash")
    exited: ActorExited = await probe.expect(ActorExited)
    assert exited.ref is ref and exited.reason.kind is ExitKind.CRASHED
    ref.monitor(probe.ref)  # already dead: delivered at once
    assert (await probe.expect(ActorExited)).ref is ref
    assert (await probe.expect_terminated(ref)).kind is ExitKind.CRASHED


class Ticker(Actor):
    def __init__(self, log: Log) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.timers.start_periodic("tick", "tick", 1.0)
        self.timers.start_single("once", "once", 2.5)

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError("tick crash")
        if message == "cancel":
            self.timers.cancel("tick")
            return None
        self.log.add(message, "ticker")
        return None


async def test_keyed_timers_fire_on_time_and_die_with_the_incarnation(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="t", start=lambda: Ticker(log))], intensity=5))
    await trio.sleep(3.5)
    assert [(e[0], t) for e, t in zip(log, log.times, strict=True)] == [
        ("tick", 1.0),
        ("tick", 2.0),
        ("once", 2.5),
        ("tick", 3.0),
    ]
    ticker = actor_system.tree()[0].children[0].statistics.path
    assert ticker == f"{sup.path}/t"
    ref = next(iter(c.ref for c in [*(await _children(sup))]))
    await ref.tell("crash")
    await ref.join()
    del log[:], log.times[:]
    await trio.sleep(2.2)  # restarted at 3.5: the old incarnation's timers are gone, the new ones start over
    assert [(e[0], t) for e, t in zip(log, log.times, strict=True)] == [("tick", 4.5), ("tick", 5.5)]
    new = next(iter(c.ref for c in await _children(sup)))
    await new.tell("cancel")
    del log[:], log.times[:]
    await trio.sleep(5)
    assert log == [("once", "ticker")]


async def _children(sup: Any) -> list[Any]:
    return await which_children(sup)


async def test_statistics_and_tree_dump(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log))]), name="root"
    )
    [child] = await _children(sup)
    assert child.ref is not None
    for n in range(5):
        await child.ref.ask(n)
    stats = child.ref.statistics()
    assert (stats.processed, stats.restarts, stats.state, stats.actor_type) == (5, 0, "running", "Worker")
    dump = actor_system.dump_tree()
    assert "/root [Supervisor] running" in dump
    assert "  /root/w [Worker] running mailbox=0/1024 peak=1 processed=5 restarts=0" in dump


async def test_started_at_is_when_the_incarnation_started(
    actor_system: ActorSystem, log: Log, probe: TestProbe, autojump_clock: Any
) -> None:
    await trio.sleep(3)
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log))]), name="root"
    )
    [child] = await _children(sup)
    assert child.ref is not None
    assert child.ref.statistics().started_at == 3.0
    await trio.sleep(2)
    actor_system.events.subscribe(probe.ref, ChildRestarted)
    await child.ref.tell("crash")
    restarted: ChildRestarted = await probe.expect(ChildRestarted)
    stats = restarted.ref.statistics()
    # A restart is a new incarnation: its uptime starts again.
    assert stats.restarts == 1
    assert stats.started_at is not None and stats.started_at >= 5.0


async def test_leaving_the_system_block_by_an_error_still_drains(log: Log) -> None:
    with pytest.RaisesGroup(pytest.RaisesExc(RuntimeError, match="test body failed")):
        async with open_actor_system() as system:
            await system.spawn(lambda: Worker("w", log))
            raise RuntimeError("test body failed")
    assert log[-1] == ("stop", "w", "shutdown")


async def test_cancelling_the_system_is_a_fast_shutdown(log: Log, autojump_clock: Any) -> None:
    with trio.move_on_after(1):
        async with open_actor_system() as system:
            await system.spawn(lambda: Worker("w", log, stop_delay=0.5))
            await trio.sleep_forever()
    assert log[-1] == ("stop", "w", "killed")
    assert trio.current_time() == 1.5  # on_stop still ran, shielded
