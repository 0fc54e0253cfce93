"""Restart types: permanent, transient and temporary, with OTP's normal-exit rules."""

from __future__ import annotations

from helpers import Log, Worker

from actors import ActorSystem, ExitKind, ExitReason
from supervisors import ChildSpec, Restart, Supervisor, supervisor_statistics, which_children


async def send(sup, child_id: str, message: str) -> None:
    ref = next(c.ref for c in await which_children(sup) if c.id == child_id)
    await ref.tell(message)
    await ref.join()
    await which_children(sup)


async def supervise(system: ActorSystem, log: Log, restart: Restart):
    return await system.spawn(
        Supervisor([ChildSpec(id="w", start=lambda: Worker("w", log), restart=restart)], intensity=10)
    )


async def test_permanent_is_restarted_after_a_normal_exit(actor_system: ActorSystem, log: Log) -> None:
    sup = await supervise(actor_system, log, Restart.PERMANENT)
    await send(sup, "w", "finish")
    assert log.count("stop", "w", "normal") == 1
    assert log.count("start", "w") == 2
    await send(sup, "w", "crash")
    assert log.count("start", "w") == 3


async def test_transient_is_restarted_only_after_a_crash(actor_system: ActorSystem, log: Log) -> None:
    sup = await supervise(actor_system, log, Restart.TRANSIENT)
    await send(sup, "w", "crash")
    assert log.count("start", "w") == 2
    await send(sup, "w", "finish")
    assert log.count("start", "w") == 2
    [child] = await which_children(sup)
    assert (child.state, child.ref) == ("stopped", None)  # the spec stays, as in OTP


async def test_transient_stopped_on_request_is_not_restarted(actor_system: ActorSystem, log: Log) -> None:
    sup = await supervise(actor_system, log, Restart.TRANSIENT)
    [child] = await which_children(sup)
    assert child.ref is not None
    assert await child.ref.stop() == ExitReason.SHUTDOWN
    await which_children(sup)
    assert log.count("start", "w") == 1


async def test_temporary_is_never_restarted_and_leaves_which_children(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await supervise(actor_system, log, Restart.TEMPORARY)
    await send(sup, "w", "crash")
    assert log.count("start", "w") == 1
    assert await which_children(sup) == []
    stats = await supervisor_statistics(sup)
    assert (stats.crashes, stats.restarts) == (1, 0)


def test_exit_reason_normality() -> None:
    assert ExitReason.NORMAL.is_normal and ExitReason.SHUTDOWN.is_normal
    assert not ExitReason.KILLED.is_normal
    assert not ExitReason.crashed(ValueError()).is_normal
    assert Restart.TRANSIENT.should_restart(ExitReason(ExitKind.KILLED))
