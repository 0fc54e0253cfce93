"""Ping-pong: two actors bounce a ball, each answering with a tell to the ref the message carries.

Run it with `python examples/ping_pong.py`.
"""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actors import Actor, ActorRef, open_actor_system


@attrs.frozen
class Ping:
    """Hit number `n`; answer it with `Pong(n)` to `reply_to`."""

    n: int
    reply_to: ActorRef


@attrs.frozen
class Pong:
    """The answer to `Ping(n)`."""

    n: int


class PongActor(Actor):
    """Answers every `Ping` to whoever sent it."""

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Ping):
            return await super().receive(message)
        print(f"pong {message.n}")
        # The sender's ref travels in the message, so Pong never needs to know who plays against it.
        await message.reply_to.tell(Pong(message.n))
        return None


class PingActor(Actor):
    """Serves `Ping(1)` to `pong`, answers each `Pong` with the next `Ping`, and stops after `rounds`."""

    def __init__(self, pong: ActorRef, rounds: int) -> None:
        self.pong = pong
        self.rounds = rounds
        self.round_trips = 0

    async def run(self) -> None:
        # Serve from `run`, not `on_start`: the actor counts as started only once `on_start` returns.
        await self.pong.tell(Ping(1, self.ref))
        await super().run()

    async def receive(self, message: Any) -> Any:
        if not isinstance(message, Pong):
            return await super().receive(message)
        print(f"ping {message.n}")
        self.round_trips = message.n
        if message.n < self.rounds:
            await self.pong.tell(Ping(message.n + 1, self.ref))
        else:
            # The rally is over: end the mailbox loop after this message, a normal exit.
            self.context.finish()
        return None


async def main(rounds: int = 3) -> int:
    """Play `rounds` round trips and return how many were played."""
    async with open_actor_system("ping-pong") as system:
        pong = await system.spawn(PongActor, name="pong")
        ping = PingActor(pong, rounds)
        ping_ref = await system.spawn(ping, name="ping")
        reason = await ping_ref.join()
    # Reading the actor's state from outside is safe only now that it has exited.
    print(f"{ping.round_trips} round trips; ping exited: {reason}")
    return ping.round_trips


if __name__ == "__main__":
    trio.run(main)
