"""Fixtures for the proxy on memory streams (see `memory_proxy`).

Every test here takes `autojump_clock` (pytest-trio runs a test on the clock among its arguments):
timeouts, idle timers and lingers pass in virtual time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import trio
from memory_proxy import ORIGIN, MemoryProxy, ToOrigin

from actorproxy.proxy import ProxyHttp, http_proxy_service
from actorproxy.testing import MemoryListener, MemoryNetwork, Origin, open_memory_network
from actors import ActorSystem

# A test waiting for what never comes fails after this much virtual time: on the autojump clock, periodic
# timers (the pool's sweep) would otherwise move time on forever, until the run's own timeout.
WATCHDOG = 3600.0


async def _bark() -> None:
    await trio.sleep(WATCHDOG)
    raise TimeoutError(f"the test still waits after {WATCHDOG:g} s of virtual time")


@pytest.fixture
async def network() -> AsyncIterator[MemoryNetwork]:
    """The memory network, and the watchdog of every test that uses it."""
    async with open_memory_network() as network, trio.open_nursery() as watchdog:
        watchdog.start_soon(_bark)
        yield network
        watchdog.cancel_scope.cancel()


@pytest.fixture
def origin(network: MemoryNetwork) -> Origin:
    """An origin served at `ORIGIN`."""
    server = Origin()
    network.serve(ORIGIN, server.serve)
    return server


@pytest.fixture
def start_proxy(network: MemoryNetwork, actor_system: ActorSystem) -> Callable[..., Any]:
    """`await start_proxy(app, **settings)` runs `app` on a `MemoryListener` and returns a `MemoryProxy`.

    `max_connections=N` goes to the listener; other keywords are the service's settings (`configure`).
    """

    async def start(
        app: ProxyHttp | None = None, *, max_connections: int | None = None, **settings: Any
    ) -> MemoryProxy:
        service = http_proxy_service(None, app if app is not None else ToOrigin())
        service.configure(**settings)
        listener = MemoryListener(service.name)
        service.add_listener(listener, max_connections=max_connections)
        service.connect = network.connect
        await actor_system.spawn(service.child_spec().start, name=service.name)
        return MemoryProxy(service, listener, network, actor_system)

    return start
