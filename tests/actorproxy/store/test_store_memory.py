"""What only the memory backend does: its bounds, least recently used entry first.

(The verbs every backend shares are in tests/e2e/test_store_backends.py.)
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from actorproxy.config import DEFAULT_STORE_MEMORY_MAX_SIZE, StoreConf
from actorproxy.store import EntryTooLarge, MemoryBackend, Store


async def test_a_read_makes_an_entry_the_most_recently_used() -> None:
    store = Store(MemoryBackend(max_entries=3))
    for key in "abc":
        await store.put(key, b"v")
    assert await store.get("a") == b"v"
    await store.put("d", b"v")
    assert await store.many("abcd") == {"a": b"v", "b": None, "c": b"v", "d": b"v"}
    assert (await store.statistics()).evictions == 1


async def test_max_size_evicts_until_the_new_entry_fits_and_refuses_one_that_never_could() -> None:
    store = Store(MemoryBackend(max_size=100, chunk_size=16))
    await store.put("a", b"x" * 40)
    await store.put("b", b"x" * 40)
    async with store.open_writer("c") as writer:
        await writer.write(b"y" * 40)
        await writer.commit()
    assert not await store.has("a")
    assert await store.has("b") and await store.has("c")
    assert (await store.statistics()).size == (1 + 1 + 40) + (1 + 40)
    with pytest.raises(EntryTooLarge):
        await store.put("big", b"x" * 200)
    with pytest.raises(EntryTooLarge):
        async with store.open_writer("big") as writer:
            await writer.write(b"y" * 200)
    assert await store.has("b") and await store.has("c")


def test_a_memory_store_from_the_config_is_bounded_by_default() -> None:
    store = Store.from_conf(StoreConf(backend="memory"))
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    assert backend.max_size == DEFAULT_STORE_MEMORY_MAX_SIZE


async def test_the_cache_s_body_verbs_are_no_checkpoints() -> None:
    async with Store(MemoryBackend()) as store:
        with trio.testing.assert_no_checkpoints():
            await store.put_body("k", b"body", 60, meta=b"m")
            reader = await store.open_reader("k")
            head = await store.head("k")
        assert reader is not None and await reader.read() == b"body"
        assert head is not None and head.meta == b"m"
        with trio.testing.assert_checkpoints():
            await store.get("other")  # the other verbs still are
