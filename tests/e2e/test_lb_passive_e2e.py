"""Passive health and in-flight counts with real upstreams behind the proxy.

The load loops use real clients with keep-alive; time is real (health checks are real connects).
"""

from __future__ import annotations

from collections import Counter
from functools import partial
from typing import Any

import attrs
import httpx
import trio
from upstream import Upstream

from actorproxy.http import Error, ErrorSource, ErrorType
from actorproxy.lb import Backend, LeastConnections, LoadBalancer, OutlierDetection, TcpHealthCheck
from actorproxy.proxy import HttpPeer, ProxyHttp, Session
from actorproxy.server import background_service
from actors import ActorSystem

INTERVAL = 0.5
CLIENTS = 4


class Recording(ProxyHttp):
    """Selects from `lb` and notes each pick with its time; retries failed connects, and idempotent requests
    on any connection."""

    retry_idempotent_on_fresh_connection = True

    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb
        self.picks: list[tuple[float, Backend]] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        backend = self.lb.select(b"", 256)
        if backend is None:
            raise Error.explain(ErrorType.http_status(503), "no ready backend", ErrorSource.INTERNAL)
        self.picks.append((trio.current_time(), backend))
        return HttpPeer(backend.addr, tls=False, sni="")

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        e.set_retry(True)  # nothing was sent: another backend may take it
        return e


async def serve_in(scope: trio.CancelScope, upstream: Upstream, port: int = 0, *, task_status: Any) -> None:
    with scope:
        await upstream.serve(port=port, task_status=task_status)


@attrs.define
class Load:
    """Keep-alive GETs from several clients until `stop`; counts what the clients saw."""

    base: str
    statuses: Counter[int | str] = attrs.Factory(Counter)
    done: int = 0
    stop: bool = False
    _progress: trio.Event = attrs.Factory(trio.Event)

    async def client(self) -> None:
        async with httpx.AsyncClient(base_url=self.base) as client:
            while not self.stop:
                try:
                    response = await client.get("/echo")
                    self.statuses[response.status_code] += 1
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1
                self.done += 1
                self._progress.set()
                self._progress = trio.Event()

    async def reach(self, count: int) -> None:
        while self.done < count:
            await self._progress.wait()

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


async def test_an_upstream_dies_under_load_and_comes_back(
    nursery: trio.Nursery, system: ActorSystem, start_proxy: Any
) -> None:
    upstreams = [Upstream(f"up{n}") for n in range(3)]
    scopes = [trio.CancelScope() for _ in upstreams]
    for scope, upstream in zip(scopes, upstreams, strict=True):
        await nursery.start(partial(serve_in, scope, upstream))
    dying = upstreams[1]
    gone = Backend(("127.0.0.1", dying.port))
    lb = LoadBalancer.try_from_iter([f"127.0.0.1:{u.port}" for u in upstreams])
    lb.set_health_check(TcpHealthCheck(connect_timeout=0.5))
    lb.health_check_frequency = INTERVAL
    lb.set_outlier_detection(
        OutlierDetection(consecutive_failures=2, base_ejection_time=1.0, max_ejection_percent=50)
    )
    bg = background_service("lb", lb)
    await system.spawn(bg.child_spec().start, name=bg.name)
    app = Recording(bg.task())
    base, _ = await start_proxy(app)

    load = Load(base)
    async with trio.open_nursery() as clients:
        for _ in range(CLIENTS):
            clients.start_soon(load.client)
        with trio.fail_after(20):
            await load.reach(60)
            assert dying.requests

            killed_at = trio.current_time()
            scopes[1].cancel()  # its listener and every connection to it close at once
            await load.reach(load.done + 200)
            while trio.current_time() < killed_at + 3 * INTERVAL:
                await load.reach(load.done + 1)
            assert not lb.ready(gone)
            late = [t for t, backend in app.picks if backend == gone and t > killed_at + 2 * INTERVAL]
            assert late == []

            # It comes back on the same port: an active check (or the end of its ejection) lets it in again.
            reborn = Upstream("up1-again")
            await nursery.start(partial(serve_in, trio.CancelScope(), reborn, dying.port))
            while not reborn.requests:
                await load.reach(load.done + 1)
            await load.reach(load.done + 60)
        load.stop = True
    assert load.failed == 0, load.statuses
    assert lb.ready(gone)
    assert lb.inflight == {}


async def test_least_connections_sends_new_requests_to_the_idle_upstream(
    nursery: trio.Nursery, system: ActorSystem, start_proxy: Any
) -> None:
    upstreams = [Upstream(f"up{n}") for n in range(2)]
    for upstream in upstreams:
        await nursery.start(upstream.serve)
    lb = LoadBalancer.try_from_iter([f"127.0.0.1:{u.port}" for u in upstreams], selection=LeastConnections)
    base, _ = await start_proxy(Recording(lb))

    held, release = upstreams[0].held, upstreams[0].release
    upstreams[1].held, upstreams[1].release = held, release  # whichever gets the /hold signals the test

    async with httpx.AsyncClient(base_url=base) as client:
        async with trio.open_nursery() as holding:
            holding.start_soon(client.get, "/hold")
            with trio.fail_after(10):
                await held.wait()
            busy = next(u for u in upstreams if u.requests)
            idle = next(u for u in upstreams if u is not busy)
            assert sum(lb.inflight.values()) == 1
            for _ in range(5):
                response = await client.get("/echo")
                assert response.headers["x-upstream"] == idle.name
            release.set()
        assert lb.inflight == {}
        seen = {(await client.get("/echo")).headers["x-upstream"] for _ in range(4)}
    assert seen == {"up0", "up1"}


async def test_an_upstream_answering_5xx_is_ejected(
    nursery: trio.Nursery, system: ActorSystem, start_proxy: Any
) -> None:
    upstreams = [Upstream(f"up{n}") for n in range(3)]
    for upstream in upstreams:
        await nursery.start(upstream.serve)
    upstreams[2].force_status = 503
    lb = LoadBalancer.try_from_iter([f"127.0.0.1:{u.port}" for u in upstreams])
    lb.set_outlier_detection(OutlierDetection(consecutive_failures=3, base_ejection_time=60.0))
    base, _ = await start_proxy(Recording(lb))

    async with httpx.AsyncClient(base_url=base) as client:
        statuses = Counter([(await client.get("/echo")).status_code for _ in range(30)])
    # Round robin sends every third request to the failing one until its third 503 ejects it.
    assert statuses == {200: 27, 503: 3}
    assert lb.backends().ejected() == {Backend(("127.0.0.1", upstreams[2].port))}
