"""Failed starts: at init, on restart (retried, counted), and start timeouts."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from helpers import Log, Worker

from actors import ActorSystem, ExitReason, StartFailed, StartTimeout
from actors.testing import slow_start
from supervisors import (
    Backoff,
    ChildRestarted,
    ChildSpec,
    Escalation,
    RestartFailed,
    Supervisor,
    SupervisorEvent,
    which_children,
)


class FlakyStart(Worker):
    """Starts fine the first time; every later start raises."""

    attempts = 0

    async def on_start(self) -> None:
        FlakyStart.attempts += 1
        await super().on_start()
        if FlakyStart.attempts > 1:
            raise OSError("cannot start again")


@pytest.fixture(autouse=True)
def reset_attempts() -> None:
    FlakyStart.attempts = 0


async def crash(sup) -> None:
    [child] = await which_children(sup)
    assert child.ref is not None
    await child.ref.tell("crash")


async def test_failed_restarts_are_retried_and_count_toward_intensity(
    actor_system: ActorSystem, log: Log
) -> None:
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="f", start=lambda: FlakyStart("f", log))], intensity=3)
    )
    await crash(sup)
    reason = await sup.join()
    # 1 crash + 3 failed restart attempts = 4 restarts counted; the 4th exceeds intensity 3.
    assert FlakyStart.attempts == 4
    assert isinstance(reason.error, Escalation)
    assert isinstance(reason.error.__cause__, StartFailed)


async def test_stop_request_is_handled_between_retries(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    spec = ChildSpec(
        id="f", start=lambda: FlakyStart("f", log), backoff=Backoff(min_delay=1.0, max_delay=1.0, jitter=0.0)
    )
    sup = await actor_system.spawn(Supervisor([spec], intensity=1000, period=5))
    await crash(sup)
    await trio.sleep(3.5)
    assert await sup.stop() == ExitReason.SHUTDOWN
    assert trio.current_time() == 3.5
    # Retries at t=1, 2, 3 failed; the stop at 3.5 ended it.
    assert FlakyStart.attempts == 4


async def test_restart_failures_are_published(actor_system: ActorSystem, log: Log, probe: Any) -> None:
    actor_system.events.subscribe(probe.ref, RestartFailed)
    sup = await actor_system.spawn(
        Supervisor([ChildSpec(id="f", start=lambda: FlakyStart("f", log))], intensity=2)
    )
    await crash(sup)
    event: SupervisorEvent = await probe.expect(RestartFailed)
    assert event.supervisor == sup.path
    await sup.join()


async def test_child_that_never_starts_fails_the_supervisor_start_after_its_timeout(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    children = [
        ChildSpec(id="a", start=lambda: Worker("a", log)),
        ChildSpec(id="slow", start=slow_start(60), start_timeout=2.0),
    ]
    with pytest.raises(StartFailed) as caught:
        await actor_system.spawn(Supervisor(children))
    assert trio.current_time() == 2.0
    cause = caught.value.__cause__
    assert isinstance(cause, StartFailed) and isinstance(cause.__cause__, StartTimeout)
    # The child started before it was stopped again.
    assert log == [("start", "a"), ("stop", "a", "shutdown")]


async def test_backoff_delays_restarts(
    actor_system: ActorSystem, log: Log, probe: Any, autojump_clock: Any
) -> None:
    actor_system.events.subscribe(probe.ref, ChildRestarted)
    spec = ChildSpec(
        id="w",
        start=lambda: Worker("w", log),
        backoff=Backoff(min_delay=1.0, max_delay=4.0, jitter=0.0, reset_after=30),
    )
    sup = await actor_system.spawn(Supervisor([spec], intensity=100, period=1000))
    [child] = await which_children(sup)
    ref = child.ref
    restarted_at = []
    for _ in range(4):
        assert ref is not None
        await ref.tell("crash")
        restarted: ChildRestarted = await probe.expect(ChildRestarted, timeout=10)
        restarted_at.append(trio.current_time())
        ref = restarted.ref
    # Doubling from 1 s, capped at 4 s (each crash happens at the instant of the previous restart).
    assert restarted_at == [1.0, 3.0, 7.0, 11.0]
    # After a quiet period longer than reset_after, the delay starts again from min_delay.
    await trio.sleep(30)
    await ref.tell("crash")
    await probe.expect(ChildRestarted, timeout=10)
    assert trio.current_time() == 42.0
