"""Fixtures for the proxy on memory streams (see `memory_proxy`).

Every test here takes `autojump_clock` (pytest-trio runs a test on the clock among its arguments):
timeouts, idle timers and lingers pass in virtual time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from memory_proxy import ORIGIN, MemoryProxy, ToOrigin

from actorproxy.proxy import ProxyHttp, http_proxy_service
from actorproxy.testing import MemoryListener, MemoryNetwork, Origin, open_memory_network
from actors import ActorSystem


@pytest.fixture
async def network() -> AsyncIterator[MemoryNetwork]:
    async with open_memory_network() as network:
        yield network


@pytest.fixture
def origin(network: MemoryNetwork) -> Origin:
    """An origin served at `ORIGIN`."""
    server = Origin()
    network.serve(ORIGIN, server.serve)
    return server


@pytest.fixture
def start_proxy(network: MemoryNetwork, actor_system: ActorSystem) -> Callable[..., Any]:
    """`await start_proxy(app, **service_attrs)` runs `app` on a `MemoryListener` and returns a `MemoryProxy`.

    `max_connections=N` goes to the listener; other keywords set the service's attributes.
    """

    async def start(
        app: ProxyHttp | None = None, *, max_connections: int | None = None, **attributes: Any
    ) -> MemoryProxy:
        service = http_proxy_service(None, app if app is not None else ToOrigin())
        for key, value in attributes.items():
            assert hasattr(service, key), key
            setattr(service, key, value)
        listener = MemoryListener(service.name)
        service.add_listener(listener, max_connections=max_connections)
        service.connect = network.connect
        await actor_system.spawn(service.child_spec().start, name=service.name)
        return MemoryProxy(service, listener, network, actor_system)

    return start
