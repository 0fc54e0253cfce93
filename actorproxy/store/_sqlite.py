"""`SqliteBackend`: the embedded default, one SQLite file in WAL mode shared by the worker processes.

Rules:
- The connection is opened by `opened()`, in the process that uses it: a store built before `threads: N`
  forks its workers is opened in each worker, never carried across a fork (SQLite forbids that). A call in
  another process than the one that opened it raises `StoreClosed`.
- Blocking calls leave the trio thread: each operation is one `trio.to_thread.run_sync` call of `Database`,
  one at a time (a `trio.Lock`, fair), since one connection is not for concurrent use. A cancelled caller
  waits for its call to finish (the default of `run_sync`): a transaction is never left half done, and the
  connection is never used by two threads at once.
- Point reads of a body's head (`body_head`, `open_body`: the HTTP cache's lookups) run on the trio
  thread, on a second, read-only connection whose busy timeout is 0: in WAL mode a reader never waits for
  a writer, so the call is a few dozen µs of CPU and never blocks on a lock. A read that meets
  SQLITE_BUSY anyway (another connection recovering the WAL, an exclusive lock) is done again on the
  writing connection in a thread, where it waits up to `busy_timeout`. A use-time refresh such a read
  owes (with a cap) is queued for the writer.
- While the store runs as a service, `put_body` (a whole body already in memory) is queued, not written:
  the service's writer (`serve_writes`) writes everything queued, and the queued use-time refreshes, in
  one transaction on a thread, as soon as the one before has ended, so concurrent writes share a
  transaction and the caller never waits for one. A queued body is this process's at once: reads see it
  (`body_head`, `open_body`, `has`), and every other verb on its key (and `flush`, `sweep`,
  `statistics`) first writes the queue, so they apply in the order they were called. Other processes see
  it once written. A batch that fails (a full disk, the lock not obtained within `busy_timeout`) is
  logged and dropped, as a cache drops what it cannot store; nothing of it is visible. A process killed
  before its queue is written loses the queue, never part of a body. Closing the store writes what is
  queued first (shielded, within `busy_timeout` of the lock). Without the service (`async with store`
  alone), `put_body` writes at once.
- SQLite's exceptions are translated here, once: a lock not obtained within the busy timeout is
  `StoreUnavailable`, any other failure `StoreError`, both with the cause.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import Any, TypeVar

import trio

from ._backend import BackendStatistics, BodyHead, WriteStop
from ._errors import BodyGone, EntryTooLarge, StoreClosed, StoreError, StoreUnavailable
from ._sqlite_db import Database, Limits, QueuedBody, connect, connect_reader

__all__ = ["SqliteBackend"]

T = TypeVar("T")

logger = logging.getLogger("actorproxy.store")

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
        self._reader: Database | None = None
        self._lock = trio.Lock()
        # Bodies queued for the writer, and the batch it is writing now (both readable until written).
        self._queued: dict[str, QueuedBody] = {}
        self._writing: dict[str, QueuedBody] = {}
        # Keys whose use time a read on the trio thread found due a refresh.
        self._touches: set[str] = set()
        # Whether a writer serves the queue (`serve_writes`), and its wait, to cut short when work comes.
        self._serving = False
        self._wait: trio.CancelScope | None = None

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
        try:
            reader = await trio.to_thread.run_sync(connect_reader, self.path)
        except sqlite3.Error as exc:
            conn.close()
            raise _translated(exc, f"{self.path}: cannot open") from exc
        self._db = Database(conn, self.limits)
        self._reader = Database(reader, self.limits)
        try:
            yield
        finally:
            self._serving = False
            # Closing waits for a call still running in its thread: the connection is not shared. What
            # is queued is written first.
            with trio.CancelScope(shield=True):
                try:
                    await self._write_queued()
                finally:
                    db, self._db = self._db, None
                    self._reader = None
                    async with self._lock:
                        await trio.to_thread.run_sync(db.close)
                    reader.close()

    def _open_db(self) -> Database:
        db = self._db
        if db is None or db.pid != os.getpid():
            raise StoreClosed(f"{self.path}: the store is not open in this process")
        return db

    async def _run(self, method: Callable[..., T], *args: Any) -> T:
        db = self._open_db()
        async with self._lock:
            try:
                return await trio.to_thread.run_sync(partial(method, db, *args))
            except sqlite3.Error as exc:
                raise _translated(exc, self.path) from exc

    async def _read(self, method: Callable[..., T], *args: Any) -> T:
        """`method` on the read connection, on the trio thread; on SQLITE_BUSY, `_run` (see the rules)."""
        self._open_db()
        reader = self._reader
        assert reader is not None  # open with the writing connection
        try:
            return method(reader, *args)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise _translated(exc, self.path) from exc
        except sqlite3.Error as exc:
            raise _translated(exc, self.path) from exc
        return await self._run(method, *args)

    async def _settle(self, key: str | None = None) -> None:
        """Write the queue first when it holds `key` (None: anything), so a verb on the key comes after."""
        if (key is None and self._queued) or (key is not None and key in self._queued):
            await self._write_queued()

    # -- the writer ------------------------------------------------------------------------------------------

    async def serve_writes(self, stop: WriteStop, until: float) -> None:
        """Write what `put_body` queues, batch after batch, until `until` (trio's clock) or `stop`."""
        self._open_db()
        self._serving = True
        try:
            while not stop.is_set() and trio.current_time() < until:
                if not self._queued and not self._touches:
                    with trio.CancelScope(deadline=until) as wait:
                        self._wait = wait
                        await stop.wait()
                    self._wait = None
                await self._write_queued()
        except BaseException:
            self._serving = False
            raise

    def _wake(self) -> None:
        wait = self._wait
        if wait is not None:
            wait.cancel()

    async def _write_queued(self) -> None:
        """Write the queued bodies and use times in one transaction; a failure drops them (logged)."""
        async with self._lock:
            batch, self._queued = self._queued, {}
            touches, self._touches = self._touches, set()
            db = self._db
            if (not batch and not touches) or db is None:
                return
            self._writing = batch
            write = partial(Database.put_bodies, db, list(batch.values()), touches, self.clock())
            try:
                await trio.to_thread.run_sync(write)
            except sqlite3.Error as exc:
                error = _translated(exc, self.path)
                logger.warning("store: %d queued bodies not written: %s", len(batch), error)
            except StoreError as exc:
                logger.warning("store: %d queued bodies not written: %s", len(batch), exc)
            finally:
                self._writing = {}

    def _queued_body(self, key: str) -> QueuedBody | None:
        """The body queued (or being written) under `key`, the newest write of the key; None: none."""
        return self._queued.get(key) or self._writing.get(key)

    def _expired(self, queued: QueuedBody) -> bool:
        return queued.expires_at is not None and queued.expires_at <= self.clock()

    # -- values ----------------------------------------------------------------------------------------------

    def _expiry(self, ttl: float | None, now: float) -> float | None:
        return None if ttl is None else now + ttl

    async def get(self, key: str) -> bytes | None:
        await self._settle(key)
        return await self._run(Database.get, key, self.clock())

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if any(key in self._queued for key in keys):
            await self._settle()
        return await self._run(Database.get_many, list(keys), self.clock())

    async def put(self, key: str, value: bytes, ttl: float | None) -> None:
        await self.put_many([(key, value)], ttl)

    async def put_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> None:
        if any(key in self._queued for key, _ in items):
            await self._settle()
        now = self.clock()
        await self._run(Database.put_many, list(items), self._expiry(ttl, now), now)

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        await self._settle(key)
        now = self.clock()
        return await self._run(Database.add, key, value, self._expiry(ttl, now), now)

    async def has(self, key: str) -> bool:
        queued = self._queued_body(key)
        if queued is not None:
            return not self._expired(queued)
        return await self._run(Database.has, key, self.clock())

    async def forget(self, key: str) -> bool:
        await self._settle(key)
        return await self._run(Database.forget, key, self.clock())

    async def pull(self, key: str) -> bytes | None:
        await self._settle(key)
        return await self._run(Database.pull, key, self.clock())

    async def increment(self, key: str, by: int) -> int:
        await self._settle(key)
        return await self._run(Database.increment, key, by, self.clock())

    async def flush(self, prefix: str) -> int:
        await self._settle()
        return await self._run(Database.flush, prefix)

    async def sweep(self) -> int:
        await self._settle()
        return await self._run(Database.sweep, self.clock())

    async def statistics(self) -> BackendStatistics:
        await self._settle()
        return await self._run(Database.statistics)

    # -- bodies ----------------------------------------------------------------------------------------------

    async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> _SqliteSink:
        body = await self._run(Database.begin_body, meta, self.clock())
        return _SqliteSink(self, body, key, ttl, meta)

    async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes]) -> None:
        now = self.clock()
        size = sum(len(chunk) for chunk in chunks)
        queued = QueuedBody(key, meta, tuple(chunks), size, self._expiry(ttl, now), now)
        if not self._serving:
            await self._run(Database.put_bodies, [queued], (), now)
            return
        self._open_db()
        cap = self.limits.max_size
        if cap is not None and queued.entry_size() > cap:
            raise EntryTooLarge(f"{key!r}: {queued.entry_size()} bytes is more than max_size {cap}")
        self._queued.pop(key, None)  # a later body of the key is written after the others
        self._queued[key] = queued
        self._wake()

    def _queued_head(self, queued: QueuedBody) -> BodyHead:
        return BodyHead(
            meta=queued.meta, size=queued.size, chunk_size=self.chunk_size, expires_at=queued.expires_at
        )

    async def body_head(self, key: str) -> BodyHead | None:
        queued = self._queued_body(key)
        if queued is not None:
            return None if self._expired(queued) else self._queued_head(queued)
        found = await self._read(Database.find_body, key, self.clock())
        return None if found is None else found[1]

    async def open_body(self, key: str) -> _SqliteSource | _QueuedSource | None:
        queued = self._queued_body(key)
        if queued is not None:
            return None if self._expired(queued) else _QueuedSource(self._queued_head(queued), queued.chunks)
        found = await self._read(Database.find_body, key, self.clock())
        if found is None:
            return None
        body, head, due = found
        if due:
            if self._serving:
                self._touches.add(key)
                self._wake()
            else:
                await self._run(Database.touch, [key], self.clock())
        return _SqliteSource(self, body, head)


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
        await self.backend._settle(self.key)
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


class _QueuedSource:
    """A queued body, read from memory."""

    def __init__(self, head: BodyHead, chunks: tuple[bytes, ...]) -> None:
        self.head = head
        self._chunks = chunks

    async def read_chunk(self, index: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks[index]


def _busy(exc: sqlite3.OperationalError) -> bool:
    return str(exc).startswith(_BUSY_MESSAGES)


def _translated(exc: sqlite3.Error, where: str) -> StoreError:
    text = str(exc)
    if isinstance(exc, sqlite3.OperationalError) and _busy(exc):
        return StoreUnavailable(f"{where}: {text} (another process held the write lock past busy_timeout)")
    return StoreError(f"{where}: {text}")
