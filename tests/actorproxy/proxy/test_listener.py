"""ListenerActor on a MemoryListener: connection limits, hand-over, stop and restart.

The per-client limit (`max_connections_per_client`) is keyed by the client's address, which a memory stream
does not have: it is tested over real sockets in tests/e2e/test_connection_limits.py.
"""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from memory_proxy import read_until_closed
from trio.testing import MockClock

from actorproxy.testing import Origin, exchange
from supervisors import restart_child, terminate_child


async def test_accepting_pauses_at_max_connections_and_resumes_when_one_closes(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(max_connections=2)
    first, second = await proxy.connect(), await proxy.connect()
    assert (await exchange(first, "GET", "/one")).status == 200
    assert (await exchange(second, "GET", "/two")).status == 200
    third = await proxy.connect()  # connected, but waiting in the backlog
    await third.send_all(b"GET /three HTTP/1.1\r\nHost: localhost\r\n\r\n")
    await trio.testing.wait_all_tasks_blocked()
    assert (proxy.listener.accepted, proxy.listener.pending) == (2, 1)
    assert (await exchange(second, "GET", "/two-again")).status == 200
    assert origin.targets == ["/one", "/two", "/two-again"]
    await first.aclose()  # a slot frees: the third connection is accepted and served
    answer = await third.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert origin.targets[-1] == "/three"
    assert proxy.listener.pending == 0
    await second.aclose()
    await third.aclose()


async def test_a_connection_the_proxy_closes_gives_its_slot_back(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(max_connections=1, keepalive_timeout=5.0)
    idle = await proxy.connect()
    assert (await exchange(idle, "GET", "/idle")).status == 200
    waiting = await proxy.connect()
    await trio.testing.wait_all_tasks_blocked()
    assert proxy.listener.pending == 1
    # The keep-alive timeout closes the idle connection (the client never does), and the next is accepted.
    assert await read_until_closed(idle) == b""
    assert (await exchange(waiting, "GET", "/next")).status == 200
    assert proxy.listener.pending == 0


async def test_a_stopped_listener_accepts_nothing_and_a_restarted_one_takes_the_backlog(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    supervisor = proxy.system.whereis(proxy.service.name)
    assert supervisor is not None
    served = await proxy.connect()
    assert (await exchange(served, "GET", "/before")).status == 200
    await terminate_child(supervisor, "listener-0")
    waiting = await proxy.connect()
    await trio.testing.wait_all_tasks_blocked()
    assert proxy.listener.pending == 1
    # Connections handed over before the stop are the ConnectionSupervisor's: they go on.
    assert (await exchange(served, "GET", "/still")).status == 200
    await restart_child(supervisor, "listener-0")
    assert (await exchange(waiting, "GET", "/after")).status == 200
    assert origin.targets == ["/before", "/still", "/after"]
    await served.aclose()
    await waiting.aclose()


async def test_a_listener_endpoint_is_bound_to_its_listener(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    assert proxy.service.bound == {0: proxy.listener}
