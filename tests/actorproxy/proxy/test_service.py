"""HttpProxyService on memory streams: serving through a MemoryListener, and the drain."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from memory_proxy import ORIGIN, ToOrigin, read_until_closed
from trio.testing import MockClock

from actorproxy.proxy import DRAIN_LINGER, ListenFds, http_proxy_service
from actorproxy.testing import (
    MemoryListener,
    MemoryNetwork,
    Origin,
    OriginRequest,
    OriginResponse,
    RawResponse,
    exchange,
)


async def test_a_service_on_a_memory_listener_proxies_to_the_memory_network(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    response = await proxy.get("/hello", headers=[("X-Asked", "yes")])
    assert (response.status, response.body) == (200, b"origin GET /hello")
    assert response.header("x-origin") == "origin"
    [request] = origin.requests
    assert (request.method, request.target, request.header("x-asked")) == ("GET", "/hello", "yes")


def test_binding_the_listeners_skips_a_listener_endpoint() -> None:
    service = http_proxy_service(None, ToOrigin())
    service.add_listener(MemoryListener())
    fds = ListenFds()
    service.bind_listeners(fds)
    assert fds.keys() == []


class Held:
    """An origin answer that waits for `release`; `arrived` is set when the request is in."""

    def __init__(self) -> None:
        self.arrived = trio.Event()
        self.release = trio.Event()

    async def respond(self, request: OriginRequest) -> OriginResponse:
        self.arrived.set()
        await self.release.wait()
        return OriginResponse(body=b"finished")


async def test_a_drain_lets_the_request_in_flight_finish_with_connection_close(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    held = Held()
    network.serve(ORIGIN, Origin(held.respond).serve)
    proxy = await start_proxy()
    responses: list[RawResponse] = []

    async def client(stream: trio.abc.Stream) -> None:
        responses.append(await exchange(stream, "GET", "/in-flight", until_closed=True))

    async with await proxy.connect() as stream, trio.open_nursery() as nursery:
        nursery.start_soon(client, stream)
        await held.arrived.wait()
        await proxy.service.begin_drain(proxy.system)
        held.release.set()
    [response] = responses
    assert (response.status, response.body) == (200, b"finished")
    assert response.header("connection") == "close"
    assert response.closed
    # The listener stopped with the drain: a new connection waits unaccepted.
    await proxy.connect()
    await trio.testing.wait_all_tasks_blocked()
    assert proxy.listener.pending == 1


async def test_a_drain_gives_an_idle_connection_one_more_request(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    async with await proxy.connect() as stream:
        assert (await exchange(stream, "GET", "/first")).header("connection") == "keep-alive"
        await proxy.service.begin_drain(proxy.system)
        await trio.sleep(DRAIN_LINGER / 2)  # the client sends its next request a little later
        last = await exchange(stream, "GET", "/last", until_closed=True)
    assert last.status == 200
    assert last.header("connection") == "close"
    assert last.closed
    assert origin.targets == ["/first", "/last"]


async def test_a_drained_idle_connection_closes_after_drain_linger(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()  # keep-alive timeout: 60 s
    async with await proxy.connect() as stream:
        assert (await exchange(stream, "GET", "/first")).status == 200
        drained_at = trio.current_time()
        await proxy.service.begin_drain(proxy.system)
        assert await read_until_closed(stream) == b""
        assert trio.current_time() - drained_at == pytest.approx(DRAIN_LINGER)
