"""Counter: an actor that owns a number; tells change it, asks read it, and an ask can time out.

Run it with `python examples/counter.py`.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actors import Actor, ActorRef, AskTimeout, open_actor_system


@attrs.frozen
class Increment:
    """Add `by` to the count (told: nobody waits for it)."""

    by: int = 1


@attrs.frozen
class GetCount:
    """Answer with the count."""


@attrs.frozen
class Stall:
    """Sleep `seconds`, then answer with the count: a handler slower than its caller's patience."""

    seconds: float


class CounterActor(Actor):
    """Holds a count that only its own handlers touch, one message at a time."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Increment):
            self.count += message.by
            return None
        if isinstance(message, GetCount):
            return self.count
        if isinstance(message, Stall):
            await trio.sleep(message.seconds)
            return self.count
        return await super().receive(message)


async def increment(counter: ActorRef, by: int = 1) -> None:
    """Add `by` to `counter` without waiting for it to be applied."""
    await counter.tell(Increment(by))


async def get_count(counter: ActorRef) -> int:
    """The count of `counter`, once every message sent to it before this one has been handled."""
    count: int = await counter.ask(GetCount())
    return count


async def main() -> int:
    """Count to 6, show an ask timing out, and return the final count."""
    async with open_actor_system("counter") as system:
        counter = await system.spawn(CounterActor, name="counter")
        for by in (1, 2, 3):
            await increment(counter, by)
        # One sender's messages arrive in order, so this ask sees all three increments.
        print(f"count after +1 +2 +3: {await get_count(counter)}")

        try:
            await counter.ask(Stall(0.05), timeout=0.01)
        except AskTimeout as exc:
            print(f"ask timed out: {exc}")
        # The stalled handler still finishes; its reply, with nobody waiting, becomes a dead letter.
        count = await get_count(counter)
        print(f"final count: {count}; dead letters: {system.dead_letters.count(counter.path)}")
    return count


if __name__ == "__main__":
    trio.run(main)
