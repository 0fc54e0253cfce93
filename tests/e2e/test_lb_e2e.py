"""A load balancer with TCP health checks in front of three real upstreams; one of them goes away.

Real time (health checks are real connects), with a 0.2 s interval to keep the test short.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import trio
from upstream import Upstream

from actorproxy.lb import Backend, LoadBalancer, TcpHealthCheck
from actorproxy.proxy import HttpPeer, ProxyHttp, Session
from actorproxy.server import background_service
from actors import ActorSystem

INTERVAL = 0.2


class LB(ProxyHttp):
    def __init__(self, lb: LoadBalancer) -> None:
        self.lb = lb

    def new_ctx(self) -> None:
        return None

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        backend = self.lb.select(b"", 256)
        assert backend is not None
        return HttpPeer(backend.addr, tls=False, sni="")


async def serve_in(scope: trio.CancelScope, upstream: Upstream, *, task_status: Any) -> None:
    with scope:
        await upstream.serve(task_status=task_status)


async def test_a_stopped_upstream_gets_no_more_requests(
    nursery: trio.Nursery, system: ActorSystem, start_proxy: Any
) -> None:
    upstreams = [Upstream(f"up{n}") for n in range(3)]
    scopes = [trio.CancelScope() for _ in upstreams]
    for scope, upstream in zip(scopes, upstreams, strict=True):
        await nursery.start(partial(serve_in, scope, upstream))
    lb = LoadBalancer.try_from_iter([f"127.0.0.1:{u.port}" for u in upstreams])
    stopped = upstreams[1]
    gone = Backend(("127.0.0.1", stopped.port))
    marked_down = trio.Event()

    def health_changed(backend: Backend, healthy: bool) -> None:
        if backend == gone and not healthy:
            marked_down.set()

    lb.set_health_check(TcpHealthCheck(connect_timeout=0.5, health_changed=health_changed))
    lb.health_check_frequency = INTERVAL
    bg = background_service("health check", lb)
    # The background service starts before the proxy: its start handshake is the LB's readiness.
    await system.spawn(bg.child_spec().start, name=bg.name)
    assert len(lb.ready_backends()) == 3
    base, _ = await start_proxy(LB(bg.task()))

    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(6):
            assert (await client.get("/echo")).status_code == 200
        assert all(u.requests for u in upstreams)  # round robin reached all three

        scopes[1].cancel()  # closes its listener and its connections
        # The flip is published in the same step as the callback runs (no checkpoint in between).
        with trio.fail_after(5):
            await marked_down.wait()
        assert not lb.ready(gone)
        served = len(stopped.requests)
        before = [len(u.requests) for u in upstreams]

        for _ in range(30):
            response = await client.get("/echo")
            assert response.status_code == 200
            assert response.headers["x-upstream"] != stopped.name
    assert len(stopped.requests) == served
    after = [len(u.requests) for u in upstreams]
    assert after[0] - before[0] + after[2] - before[2] == 30
    assert after[0] > before[0] and after[2] > before[2]
