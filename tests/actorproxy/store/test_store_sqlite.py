"""What only the SQLite backend does: the file (WAL, schema, refusals), the caps with LRU eviction, bodies'
grace and abandoned writers, busy locks, bodies streamed in constant memory, the writer's batches and the
reads on the trio thread.

(The verbs every backend shares are in tests/e2e/test_store_backends.py.)
"""

from __future__ import annotations

import math
import os
import sqlite3
import sys
import threading
import tracemalloc
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from actorproxy.store import (
    BodyGone,
    BodyHead,
    EntryKindError,
    EntryTooLarge,
    SqliteBackend,
    Store,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WriterAbandoned,
)
from actorproxy.store._sqlite_db import ROWS_PER_STATEMENT, Database, QueuedBody

MiB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def count(path: Path, sql: str) -> int:
    with sqlite3.connect(path) as conn:
        value: int = conn.execute(sql).fetchone()[0]
    conn.close()
    return value


async def test_the_file_is_in_wal_mode_with_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with Store(SqliteBackend(path)) as store:
        await store.put("k", b"v")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


async def test_a_new_file_opens_while_another_connection_holds_its_write_lock(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # As when two worker processes open a new store file at once: one is switching it to WAL mode (the
    # write lock of a file still in rollback mode) when the other tries the same switch. SQLite does not
    # wait for the lock upgrade the switch makes, whatever the busy timeout; the store must.
    path = tmp_path / "s.db"
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    statements: list[str] = []
    real_connect = sqlite3.connect

    def on_statement(statement: str) -> None:
        statements.append(statement)
        # The other connection lets go once the store's switch to WAL has been tried under its lock.
        if other.in_transaction and any(s.startswith("PRAGMA journal_mode") for s in statements[:-1]):
            other.execute("ROLLBACK")

    def traced(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        conn = real_connect(*args, **kwargs)
        conn.set_trace_callback(on_statement)
        return conn

    monkeypatch.setattr(sqlite3, "connect", traced)
    try:
        async with Store(SqliteBackend(path, busy_timeout=30)) as store:
            await store.put("k", b"v")
            assert await store.get("k") == b"v"
    finally:
        if other.in_transaction:
            other.execute("ROLLBACK")
        other.close()
    monkeypatch.undo()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()


async def test_a_file_that_is_not_a_store_is_refused_by_name(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"not a database at all" * 100)
    with pytest.raises(StoreError, match=r"garbage\.db"):
        async with Store(SqliteBackend(garbage)):
            pass
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("PRAGMA user_version = 7")
    conn.close()
    with pytest.raises(StoreError, match="schema version 7"):
        async with Store(SqliteBackend(other)):
            pass


async def test_a_store_that_is_not_open_says_so(tmp_path: Path) -> None:
    store = Store(SqliteBackend(tmp_path / "store.db"))
    with pytest.raises(StoreClosed, match="not open"):
        await store.get("k")
    async with store:
        await store.put("k", b"v")
    with pytest.raises(StoreClosed):
        await store.get("k")


async def test_the_least_recently_used_entry_is_evicted_past_max_entries(tmp_path: Path) -> None:
    clock = Clock()
    async with Store(SqliteBackend(tmp_path / "s.db", max_entries=2, clock=clock)) as store:
        await store.put("a", b"1")
        clock.now += 10
        await store.put("b", b"2")
        clock.now += 10
        assert await store.get("a") == b"1"  # a is now more recent than b
        clock.now += 10
        await store.put("c", b"3")
        assert await store.many(["a", "b", "c"]) == {"a": b"1", "b": None, "c": b"3"}
        stats = await store.statistics()
        assert (stats.entries, stats.evictions) == (2, 1)


async def test_max_size_counts_keys_values_and_bodies_and_expired_entries_go_first(tmp_path: Path) -> None:
    clock = Clock()
    async with Store(SqliteBackend(tmp_path / "s.db", max_size=3000, chunk_size=1024, clock=clock)) as store:
        await store.put("old", b"x" * 1000)
        clock.now += 10
        await store.put("expiring", b"x" * 1000, ttl=5)
        clock.now += 10  # "expiring" is past its ttl, but not swept
        async with store.open_writer("body", meta=b"m") as writer:
            await writer.write(b"y" * 1500)
            await writer.commit()
        assert await store.has("old")
        stats = await store.statistics()
        assert stats.size == (3 + 1 + 1000) + (4 + 1 + 1500)  # key, tag byte, value; key, meta, body
        clock.now += 10
        await store.put("new", b"z" * 1000)  # over the cap: the least recently used ("old") goes
        assert not await store.has("old")
        assert await store.has("body")


async def test_an_entry_larger_than_max_size_is_refused(tmp_path: Path) -> None:
    async with Store(SqliteBackend(tmp_path / "s.db", max_size=2048, chunk_size=1024)) as store:
        await store.put("small", b"s")
        with pytest.raises(EntryTooLarge, match="'big'"):
            await store.put("big", b"x" * 4096)
        with pytest.raises(EntryTooLarge):
            async with store.open_writer("body") as writer:
                for _ in range(4):
                    await writer.write(b"x" * 1024)
        assert await store.has("small")
        assert not await store.has("body")
    assert count(tmp_path / "s.db", "SELECT count(*) FROM chunks") == 0


async def test_a_replaced_body_is_readable_for_its_grace_then_its_rows_go(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "s.db"
    backend = SqliteBackend(path, chunk_size=1024, body_grace_period=60, clock=clock)
    async with Store(backend) as store:
        async with store.open_writer("page") as writer:
            await writer.write(b"a" * 4096)
            await writer.commit()
        reader = await store.open_reader("page")
        assert reader is not None
        await store.forget("page")
        await store.sweep()  # stamps the time of death
        clock.now += 59
        await store.sweep()
        assert await reader.read() == b"a" * 4096
        clock.now += 2
        assert await store.sweep() == 1
        with pytest.raises(BodyGone):
            await reader.read()
    assert count(path, "SELECT count(*) FROM chunks") == 0
    assert count(path, "SELECT count(*) FROM bodies") == 0


async def test_a_writer_silent_past_writer_timeout_is_abandoned(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path, chunk_size=1024, writer_timeout=30, clock=clock)) as store:
        async with store.open_writer("page") as writer:
            await writer.write(b"a" * 2048)
            clock.now += 31
            assert await store.sweep() == 1
            with pytest.raises(WriterAbandoned):
                await writer.write(b"a" * 1024)
        assert not await store.has("page")
    assert count(path, "SELECT count(*) FROM chunks") == 0


async def test_a_body_left_by_a_dead_process_is_swept(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path)) as store:
        await store.put("k", b"v")
    dead = await trio.run_process(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_stdout=True, check=True
    )
    with sqlite3.connect(path) as conn:
        conn.execute(
            "INSERT INTO bodies (state, meta, size, chunk_size, pid, since)"
            " VALUES ('writing', x'', 0, 4, ?, ?)",
            (int(dead.stdout), 1e12),
        )
        conn.execute("INSERT INTO chunks VALUES (last_insert_rowid(), 0, x'00')")
    conn.close()
    async with Store(SqliteBackend(path)) as store:
        assert await store.sweep() == 1
    assert count(path, "SELECT count(*) FROM chunks") == 0


async def test_a_write_lock_held_past_busy_timeout_is_store_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path, busy_timeout=0.05)) as store:
        await store.put("k", b"v")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(StoreUnavailable, match="busy_timeout"):
                await store.put("k", b"w")
            assert await store.get("k") == b"v"  # readers never wait in WAL mode
        finally:
            other.execute("ROLLBACK")
            other.close()
        await store.put("k", b"w")


async def test_two_connections_to_one_file_see_each_others_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path)) as first, Store(SqliteBackend(path)) as second:
        await first.put("k", b"v")
        assert await second.get("k") == b"v"
        assert await second.increment("n") == 1
        assert await first.increment("n") == 2


async def test_a_10_mib_body_streams_through_in_constant_memory(tmp_path: Path) -> None:
    piece = os.urandom(64 * 1024)
    total = 10 * MiB
    async with Store(SqliteBackend(tmp_path / "s.db")) as store:
        tracemalloc.start()
        try:
            async with store.open_writer("big", meta=b"head") as writer:
                for _ in range(total // len(piece)):
                    await writer.write(piece)
                await writer.commit()
            reader = await store.open_reader("big")
            assert reader is not None
            read = 0
            async for chunk in reader:
                assert chunk == piece
                read += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    assert read == total
    assert peak < 2 * MiB, f"peak {peak / MiB:.2f} MiB"


# -- the writer and the reads on the trio thread ----------------------------------------------------------


class Batches:
    """`Database.put_bodies` recorded: the keys of each batch written, and an event per batch."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, fail: bool = False) -> None:
        self.keys: list[list[str]] = []
        self.written = trio.Event()
        token = trio.lowlevel.current_trio_token()
        real = Database.put_bodies

        def put_bodies(
            db: Database, bodies: Sequence[QueuedBody], touches: Collection[str], now: float
        ) -> None:
            try:
                if fail:
                    raise sqlite3.OperationalError("disk I/O error")
                real(db, bodies, touches, now)
            finally:
                self.keys.append([queued.key for queued in bodies])
                trio.from_thread.run_sync(self.written.set, trio_token=token)

        monkeypatch.setattr(Database, "put_bodies", put_bodies)

    async def wait(self) -> list[str]:
        """The keys of the next batch written."""
        await self.written.wait()
        self.written = trio.Event()
        return self.keys[-1]


@asynccontextmanager
async def writing(store: Store) -> AsyncIterator[trio.Event]:
    """The store's writer running (as the store service runs it); set the event to stop it."""
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(store.backend.serve_writes, stop, math.inf)
        await trio.testing.wait_all_tasks_blocked()
        yield stop
        stop.set()


async def test_bodies_put_together_are_written_in_one_transaction_off_the_callers_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    batches = Batches(monkeypatch)
    async with Store(SqliteBackend(path)) as store, writing(store):
        for n in range(10):
            await store.put_body(f"k{n}", b"body %d" % n, 60, meta=b"m")
        assert batches.keys == []  # queued: the callers did not wait for a transaction
        assert count(path, "SELECT count(*) FROM entries") == 0
        reader = await store.open_reader("k3")  # this process reads them at once
        assert reader is not None and reader.meta == b"m" and await reader.read() == b"body 3"
        assert await store.has("k9")
        assert await batches.wait() == [f"k{n}" for n in range(10)]
        assert count(path, "SELECT count(*) FROM entries") == 10
        async with Store(SqliteBackend(path)) as other:
            reader = await other.open_reader("k3")
            assert reader is not None and await reader.read() == b"body 3"


async def test_a_batch_larger_than_one_statement_is_written_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "s.db"
    batches = Batches(monkeypatch)
    count_ = 2 * ROWS_PER_STATEMENT + 7
    async with Store(SqliteBackend(path, chunk_size=4)) as store, writing(store):
        for n in range(count_):
            await store.put_body(f"k{n}", b"body number %d" % n, 60, meta=b"m%d" % n)
        assert len(await batches.wait()) == count_
    async with Store(SqliteBackend(path, chunk_size=4)) as store:
        for n in (0, ROWS_PER_STATEMENT, count_ - 1):
            reader = await store.open_reader(f"k{n}")
            assert reader is not None and reader.meta == b"m%d" % n
            assert await reader.read() == b"body number %d" % n  # four bytes a chunk, in order
    assert count(path, "SELECT count(*) FROM entries") == count_


async def test_a_verb_on_a_queued_key_comes_after_its_write(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path)) as store, writing(store):
        await store.put_body("k", b"new", 60, meta=b"m")
        assert await store.forget("k")  # the queued body was written first, then forgotten
        assert await store.head("k") is None
        await store.put_body("p:1", b"a", 60)
        await store.put_body("p:2", b"b", 60)
        assert await store.prefixed("p:").flush() == 2
        await store.put_body("v", b"body", 60)
        with pytest.raises(EntryKindError):
            await store.get("v")
    assert count(path, "SELECT count(*) FROM entries") == 1


async def test_closing_the_store_writes_what_is_queued(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path)) as store, writing(store):
        await store.put_body("k", b"body", 60, meta=b"m")
    async with Store(SqliteBackend(path)) as store:
        head = await store.head("k")
        assert head is not None and head.meta == b"m" and head.size == 4


async def test_a_batch_that_fails_is_dropped_and_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "s.db"
    batches = Batches(monkeypatch, fail=True)
    async with Store(SqliteBackend(path)) as store, writing(store):
        await store.put_body("k", b"body", 60)
        assert await batches.wait() == ["k"]
    assert count(path, "SELECT count(*) FROM entries") == 0
    assert "1 queued bodies not written: " in caplog.text and "disk I/O error" in caplog.text


async def test_a_queued_body_larger_than_max_size_is_refused_at_once(tmp_path: Path) -> None:
    async with Store(SqliteBackend(tmp_path / "s.db", max_size=100)) as store, writing(store):
        with pytest.raises(EntryTooLarge):
            await store.put_body("k", b"x" * 200, 60)
        assert await store.head("k") is None


async def test_lookups_do_not_wait_for_a_write_held_up_by_another_process(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    async with Store(SqliteBackend(path, busy_timeout=30)) as store:
        await store.put_body("old", b"body", 60, meta=b"m")
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        async with writing(store):
            await store.put_body("new", b"body", 60, meta=b"m")
            await trio.testing.wait_all_tasks_blocked()  # the writer waits for the file's write lock
            with trio.fail_after(10):  # far less than busy_timeout: the reads waited for nothing
                assert await store.head("old") is not None
                assert await store.head("new") is not None
                assert await store.head("absent") is None
            other.execute("ROLLBACK")
            other.close()
    assert count(path, "SELECT count(*) FROM entries") == 2


async def test_a_read_that_meets_a_busy_file_is_done_again_in_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[bool, bool]] = []
    real = Database.find_body

    def find_body(db: Database, key: str, now: float) -> tuple[int, BodyHead, bool] | None:
        on_trio_thread = threading.current_thread() is threading.main_thread()
        calls.append((on_trio_thread, db.conn.execute("PRAGMA query_only").fetchone()[0] == 1))
        if on_trio_thread:
            raise sqlite3.OperationalError("database is locked")
        return real(db, key, now)

    async with Store(SqliteBackend(tmp_path / "s.db")) as store:
        await store.put_body("k", b"body", 60, meta=b"m")
        monkeypatch.setattr(Database, "find_body", find_body)
        head = await store.head("k")
    assert head is not None and head.meta == b"m"
    # First on the trio thread with the read-only connection, then in a thread with the writing one.
    assert calls == [(True, True), (False, False)]


async def test_a_read_on_the_trio_thread_refreshes_the_use_time_through_the_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    async with Store(SqliteBackend(tmp_path / "s.db", max_entries=2, clock=clock)) as store:
        await store.put_body("a", b"1", meta=b"m")
        clock.now += 10
        await store.put_body("b", b"2", meta=b"m")
        clock.now += 10
        batches = Batches(monkeypatch)
        async with writing(store):
            assert await store.open_reader("a") is not None  # a is now more recent than b
            assert await batches.wait() == []  # the use time alone, written behind
            clock.now += 10
            await store.put_body("c", b"3", meta=b"m")
            assert await batches.wait() == ["c"]
        assert [await store.head(key) is not None for key in "abc"] == [True, False, True]
