"""The store's contract, one suite run against every backend: memory, sqlite (a file in a temporary
directory) and redis (a real redis-server on loopback, each test under its own key prefix).

Time: memory and sqlite run on a clock the test moves (`advance`); Redis expires keys on its own clock, so
with redis `advance` waits the (short) time out.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from actorproxy.config import RedisConf
from actorproxy.store import (
    EntryKindError,
    MemoryBackend,
    NotAnInteger,
    RedisBackend,
    SqliteBackend,
    Store,
)
from actorproxy.testing import RedisServer

BACKENDS = ["memory", "sqlite", "redis"]
# A ttl short enough that waiting it out on Redis costs little, long enough to outlast the calls before it.
TTL = 0.2
# Bodies written in these tests use small chunks, so a few hundred bytes make several.
CHUNK = 1024


@attrs.frozen
class User:
    name: str
    roles: tuple[str, ...] = ()


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@attrs.define
class Subject:
    """The store under test and how to let time pass for it."""

    store: Store
    kind: str
    advance: Callable[[float], Awaitable[None]]


@pytest.fixture(params=BACKENDS)
async def subject(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Subject]:
    kind: str = request.param
    clock = FakeClock()

    async def move(seconds: float) -> None:
        clock.now += seconds
        await trio.lowlevel.checkpoint()

    async def wait(seconds: float) -> None:
        await trio.sleep(seconds)

    advance = move
    if kind == "memory":
        backend: Any = MemoryBackend(chunk_size=CHUNK, clock=clock)
    elif kind == "sqlite":
        backend = SqliteBackend(tmp_path / "store.db", chunk_size=CHUNK, clock=clock, body_grace_period=30)
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        conf = RedisConf(url=server.url, key_prefix=f"test-{uuid.uuid4().hex}:")
        backend = RedisBackend(conf, chunk_size=CHUNK, body_grace_period=30)
        advance = wait
    async with Store(backend) as store:
        yield Subject(store, kind, advance)


# -- values ----------------------------------------------------------------------------------------------


async def test_bytes_come_back_as_stored_and_a_miss_answers_the_default(subject: Subject) -> None:
    store = subject.store
    await store.put("k", b"\x00\xffraw")
    assert await store.get("k") == b"\x00\xffraw"
    assert await store.get("missing") is None
    assert await store.get("missing", b"fallback") == b"fallback"


@pytest.mark.parametrize("value", [{"a": [1, 2.5, None]}, ["x", True], 42, "text", 0.5, False])
async def test_plain_data_comes_back_as_json_data(subject: Subject, value: Any) -> None:
    await subject.store.put("k", value)
    assert await subject.store.get("k") == value


async def test_an_attrs_record_is_unstructured_and_structured_back_with_type(subject: Subject) -> None:
    store = subject.store
    await store.put("user", User("ada", ("admin",)))
    assert await store.get("user") == {"name": "ada", "roles": ["admin"]}
    assert await store.get("user", type=User) == User("ada", ("admin",))


async def test_an_entry_expires_after_its_ttl_and_forever_never_does(subject: Subject) -> None:
    store = subject.store
    await store.put("short", b"v", ttl=TTL)
    await store.forever("long", b"v")
    assert await store.has("short")
    await subject.advance(TTL * 1.5)
    assert not await store.has("short")
    assert await store.get("short") is None
    assert await store.get("long") == b"v"


async def test_a_ttl_of_zero_or_less_forgets_the_key(subject: Subject) -> None:
    store = subject.store
    await store.put("k", b"v")
    await store.put("k", b"w", ttl=0)
    assert not await store.has("k")
    assert not await store.add("k", b"w", ttl=-1)


async def test_add_stores_only_when_absent_and_again_after_expiry(subject: Subject) -> None:
    store = subject.store
    assert await store.add("k", b"first", ttl=TTL)
    assert not await store.add("k", b"second")
    assert await store.get("k") == b"first"
    await subject.advance(TTL * 1.5)
    assert await store.add("k", b"third")
    assert await store.get("k") == b"third"


async def test_add_is_atomic_among_concurrent_callers(subject: Subject) -> None:
    results: list[bool] = []

    async def add(n: int) -> None:
        results.append(await subject.store.add("lock", n))

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(add, n)
    assert results.count(True) == 1


async def test_forget_pull_and_has(subject: Subject) -> None:
    store = subject.store
    await store.put("k", b"v")
    assert await store.has("k")
    assert await store.pull("k") == b"v"
    assert not await store.has("k")
    assert await store.pull("k", b"none") == b"none"
    await store.put("k", b"v")
    assert await store.forget("k")
    assert not await store.forget("k")


async def test_many_answers_every_key_with_none_for_misses(subject: Subject) -> None:
    store = subject.store
    await store.put_many({"a": b"1", "b": {"n": 2}}, ttl=60)
    assert await store.many(["a", "b", "c"]) == {"a": b"1", "b": {"n": 2}, "c": None}


async def test_increment_and_decrement_start_at_zero_and_keep_the_expiry(subject: Subject) -> None:
    store = subject.store
    assert await store.increment("n") == 1
    assert await store.increment("n", 10) == 11
    assert await store.decrement("n", 3) == 8
    assert await store.get("n") == 8
    await store.put("t", 5, ttl=TTL)
    assert await store.increment("t") == 6
    await subject.advance(TTL * 1.5)
    assert not await store.has("t")


async def test_increments_from_many_tasks_are_all_counted(subject: Subject) -> None:
    async def bump() -> None:
        await subject.store.increment("hits")

    async with trio.open_nursery() as nursery:
        for _ in range(50):
            nursery.start_soon(bump)
    assert await subject.store.get("hits") == 50


@pytest.mark.parametrize("value", [b"bytes", "text", 1.5, {"n": 1}])
async def test_increment_refuses_what_is_not_an_integer(subject: Subject, value: Any) -> None:
    await subject.store.put("k", value)
    with pytest.raises(NotAnInteger, match="'k'"):
        await subject.store.increment("k")
    assert await subject.store.get("k") == value


class CountingGets:
    """The backend of a store under test, with an event set once `get` has been called `expected` times."""

    def __init__(self, backend: Any, expected: int) -> None:
        self._backend = backend
        self.expected = expected
        self.gets = 0
        self.reached = trio.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._backend, name)

    async def get(self, key: str) -> bytes | None:
        self.gets += 1
        if self.gets == self.expected:
            self.reached.set()
        return await self._backend.get(key)


async def test_remember_runs_the_factory_once_for_callers_that_miss_together(subject: Subject) -> None:
    callers = 20
    # Each caller misses once before the lock; the first reads again under it before running the factory.
    counting = CountingGets(subject.store.backend, expected=callers + 1)
    store = Store(counting)
    calls = 0
    release = trio.Event()

    async def factory() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await release.wait()
        return {"answer": 42}

    results: list[Any] = []

    async def caller() -> None:
        results.append(await store.remember("k", 60, factory))

    async with trio.open_nursery() as nursery:
        for _ in range(callers):
            nursery.start_soon(caller)
        await counting.reached.wait()  # every caller has missed
        release.set()
    assert calls == 1
    assert results == [{"answer": 42}] * callers
    assert await store.remember("k", 60, factory) == {"answer": 42}
    assert calls == 1


async def test_a_factory_that_raises_stores_nothing_and_the_next_caller_runs_it(subject: Subject) -> None:
    def broken() -> bytes:
        raise RuntimeError("upstream down")

    with pytest.raises(RuntimeError):
        await subject.store.remember("k", 60, broken)
    assert not await subject.store.has("k")
    assert await subject.store.remember_forever("k", lambda: b"ok") == b"ok"
    assert await subject.store.get("k") == b"ok"


async def test_flush_removes_everything_and_a_prefixed_flush_only_its_keys(subject: Subject) -> None:
    store = subject.store
    sessions = store.prefixed("sessions:[*]?")
    await store.put("other", b"1")
    await sessions.put("a", b"2")
    await sessions.put("b", b"3")
    await store.put("sessions:[*]x", b"no prefix match")
    assert await store.get("sessions:[*]?a") == b"2"
    assert await sessions.flush() == 2
    assert not await sessions.has("a")
    assert await store.get("other") == b"1"
    assert await store.get("sessions:[*]x") == b"no prefix match"
    assert await store.flush() == 2
    assert not await store.has("other")


async def test_statistics_count_entries_and_this_processs_hits_and_misses(subject: Subject) -> None:
    store = subject.store
    await store.put("a", b"1")
    await store.put("b", b"2")
    await store.get("a")
    await store.get("zz")
    stats = await store.statistics()
    counted = (stats.backend, stats.entries, stats.hits, stats.misses, stats.writes)
    assert counted == (subject.kind, 2, 1, 1, 2)


# -- bodies ----------------------------------------------------------------------------------------------


def body_of(size: int) -> bytes:
    return bytes(range(256)) * (size // 256) + bytes(range(size % 256))


async def write_body(
    store: Store, key: str, data: bytes, *, ttl: float | None = None, meta: bytes = b""
) -> None:
    async with store.open_writer(key, ttl, meta=meta) as writer:
        for start in range(0, len(data), 700):  # pieces that do not line up with chunks
            await writer.write(data[start : start + 700])
        await writer.commit()


async def test_a_body_streams_in_and_out_with_its_meta(subject: Subject) -> None:
    data = body_of(10 * CHUNK + 17)
    await write_body(subject.store, "page", data, meta=b'{"status": 200}')
    head = await subject.store.head("page")
    assert head is not None and (head.meta, head.size) == (b'{"status": 200}', len(data))
    reader = await subject.store.open_reader("page")
    assert reader is not None
    chunks = [chunk async for chunk in reader]
    assert b"".join(chunks) == data
    assert all(len(chunk) == CHUNK for chunk in chunks[:-1])


@pytest.mark.parametrize(
    ("start", "end"), [(0, 1), (5, CHUNK + 5), (CHUNK, 2 * CHUNK), (3 * CHUNK - 1, None)]
)
async def test_a_byte_range_reads_only_the_chunks_it_covers(
    subject: Subject, start: int, end: int | None
) -> None:
    data = body_of(3 * CHUNK + 100)
    await write_body(subject.store, "page", data)
    reader = await subject.store.open_reader("page")
    assert reader is not None
    assert b"".join([chunk async for chunk in reader.chunks(start, end)]) == data[start:end]
    with pytest.raises(ValueError, match="not inside"):
        reader.chunks(0, len(data) + 1)


async def test_a_body_put_at_once_reads_as_a_written_one_and_replaces_the_entry(subject: Subject) -> None:
    data = body_of(2 * CHUNK + 9)
    await subject.store.put("page", b"a value")
    await subject.store.put_body("page", data, 60, meta=b"m")
    reader = await subject.store.open_reader("page")
    assert reader is not None and (reader.meta, reader.size) == (b"m", len(data))
    chunks = [chunk async for chunk in reader]
    assert b"".join(chunks) == data and [len(chunk) for chunk in chunks] == [CHUNK, CHUNK, 9]
    await subject.store.put_body("empty", b"")
    head = await subject.store.head("empty")
    assert head is not None and head.size == 0


async def test_an_empty_body_is_an_entry(subject: Subject) -> None:
    await write_body(subject.store, "empty", b"", meta=b"m")
    reader = await subject.store.open_reader("empty")
    assert reader is not None and reader.size == 0 and await reader.read() == b""


async def test_nothing_is_visible_before_commit(subject: Subject) -> None:
    store = subject.store
    async with store.open_writer("page", meta=b"m") as writer:
        await writer.write(body_of(3 * CHUNK))
        assert not await store.has("page")
        assert await store.open_reader("page") is None
        await writer.commit()
    assert await store.has("page")


async def test_an_exception_or_no_commit_leaves_no_entry_and_the_old_one_intact(subject: Subject) -> None:
    store = subject.store
    await write_body(store, "page", b"old body")
    with pytest.raises(RuntimeError):
        async with store.open_writer("page") as writer:
            await writer.write(body_of(5 * CHUNK))
            raise RuntimeError("client went away")
    async with store.open_writer("page") as writer:
        await writer.write(b"never committed")
    async with store.open_writer("fresh") as writer:
        await writer.write(b"never committed")
    reader = await store.open_reader("page")
    assert reader is not None and await reader.read() == b"old body"
    assert not await store.has("fresh")


async def test_a_cancelled_writer_leaves_no_entry(subject: Subject) -> None:
    store = subject.store
    wrote = trio.Event()

    async def writer_task() -> None:
        async with store.open_writer("page") as writer:
            await writer.write(body_of(2 * CHUNK))
            wrote.set()
            await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer_task)
        await wrote.wait()
        nursery.cancel_scope.cancel()
    assert not await store.has("page")


async def test_a_reader_finishes_a_body_replaced_under_it(subject: Subject) -> None:
    store = subject.store
    old = body_of(4 * CHUNK)
    await write_body(store, "page", old)
    reader = await store.open_reader("page")
    assert reader is not None
    chunks = reader.chunks()
    first = await chunks.__anext__()
    await write_body(store, "page", b"new")
    await store.sweep()
    rest = [chunk async for chunk in chunks]
    assert first + b"".join(rest) == old
    fresh = await store.open_reader("page")
    assert fresh is not None and await fresh.read() == b"new"


async def test_a_body_expires_with_its_ttl(subject: Subject) -> None:
    await write_body(subject.store, "page", b"body", ttl=TTL)
    assert await subject.store.head("page") is not None
    await subject.advance(TTL * 1.5)
    assert await subject.store.head("page") is None
    assert await subject.store.open_reader("page") is None


async def test_values_and_bodies_do_not_read_as_each_other(subject: Subject) -> None:
    store = subject.store
    await store.put("value", b"v")
    await write_body(store, "body", b"b")
    with pytest.raises(EntryKindError):
        await store.get("body")
    with pytest.raises(EntryKindError):
        await store.pull("body")
    with pytest.raises(EntryKindError):
        await store.increment("body")
    with pytest.raises(EntryKindError):
        await store.open_reader("value")
    assert await store.has("body")
    assert await store.forget("body")
    assert not await store.has("body")


async def test_a_put_replaces_a_body_and_a_body_replaces_a_value(subject: Subject) -> None:
    store = subject.store
    await write_body(store, "k", b"body")
    await store.put("k", b"value")
    assert await store.get("k") == b"value"
    await write_body(store, "k", b"body again")
    reader = await store.open_reader("k")
    assert reader is not None and await reader.read() == b"body again"
