"""Fixtures for end-to-end tests: real upstreams and a real proxy service on 127.0.0.1, port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import trio
import trustme
from upstream import Upstream

from actorproxy.http import available_codecs
from actorproxy.proxy import HttpProxyService, ProxyHttp, http_proxy_service
from actorproxy.testing import RedisServer
from actors import ActorSystem, open_actor_system


@pytest.fixture
async def upstreams(nursery: trio.Nursery) -> list[Upstream]:
    """Three origin servers, already listening."""
    servers = [Upstream(f"up{n}") for n in range(3)]
    for server in servers:
        await nursery.start(server.serve)
    return servers


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    """A real redis-server for one test alone, which it may stop and start again (on the same port)."""
    with RedisServer() as server:
        yield server


@pytest.fixture
async def system() -> AsyncIterator[ActorSystem]:
    async with open_actor_system("e2e") as system:
        yield system


@pytest.fixture
def ca() -> trustme.CA:
    """A throwaway certificate authority for TLS on both sides of the proxy."""
    return trustme.CA()


@pytest.fixture(params=available_codecs())
def start_proxy(system: ActorSystem, request: pytest.FixtureRequest) -> Callable[..., Any]:
    """`await start_proxy(app)` runs `app` behind a TCP listener and returns (base_url, service).

    `listen=callback` replaces the TCP listener: the callback adds the endpoints (`service.add_uds(path)`,
    `service.add_tls(...)`); the base URL is then that of the first endpoint (`http://localhost` for a Unix
    socket, `https://` for TLS); keyword arguments are the service's settings (`service.configure`). Every
    test using it runs once per available codec (the `codec` setting).
    """
    codec: str = request.param

    async def start(
        app: ProxyHttp, *, listen: Callable[[HttpProxyService], None] | None = None, **settings: Any
    ) -> tuple[str, HttpProxyService]:
        service = http_proxy_service(None, app)
        service.configure(codec=codec, **settings)
        if listen is None:
            service.add_tcp("127.0.0.1:0")
        else:
            listen(service)
        await system.spawn(service.child_spec().start, name=service.name)
        endpoint = service.endpoints[0]
        if endpoint.path is not None:
            return "http://localhost", service
        host, port = service.bound[0]
        scheme = "https" if endpoint.ssl_context is not None else "http"
        return f"{scheme}://{host}:{port}", service

    return start


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 (a free port, a temporary directory, no persistence), shared by the
    session's tests: give each test its own key prefix (`RedisConf(url=..., key_prefix=...)`)."""
    with RedisServer() as server:
        yield server
