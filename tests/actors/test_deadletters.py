"""Dead letters: counted per (target, message type), logged at a bounded rate."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio

from actors import Actor, ActorSystem, DeadLetter, DeadLetters


async def test_messages_to_an_exited_actor_are_counted(actor_system: ActorSystem) -> None:
    ref = await actor_system.spawn(Actor, name="gone")
    await ref.stop()
    for _ in range(3):
        await ref.tell("late")
    ref.tell_nowait(1)
    assert actor_system.dead_letters.count("/gone") == 4
    assert actor_system.dead_letters.count("/gone", str) == 3
    assert actor_system.dead_letters.count(message_type=int) == 1


async def test_dead_letter_log_is_rate_limited(caplog: pytest.LogCaptureFixture, autojump_clock: Any) -> None:
    letters = DeadLetters()
    seen: list[DeadLetter] = []
    letters.listeners.append(seen.append)
    with caplog.at_level(logging.INFO, logger="actorproxy.deadletters"):
        for n in range(100):
            letters.record("/x", n, "test")
        await trio.sleep(11)
        letters.record("/x", "after", "test")
    lines = [r.getMessage() for r in caplog.records]
    assert sum("dead letter to /x" in line for line in lines) == 11
    assert "90 more dead letters were not logged" in lines
    assert letters.total == 101 and len(seen) == 101
