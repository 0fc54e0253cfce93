"""Health checks against real loopback listeners: TCP connects, HTTP statuses, validators, timeouts, reuse.

Real sockets because a health check is a real connect. The timeouts are small real ones (0.2 s): a server
that never answers cannot be timed out on the autojump clock while the kernel owns the socket.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import attrs
import h11
import pytest
import trio
from helpers import refused_port

from actorproxy.http import Error, ErrorType, ResponseHeader
from actorproxy.lb import (
    Backend,
    Backends,
    HealthTracker,
    HttpHealthCheck,
    Static,
    TcpHealthCheck,
    run_checks,
)

SHORT_TIMEOUT = 0.2


@attrs.define
class HealthServer:
    """Answers each request with the next status of `statuses` (the last one repeats); counts connections."""

    statuses: list[int]
    answer: bool = True
    accepts: int = 0
    requests: list[tuple[str, str]] = attrs.Factory(list)  # (target, host)

    def _next_status(self) -> int:
        return self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]

    async def handle(self, stream: trio.SocketStream) -> None:
        self.accepts += 1
        conn = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                event = conn.next_event()
                if event is h11.NEED_DATA:
                    data = await stream.receive_some()
                    if not data:
                        return
                    conn.receive_data(data)
                    continue
                if isinstance(event, h11.Request):
                    host = dict(event.headers).get(b"host", b"").decode()
                    self.requests.append((event.target.decode(), host))
                    if not self.answer:
                        await trio.sleep_forever()
                    continue
                if isinstance(event, h11.EndOfMessage):
                    status = self._next_status()
                    body = b"" if status == 204 else b"some body to drain"
                    headers = [] if status == 204 else [("Content-Length", str(len(body)))]
                    response = conn.send(h11.Response(status_code=status, headers=headers))
                    if body:
                        response += conn.send(h11.Data(data=body))
                    await stream.send_all(response + conn.send(h11.EndOfMessage()))
                    if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                        return
                    conn.start_next_cycle()
                    continue
                return


@asynccontextmanager
async def serving(server: HealthServer) -> AsyncIterator[Backend]:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, server.handle, 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        yield Backend(("127.0.0.1", port))
        nursery.cancel_scope.cancel()


def closed_port() -> int:
    return refused_port()


# -- TCP -----------------------------------------------------------------------------------------------------


async def test_tcp_check_healthy_on_a_listener() -> None:
    server = HealthServer([200])
    async with serving(server) as backend:
        await TcpHealthCheck().check(backend)
        tracker = HealthTracker(initially_healthy=False)
        assert await run_checks(TcpHealthCheck(), [backend], tracker, parallel=False) == {backend: True}


async def test_tcp_check_unhealthy_on_a_closed_port() -> None:
    backend = Backend(("127.0.0.1", closed_port()))
    with pytest.raises(Error) as info:
        await TcpHealthCheck().check(backend)
    assert info.value.etype == ErrorType.CONNECT_REFUSED
    tracker = HealthTracker()
    assert await run_checks(TcpHealthCheck(), [backend], tracker, parallel=False) == {backend: False}


# -- HTTP ----------------------------------------------------------------------------------------------------


async def test_http_check_status() -> None:
    server = HealthServer([200, 500])
    check = HttpHealthCheck("health.example", path="/ready")
    async with serving(server) as backend:
        await check.check(backend)
        with pytest.raises(Error, match="status 500, expected 200"):
            await check.check(backend)
    assert server.requests == [("/ready", "health.example")] * 2
    assert server.accepts == 2  # no reuse by default


async def test_http_check_expected_status() -> None:
    server = HealthServer([204])
    async with serving(server) as backend:
        await HttpHealthCheck("h", expected_status=204).check(backend)
        with pytest.raises(Error, match="status 204"):
            await HttpHealthCheck("h").check(backend)


async def test_http_check_validator() -> None:
    seen: list[int] = []

    def validator(response: ResponseHeader) -> None:
        seen.append(response.status)
        if response.status != 503:
            raise ValueError("wanted maintenance mode")

    server = HealthServer([200, 503])
    check = HttpHealthCheck("h", validator=validator)
    async with serving(server) as backend:
        with pytest.raises(ValueError, match="maintenance"):
            await check.check(backend)
        await check.check(backend)  # the validator replaces the status check
    assert seen == [200, 503]


async def test_http_check_times_out_on_a_silent_server() -> None:
    server = HealthServer([200], answer=False)
    check = HttpHealthCheck("h", read_timeout=SHORT_TIMEOUT, reuse_connection=True)
    async with serving(server) as backend:
        start = trio.current_time()
        with pytest.raises(Error) as info:
            await check.check(backend)
        assert info.value.etype == ErrorType.READ_TIMEDOUT
        assert trio.current_time() - start < 5
        server.answer = True
        await check.check(backend)  # the timed-out connection was dropped, not reused
    assert server.accepts == 2


async def test_http_check_reuses_one_connection() -> None:
    server = HealthServer([200])
    check = HttpHealthCheck("h", reuse_connection=True)
    async with serving(server) as backend:
        for _ in range(4):
            await check.check(backend)
        await check.aclose()
    assert len(server.requests) == 4
    assert server.accepts == 1


async def test_http_check_drops_the_connection_after_a_bad_status() -> None:
    server = HealthServer([200, 500, 200])
    check = HttpHealthCheck("h", reuse_connection=True)
    async with serving(server) as backend:
        await check.check(backend)
        with pytest.raises(Error):
            await check.check(backend)
        await check.check(backend)
        await check.aclose()
    assert server.accepts == 2


async def test_http_check_port_override() -> None:
    server = HealthServer([200])
    async with serving(server) as backend:
        assert not isinstance(backend.addr, str)
        elsewhere = Backend(("127.0.0.1", closed_port()))
        await HttpHealthCheck("h", port_override=backend.addr[1]).check(elsewhere)
    assert server.accepts == 1


async def test_run_checks_over_real_backends() -> None:
    up = HealthServer([200])
    down = Backend(("127.0.0.1", closed_port()))
    for parallel in (False, True):
        tracker = HealthTracker(consecutive_failure=2)
        async with serving(up) as backend:
            check = HttpHealthCheck("h")
            assert await run_checks(check, [backend, down], tracker, parallel=parallel) == {}
            assert await run_checks(check, [backend, down], tracker, parallel=parallel) == {down: False}
            assert tracker.healthy(backend)


# -- the seed's `Backends` tests, on loopback ----------------------------------------------------------------


@asynccontextmanager
async def two_good_one_bad() -> AsyncIterator[tuple[Backend, Backend, Backend]]:
    async with serving(HealthServer([200])) as good1, serving(HealthServer([200])) as good2:
        yield good1, good2, Backend(("127.0.0.1", closed_port()))


@pytest.mark.parametrize("parallel", [False, True])
async def test_backends_update_callback_and_health(parallel: bool) -> None:
    """Pingora's `test_backends` and `test_parallel_health_check`."""
    async with two_good_one_bad() as (good1, good2, bad):
        discovery = Static()
        for backend in (good1, good2, bad):
            discovery.add(backend)
        backends = Backends.new(discovery)
        backends.set_health_check(TcpHealthCheck())

        updated: list[frozenset[Backend]] = []
        assert await backends.update(updated.append)  # new backends discovered: the callback runs
        assert updated == [frozenset({good1, good2, bad})]
        assert not await backends.update(updated.append)  # nothing new: it does not
        assert len(updated) == 1

        await backends.run_health_check(parallel)
        assert backends.get_backend() == {good1, good2, bad}
        assert backends.ready(good1) and backends.ready(good2)
        assert not backends.ready(bad)
