"""The store as a background service of a `Server`: opened in the process that runs it, ready before the
services that depend on it, sweeping on its interval (virtual time), closed at shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import serving

from actorproxy.config import ServerConf
from actorproxy.server import Server, background_service
from actorproxy.store import MemoryBackend, Store, StoreClosed


async def test_the_service_sweeps_expired_entries_every_interval(autojump_clock: Any) -> None:
    backend = MemoryBackend(clock=trio.current_time)
    store = Store(backend, sweep_interval=10)
    server = Server()
    bg = background_service("store", store)
    assert bg.task() is store  # what a ProxyHttp application is given
    server.add_service(bg)
    async with serving(server):
        await store.put("short", b"v", ttl=5)
        await store.put("long", b"v")
        await trio.sleep(6)
        assert (await store.statistics()).entries == 2  # expired, invisible, not yet swept
        assert not await store.has("short")
        await trio.sleep(5)
        assert (await store.statistics()).entries == 1


async def test_a_server_opens_the_configured_store_and_closes_it_at_shutdown(
    tmp_path: Path, autojump_clock: Any
) -> None:
    conf = ServerConf.from_mapping({"store": {"backend": "sqlite", "path": str(tmp_path / "s.db")}})
    assert conf.store is not None
    store = Store.from_conf(conf.store, redis=conf.redis)
    server = Server(conf)
    server.add_service(background_service("store", store))
    with pytest.raises(StoreClosed):
        await store.get("k")
    async with serving(server) as system:
        await store.put("k", b"v")
        assert await store.get("k") == b"v"
        await system.shutdown()
    with pytest.raises(StoreClosed):
        await store.get("k")
