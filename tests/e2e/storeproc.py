"""Processes that use a SQLite store, for the crash and multi-process tests (run as `python storeproc.py`).

values PATH            put v<n> under k<n> and commit a body b<n>, n = 0, 1, ...; print n after each
body PATH KEY          commit "committed" under KEY, then stream a new body for KEY without end,
                       printing "writing" once 50 chunks are written
count PATH N           increment the counter "hits" N times, then print "done"
server CONF N          a Server of the file CONF (its `threads` workers), running the store of its
                       `store:` section as a background service; each worker increments "hits" N times
                       and records its pid under "pid:<pid>"
"""

from __future__ import annotations

import os
import sys
from typing import Any

import trio

from actorproxy.server import Server, background_service
from actorproxy.store import SqliteBackend, Store
from supervisors import ShutdownWatch

CHUNK = 4096


def say(line: object) -> None:
    """Print `line` in one write: the worker processes of a server share the pipe, and print's separate
    write of the newline could interleave with another process's line."""
    os.write(1, f"{line}\n".encode())


async def values(path: str) -> None:
    async with Store(SqliteBackend(path, chunk_size=CHUNK)) as store:
        n = 0
        while True:
            await store.put(f"k{n}", f"v{n}".encode())
            async with store.open_writer(f"b{n}", meta=f"m{n}".encode()) as writer:
                await writer.write(bytes([n % 256]) * (3 * CHUNK + n))
                await writer.commit()
            say(n)
            n += 1


async def body(path: str, key: str) -> None:
    async with Store(SqliteBackend(path, chunk_size=CHUNK)) as store:
        async with store.open_writer(key) as writer:
            await writer.write(b"committed")
            await writer.commit()
        async with store.open_writer(key) as writer:
            written = 0
            while True:
                await writer.write(b"x" * CHUNK)
                written += 1
                if written == 50:
                    say("writing")


async def count(path: str, times: int) -> None:
    async with Store(SqliteBackend(path, busy_timeout=10.0)) as store:
        for _ in range(times):
            await store.increment("hits")
    say("done")


class Counting:
    """A background task that increments "hits" `times` times through the store, then waits."""

    def __init__(self, store: Store, times: int) -> None:
        self.store = store
        self.times = times

    async def start(self, shutdown: ShutdownWatch) -> None:
        for _ in range(self.times):
            await self.store.increment("hits")
        await self.store.put(f"pid:{os.getpid()}", b"done")
        say(f"counted {os.getpid()}")
        await shutdown.wait()


def serve(conf: str, times: int) -> None:
    server = Server.from_args(["-c", conf])
    server.bootstrap()
    section = server.configuration.store
    assert section is not None
    store = Store.from_conf(section, redis=server.configuration.redis)  # opened in each worker
    bg = background_service("store", store)
    server.add_service(bg)
    server.add_service(background_service("count", Counting(bg.task(), times)), depends_on=[bg])
    say("serving")
    server.run_forever()


def main(argv: list[str]) -> None:
    match argv:
        case ["values", path]:
            run: Any = (values, path)
        case ["body", path, key]:
            run = (body, path, key)
        case ["count", path, times]:
            run = (count, path, int(times))
        case ["server", conf, times]:
            serve(conf, int(times))
            return
        case _:
            raise SystemExit(__doc__)
    trio.run(*run)


if __name__ == "__main__":
    main(sys.argv[1:])
