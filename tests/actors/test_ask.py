"""Ask: replies, handler errors, timeouts with late replies, dead targets."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import Actor, ActorDead, ActorSystem, AskFailed, AskTimeout, ExitKind


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        if isinstance(message, float):
            await trio.sleep(message)
            return "late"
        if message == "boom":
            raise KeyError("boom")
        return message


async def test_reply_is_the_handler_return_value(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo)
    assert await ref.ask("hi") == "hi"
    assert await ref.ask(42, timeout=None) == 42


async def test_handler_error_is_raised_in_the_caller_with_the_actor_path(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Echo, name="echo")
    with pytest.raises(AskFailed, match="/echo") as caught:
        await ref.ask("boom")
    assert isinstance(caught.value.__cause__, KeyError)
    reason = await ref.join()
    assert reason.kind is ExitKind.CRASHED and isinstance(reason.error, KeyError)


async def test_timeout_then_late_reply_is_a_dead_letter_and_the_replier_is_unharmed(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    ref = await actor_system.spawn(Echo, name="slow")
    with pytest.raises(AskTimeout):
        await ref.ask(2.0, timeout=1.0)
    assert trio.current_time() == 1.0
    assert actor_system.dead_letters.total == 0
    assert await ref.ask("still here") == "still here"  # served after the slow handler returned at t=2
    assert trio.current_time() == 2.0
    assert ref.is_alive
    assert actor_system.dead_letters.total == 1
    assert actor_system.dead_letters.count("/slow", str) == 1


async def test_cancelled_asker_also_turns_the_reply_into_a_dead_letter(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    ref = await actor_system.spawn(Echo)
    with trio.move_on_after(0.5):
        await ref.ask(1.0, timeout=None)
    await ref.ask("sync")
    assert actor_system.dead_letters.total == 1


async def test_ask_to_a_stopped_actor_fails_at_once(actor_system: ActorSystem, autojump_clock: Any) -> None:
    ref = await actor_system.spawn(Echo)
    await ref.stop()
    start = trio.current_time()
    with pytest.raises(ActorDead):
        await ref.ask("anyone?", timeout=10)
    assert trio.current_time() == start


async def test_queued_asks_fail_when_the_actor_stops(actor_system: ActorSystem, autojump_clock: Any) -> None:
    ref = await actor_system.spawn(Echo)
    results: dict[Any, Any] = {}

    async def asker(message: Any) -> None:
        try:
            results[message] = await ref.ask(message, timeout=None)
        except ActorDead as exc:
            results[message] = exc

    async with trio.open_nursery() as nursery:
        nursery.start_soon(asker, 1.0)  # in the handler when the stop arrives
        await trio.testing.wait_all_tasks_blocked()
        for n in range(3):
            nursery.start_soon(asker, f"queued {n}")  # queued behind it
        await trio.testing.wait_all_tasks_blocked()
        ref.request_stop()
    assert results.pop(1.0) == "late"
    assert sorted(results) == ["queued 0", "queued 1", "queued 2"] and all(
        isinstance(r, ActorDead) for r in results.values()
    )
    assert trio.current_time() == 1.0
