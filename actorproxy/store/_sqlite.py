"""`SqliteBackend`: the embedded default, one SQLite file in WAL mode shared by the worker processes.

Rules:
- The connection is opened by `opened()`, in the process that uses it: a store built before `threads: N`
  forks its workers is opened in each worker, never carried across a fork (SQLite forbids that). A call in
  another process than the one that opened it raises `StoreClosed`.
- Blocking calls leave the trio thread: each operation is one `trio.to_thread.run_sync` call of `Database`,
  one at a time (a `trio.Lock`, fair), since one connection is not for concurrent use. A cancelled caller
  waits for its call to finish (the default of `run_sync`): a transaction is never left half done, and the
  connection is never used by two threads at once.
- SQLite's exceptions are translated here, once: a lock not obtained within the busy timeout is
  `StoreUnavailable`, any other failure `StoreError`, both with the cause.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import trio

from ._backend import BackendStatistics, BodyHead
from ._errors import BodyGone, EntryTooLarge, StoreClosed, StoreError, StoreUnavailable
from ._sqlite_db import Database, Limits, connect

__all__ = ["SqliteBackend"]

T = TypeVar("T")

# SQLite's messages for a lock it could not get within the busy timeout.
_BUSY_MESSAGES = ("database is locked", "database table is locked", "database is busy")


class SqliteBackend:
    """A store in the SQLite file at `path`.

    Args:
        path: the file (created if missing, with its directory's permissions).
        max_size: bytes kept at most; None: no cap.
        max_entries: entries kept at most; None: no cap.
        chunk_size: bytes per body row.
        busy_timeout: seconds a call waits for another process's write.
        body_grace_period: seconds a dead body stays readable.
        writer_timeout: seconds without a write after which a body being written is abandoned.
        clock: the time in seconds; expiry times are stored on it, so processes sharing a file must share it
            (the default, `time.time`).
    """

    name = "sqlite"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_size: int | None = None,
        max_entries: int | None = None,
        chunk_size: int = 64 * 1024,
        busy_timeout: float = 5.0,
        body_grace_period: float = 60.0,
        writer_timeout: float = 600.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = os.fspath(path)
        self.chunk_size = chunk_size
        self.busy_timeout = busy_timeout
        self.clock = clock
        self.limits = Limits(
            max_size=max_size,
            max_entries=max_entries,
            chunk_size=chunk_size,
            body_grace_period=body_grace_period,
            writer_timeout=writer_timeout,
        )
        self._db: Database | None = None
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return f"<SqliteBackend {self.path} {'open' if self._db is not None else 'closed'}>"

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        if self._db is not None and self._db.pid == os.getpid():
            raise StoreError(f"{self.path}: already open in this process")
        try:
            conn = await trio.to_thread.run_sync(connect, self.path, self.busy_timeout)
        except sqlite3.Error as exc:
            raise _translated(exc, f"{self.path}: cannot open") from exc
        self._db = Database(conn, self.limits)
        try:
            yield
        finally:
            db, self._db = self._db, None
            # Closing waits for a call still running in its thread: the connection is not shared.
            with trio.CancelScope(shield=True):
                async with self._lock:
                    await trio.to_thread.run_sync(db.close)

    async def _run(self, method: Callable[..., T], *args: Any) -> T:
        db = self._db
        if db is None or db.pid != os.getpid():
            raise StoreClosed(f"{self.path}: the store is not open in this process")
        async with self._lock:
            try:
                return await trio.to_thread.run_sync(partial(method, db, *args))
            except sqlite3.Error as exc:
                raise _translated(exc, self.path) from exc

    # -- values ----------------------------------------------------------------------------------------------

    def _expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    async def get(self, key: str) -> bytes | None:
        return await self._run(Database.get, key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        return await self._run(Database.get_many, list(keys), self.clock())

    async def put(self, key: str, value: bytes, ttl: float | None) -> None:
        await self.put_many([(key, value)], ttl)

    async def put_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> None:
        now = self.clock()
        await self._run(Database.put_many, list(items), self._expiry(ttl, now), now)

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        now = self.clock()
        return await self._run(Database.add, key, value, self._expiry(ttl, now), now)

    async def has(self, key: str) -> bool:
        return await self._run(Database.has, key, self.clock())

    async def forget(self, key: str) -> bool:
        return await self._run(Database.forget, key, self.clock())

    async def pull(self, key: str) -> bytes | None:
        return await self._run(Database.pull, key, self.clock())

    async def increment(self, key: str, by: int) -> int:
        return await self._run(Database.increment, key, by, self.clock())

    async def flush(self, prefix: str) -> int:
        return await self._run(Database.flush, prefix)

    async def sweep(self) -> int:
        return await self._run(Database.sweep, self.clock())

    async def statistics(self) -> BackendStatistics:
        return await self._run(Database.statistics)

    # -- bodies ----------------------------------------------------------------------------------------------

    async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> _SqliteSink:
        body = await self._run(Database.begin_body, meta, self.clock())
        return _SqliteSink(self, body, key, ttl, meta)

    async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes]) -> None:
        now = self.clock()
        put = partial(Database.put_body, expires_at=self._expiry(ttl, now), now=now)
        await self._run(put, key, meta, list(chunks))

    async def body_head(self, key: str) -> BodyHead | None:
        found = await self._run(Database.body_head, key, self.clock())
        return None if found is None else found[1]

    async def open_body(self, key: str) -> _SqliteSource | None:
        found = await self._run(partial(Database.body_head, touch=True), key, self.clock())
        return None if found is None else _SqliteSource(self, *found)


class _SqliteSink:
    def __init__(self, backend: SqliteBackend, body: int, key: str, ttl: float | None, meta: bytes) -> None:
        self.backend = backend
        self.body = body
        self.key = key
        self.ttl = ttl
        self.meta = meta
        self.seq = 0
        self.size = len(key.encode()) + len(meta)

    async def write_chunk(self, data: bytes) -> None:
        self.size += len(data)
        cap = self.backend.limits.max_size
        if cap is not None and self.size > cap:
            raise EntryTooLarge(f"{self.key!r}: more than max_size {cap} bytes")
        await self.backend._run(Database.write_chunk, self.body, self.seq, data, self.backend.clock())
        self.seq += 1

    async def commit(self, size: int) -> None:
        now = self.backend.clock()
        expires_at = self.backend._expiry(self.ttl, now)
        commit = partial(Database.commit_body, expires_at=expires_at, now=now)
        await self.backend._run(commit, self.body, self.key, self.meta, size)

    async def abort(self) -> None:
        await self.backend._run(Database.abort_body, self.body)


class _SqliteSource:
    def __init__(self, backend: SqliteBackend, body: int, head: BodyHead) -> None:
        self.backend = backend
        self.body = body
        self.head = head

    async def read_chunk(self, index: int) -> bytes:
        data = await self.backend._run(Database.read_chunk, self.body, index)
        if data is None:
            raise BodyGone(f"{self.backend.path}: body {self.body} was removed while it was read")
        return data


def _translated(exc: sqlite3.Error, where: str) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and text.startswith(_BUSY_MESSAGES):
        return StoreUnavailable(f"{where}: {text} (another process held the write lock past busy_timeout)")
    return StoreError(f"{where}: {text}")
