"""Significant children and auto-shutdown (a per-connection group ends when its significant member ends)."""

from __future__ import annotations

import pytest
from helpers import Log, Worker

from actors import ActorSystem, ExitReason
from supervisors import AutoShutdown, ChildSpec, Restart, Strategy, Supervisor, which_children


def group(
    log: Log, mode: AutoShutdown, *significant: str, strategy: Strategy = Strategy.ONE_FOR_ONE
) -> Supervisor:
    children = [
        ChildSpec(id=i, start=lambda i=i: Worker(i, log), restart=Restart.TRANSIENT, significant=True)
        for i in significant
    ]
    children.append(ChildSpec(id="helper", start=lambda: Worker("helper", log)))
    return Supervisor(children, strategy=strategy, auto_shutdown=mode, intensity=5)


async def tell(sup, child_id: str, message: str) -> None:
    ref = next(c.ref for c in await which_children(sup) if c.id == child_id)
    assert ref is not None
    await ref.tell(message)


async def test_any_significant_ends_the_group(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(group(log, AutoShutdown.ANY_SIGNIFICANT, "conn"))
    await tell(sup, "conn", "finish")
    assert await sup.join() == ExitReason.SHUTDOWN
    assert log[-1] == ("stop", "helper", "shutdown")


async def test_all_significant_waits_for_every_significant_child(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(group(log, AutoShutdown.ALL_SIGNIFICANT, "up", "down"))
    await tell(sup, "up", "finish")
    await which_children(sup)
    assert sup.is_alive
    await tell(sup, "down", "finish")
    assert await sup.join() == ExitReason.SHUTDOWN


async def test_crashed_transient_significant_child_is_restarted_not_shut_down(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(group(log, AutoShutdown.ANY_SIGNIFICANT, "conn"))
    await tell(sup, "conn", "crash")
    await which_children(sup)
    assert sup.is_alive and log.count("start", "conn") == 2


async def test_sibling_caused_exit_does_not_trigger_auto_shutdown(
    actor_system: ActorSystem, log: Log
) -> None:
    # The helper's crash makes one_for_all stop "conn" too; that exit is the supervisor's doing.
    sup = await actor_system.spawn(
        group(log, AutoShutdown.ANY_SIGNIFICANT, "conn", strategy=Strategy.ONE_FOR_ALL)
    )
    await tell(sup, "helper", "crash")
    children = await which_children(sup)
    assert sup.is_alive
    assert [(c.id, c.state) for c in children] == [("conn", "running"), ("helper", "running")]
    assert log.count("start", "conn") == 2


async def test_never_keeps_running(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(group(log, AutoShutdown.NEVER, "conn"))
    await tell(sup, "conn", "finish")
    [conn, _] = await which_children(sup)
    assert conn.state == "stopped" and sup.is_alive


def test_permanent_child_cannot_be_significant() -> None:
    with pytest.raises(ValueError, match="significant"):
        ChildSpec(id="x", start=Worker, significant=True)
