"""Shared test actors: workers that record their lifecycle in a log with virtual timestamps."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from actorproxy.server import Server
from actors import Actor, ActorSystem, ExitReason


@asynccontextmanager
async def serving(server: Server) -> AsyncIterator[ActorSystem]:
    """Run `server.serve` while the block runs; cancel it (a fast stop) after."""
    async with trio.open_nursery() as nursery:
        system: ActorSystem = await nursery.start(server.serve)
        yield system
        nursery.cancel_scope.cancel()


class Log(list[tuple[Any, ...]]):
    """(event, child id) entries in order; `times` has the virtual time of each."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def add(self, *entry: Any) -> None:
        self.append(entry)
        self.times.append(trio.current_time())

    def count(self, *entry: Any) -> int:  # type: ignore[override]
        return sum(1 for e in self if e == entry)


class Worker(Actor):
    """Records start/stop; "crash" raises, "finish" ends normally, "stop" asks its own stop."""

    def __init__(self, ident: str, log: Log, *, stop_delay: float = 0.0) -> None:
        self.ident = ident
        self.log = log
        self.stop_delay = stop_delay

    async def on_start(self) -> None:
        self.log.add("start", self.ident)

    async def receive(self, message: Any) -> Any:
        if message == "crash":
            raise ValueError(f"{self.ident} crashed")
        if message == "finish":
            self.context.finish()
            return None
        return (self.ident, message)

    async def on_stop(self, reason: ExitReason) -> None:
        if self.stop_delay:
            await trio.sleep(self.stop_delay)
        self.log.add("stop", self.ident, reason.kind.value)


# Sockets held for the whole test run, so the ports they took stay refused.
_HELD_PORTS: list[socket.socket] = []


def refused_port() -> int:
    """A loopback port that refuses connections, and that no later listener can be given.

    Bound but never listening: a connect gets a reset (ECONNREFUSED), and while the socket stays open the
    kernel hands the port to nobody else (a bound-then-closed port could be reused by the next listener).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    _HELD_PORTS.append(sock)
    port: int = sock.getsockname()[1]
    return port
