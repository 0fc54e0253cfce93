"""DynamicSupervisor: many children of one spec, started on demand."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers import Log, Worker

from actors import Actor, ActorSystem, ExitKind, StartFailed
from actors.testing import fail_start
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Restart,
    SupervisorError,
    count_children,
    start_child,
    start_child_soon,
    supervisor_statistics,
    terminate_child,
    which_children,
)


async def test_temporary_children_that_crash_are_dropped_and_never_restarted(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(
            ChildSpec(id="conn", start=lambda n: Worker(f"c{n}", log), restart=Restart.TEMPORARY), intensity=1
        )
    )
    refs = [await start_child(sup, n) for n in range(50)]
    for n, ref in enumerate(refs):
        if n % 10 == 9:
            await ref.tell("crash")
    for n, ref in enumerate(refs):
        if n % 10 == 9:
            assert (await ref.join()).kind is ExitKind.CRASHED
    counts = await count_children(sup)
    assert (counts.specs, counts.active, counts.workers, counts.supervisors) == (45, 45, 45, 0)
    stats = await supervisor_statistics(sup)
    assert (stats.crashes, stats.restarts) == (5, 0)
    assert sum(1 for e in log if e[0] == "start") == 50
    assert sup.is_alive  # five crashes, intensity 1: temporary children never count


async def test_permanent_dynamic_children_restart_with_their_arguments(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(ChildSpec(id="w", start=lambda n: Worker(f"w{n}", log)), intensity=3)
    )
    ref = await start_child(sup, 7)
    await ref.tell("crash")
    await ref.join()
    [child] = await which_children(sup)
    assert child.ref is not None and child.ref is not ref
    assert await child.ref.ask("hello") == ("w7", "hello")
    assert child.id == "w-1" and child.restarts == 1


async def test_max_children_and_terminate(actor_system: ActorSystem, log: Log) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(
            ChildSpec(id="w", start=lambda n: Worker(f"w{n}", log), restart=Restart.TEMPORARY), max_children=2
        )
    )
    first = await start_child(sup, 1)
    await start_child(sup, 2)
    with pytest.raises(SupervisorError, match="max_children"):
        await start_child(sup, 3)
    reason = await terminate_child(sup, first)
    assert reason.kind is ExitKind.SHUTDOWN
    assert (await count_children(sup)).active == 1
    await start_child(sup, 3)


async def test_start_failure_is_returned_to_the_caller(actor_system: ActorSystem) -> None:
    sup = await actor_system.spawn(DynamicSupervisor(ChildSpec(id="w", start=fail_start())))
    with pytest.raises(StartFailed):
        await start_child(sup)
    assert (await count_children(sup)).specs == 0
    assert sup.is_alive


async def test_shutdown_drains_all_children_concurrently(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(
            ChildSpec(id="w", start=lambda n: Worker(f"w{n}", log, stop_delay=1.0), shutdown=2.0)
        )
    )
    for n in range(100):
        await start_child(sup, n)
    await sup.stop()
    # One shared grace period, not one per child.
    assert trio.current_time() == 1.0
    assert sum(1 for e in log if e[0] == "stop" and e[2] == "shutdown") == 100


async def test_shutdown_kills_stragglers_at_the_shared_deadline(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    class Stubborn(Actor):
        async def run(self) -> None:
            await trio.sleep_forever()

    sup = await actor_system.spawn(DynamicSupervisor(ChildSpec(id="s", start=Stubborn, shutdown=2.0)))
    refs = [await start_child(sup) for _ in range(10)]
    await sup.stop()
    assert trio.current_time() == 2.0
    assert all(ref.exit_reason is not None and ref.exit_reason.kind is ExitKind.KILLED for ref in refs)


async def test_start_child_soon_starts_without_a_handshake_and_reports_refusals(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(
            ChildSpec(id="w", start=lambda n: Worker(f"w{n}", log), restart=Restart.TEMPORARY), max_children=2
        )
    )
    refused: list[int] = []
    for n in range(3):
        await start_child_soon(sup, n, on_refused=lambda n=n: refused.append(n))
    counts = await count_children(sup)  # the three requests were handled before this ask
    assert (counts.specs, counts.active) == (2, 2)
    assert refused == [2]
    await trio.testing.wait_all_tasks_blocked()  # no handshake: the children start on their own
    assert sorted(e[1] for e in log if e[0] == "start") == ["w0", "w1"]
    await sup.stop()
    await start_child_soon(sup, 9, on_refused=lambda: refused.append(9))
    assert refused == [2, 9]


async def test_a_soon_started_child_that_fails_to_start_is_reported_as_its_exit(
    actor_system: ActorSystem,
) -> None:
    sup = await actor_system.spawn(
        DynamicSupervisor(ChildSpec(id="w", start=fail_start(), restart=Restart.TEMPORARY))
    )
    await start_child_soon(sup)
    await trio.testing.wait_all_tasks_blocked()
    stats = await supervisor_statistics(sup)
    assert (stats.children, stats.crashes, stats.restarts) == (0, 1, 0)
    assert sup.is_alive
