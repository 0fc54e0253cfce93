"""Restart strategies: which children a crash takes down, and in which order they come back."""

from __future__ import annotations

import trio
from helpers import Log, Worker

from actors import ActorSystem
from supervisors import ChildSpec, Restart, Strategy, Supervisor, which_children


def specs(log: Log, *ids: str) -> list[ChildSpec]:
    return [ChildSpec(id=i, start=lambda i=i: Worker(i, log)) for i in ids]


async def child_ref(sup, child_id):
    return next(c.ref for c in await which_children(sup) if c.id == child_id)


async def crash(sup, child_id: str) -> None:
    ref = await child_ref(sup, child_id)
    await ref.tell("crash")
    await ref.join()
    # The restart has happened once the supervisor answers (it handles the exit report first: control lane).
    await which_children(sup)


async def test_one_for_one_restarts_only_the_crashed_child(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(Supervisor(specs(log, "a", "b", "c"), intensity=3, period=5))
    await crash(sup, "b")
    await crash(sup, "b")
    assert (log.count("start", "a"), log.count("start", "b"), log.count("start", "c")) == (1, 3, 1)
    children = await which_children(sup)
    assert [(c.id, c.state, c.restarts) for c in children] == [
        ("a", "running", 0),
        ("b", "running", 2),
        ("c", "running", 0),
    ]
    assert children[1].ref is not None and children[1].ref.statistics().restarts == 2


async def test_rest_for_one_stops_right_to_left_and_restarts_left_to_right(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        Supervisor(specs(log, "pool", "lb", "listener"), strategy=Strategy.REST_FOR_ONE, intensity=3)
    )
    del log[:]
    await crash(sup, "lb")
    assert log == [
        ("stop", "lb", "crashed"),
        ("stop", "listener", "shutdown"),
        ("start", "lb"),
        ("start", "listener"),
    ]
    assert [c.restarts for c in await which_children(sup)] == [0, 1, 1]


async def test_rest_for_one_counts_starts(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(
        Supervisor(specs(log, "pool", "lb", "listener", "admin"), strategy=Strategy.REST_FOR_ONE, intensity=3)
    )
    await crash(sup, "lb")
    assert [log.count("start", i) for i in ("pool", "lb", "listener", "admin")] == [1, 2, 2, 2]
    assert [e for e in log if e[0] == "stop"] == [
        ("stop", "lb", "crashed"),
        ("stop", "admin", "shutdown"),
        ("stop", "listener", "shutdown"),
    ]


async def test_one_for_all_stops_all_in_reverse_then_starts_all_in_order(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        Supervisor(specs(log, "a", "b", "c"), strategy=Strategy.ONE_FOR_ALL, intensity=3)
    )
    del log[:]
    await crash(sup, "b")
    assert log == [
        ("stop", "b", "crashed"),
        ("stop", "c", "shutdown"),
        ("stop", "a", "shutdown"),
        ("start", "a"),
        ("start", "b"),
        ("start", "c"),
    ]


async def test_stale_exit_report_of_a_stopped_sibling_is_ignored(actor_system: ActorSystem, log: Log) -> None:
    # One-for-all stops "a" and "c" itself; their exit reports arrive after the restart and must not cause a
    # second restart round (each would otherwise be started three times).
    sup = await actor_system.spawn(
        Supervisor(specs(log, "a", "b", "c"), strategy=Strategy.ONE_FOR_ALL, intensity=10)
    )
    await crash(sup, "b")
    for _ in range(3):
        await trio.testing.wait_all_tasks_blocked()
        await which_children(sup)
    assert [log.count("start", i) for i in "abc"] == [2, 2, 2]
    assert all(c.restarts == 1 for c in await which_children(sup))


async def test_one_for_all_drops_temporary_siblings(actor_system: ActorSystem, log: Log) -> None:
    children = [
        *specs(log, "a", "b"),
        ChildSpec(id="t", start=lambda: Worker("t", log), restart=Restart.TEMPORARY),
    ]
    sup = await actor_system.spawn(Supervisor(children, strategy=Strategy.ONE_FOR_ALL, intensity=3))
    await crash(sup, "a")
    assert [c.id for c in await which_children(sup)] == ["a", "b"]
    assert log.count("start", "t") == 1
