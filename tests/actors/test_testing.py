"""The shipped test harness: TestProbe expectations and the fault-injection helpers."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import Actor, ActorSystem, ExitKind
from actors.testing import FaultyActor, InjectedFault, TestProbe, crash_on_nth, hang_on_stop, slow_start
from supervisors import ChildSpec, Supervisor, terminate_child, which_children


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


async def test_expect_matches_by_type_predicate_or_value(probe: TestProbe, autojump_clock: Any) -> None:
    for message in (1, "two", 3.0):
        probe.ref.tell_nowait(message)
    assert await probe.expect(int) == 1
    assert await probe.expect(lambda m: m.startswith("t")) == "two"
    assert await probe.expect(3.0) == 3.0


async def test_expect_fails_on_another_message_or_on_timeout(probe: TestProbe, autojump_clock: Any) -> None:
    probe.ref.tell_nowait("unexpected")
    with pytest.raises(AssertionError, match="expected"):
        await probe.expect(int)
    with pytest.raises(AssertionError, match="no message within 2 s"):
        await probe.expect(int, timeout=2)
    assert trio.current_time() == 2


async def test_expect_can_skip_other_messages(probe: TestProbe) -> None:
    for message in ("a", "b", 7):
        probe.ref.tell_nowait(message)
    assert await probe.expect(int, ignore_others=True) == 7


async def test_expect_no_message(probe: TestProbe, autojump_clock: Any) -> None:
    await probe.expect_no_message(5)
    assert trio.current_time() == 5
    probe.ref.tell_nowait("late")
    with pytest.raises(AssertionError, match="expected no message"):
        await probe.expect_no_message(1)


async def test_probe_answers_asks(probe: TestProbe) -> None:
    async with trio.open_nursery() as nursery:
        answers: list[Any] = []

        async def asker() -> None:
            answers.append(await probe.ref.ask("question"))

        nursery.start_soon(asker)
        assert await probe.expect("question") == "question"
        probe.reply(42)
    assert answers == [42]


async def test_crash_on_nth_crashes_each_incarnation_on_that_message(
    actor_system: ActorSystem, probe: TestProbe
) -> None:
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="c", start=crash_on_nth(3, Echo))], intensity=5))
    [child] = await which_children(sup)
    assert child.ref is not None
    assert await child.ref.ask("one") == "one"
    assert await child.ref.ask("two") == "two"
    await child.ref.tell("three")
    reason = await probe.expect_terminated(child.ref)
    assert reason.kind is ExitKind.CRASHED and isinstance(reason.error, InjectedFault)
    [restarted] = await which_children(sup)
    assert restarted.restarts == 1 and restarted.ref is not None
    assert await restarted.ref.ask("one again") == "one again"  # the count starts over


async def test_hang_on_stop_is_killed_at_the_grace_deadline(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="h", start=hang_on_stop(Echo), shutdown=4.0)]))
    reason = await terminate_child(sup, "h")
    assert reason.kind is ExitKind.KILLED
    assert trio.current_time() == 4.0


async def test_slow_start_delays_started(actor_system: ActorSystem, autojump_clock: Any) -> None:
    ref = await actor_system.spawn(slow_start(2.5, Echo))
    assert trio.current_time() == 2.5
    assert await ref.ask("up") == "up"
    assert isinstance(ref._context.actor, FaultyActor)
