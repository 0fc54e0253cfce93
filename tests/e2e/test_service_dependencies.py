"""A proxy service that depends on a background task opens its listeners only once the task is ready."""

from __future__ import annotations

import errno
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session, http_proxy_service
from actorproxy.server import Server, background_service
from actors import ActorSystem
from supervisors import BackgroundService, ServiceReadyNotifier, ShutdownWatch


class ToUpstream(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


class Gate(BackgroundService):
    """Ready only once the test opens the gate; runs until the server shuts down."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.open = trio.Event()
        #: Whether the proxy was still running when the task was told to shut down.
        self.proxy_running_at_shutdown: bool | None = None
        self.system: ActorSystem | None = None

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        self.entered.set()
        await self.open.wait()
        ready_notifier.notify_ready()
        await shutdown.wait()
        assert self.system is not None
        self.proxy_running_at_shutdown = self.system.whereis("proxy") is not None


async def test_the_proxy_listens_only_once_its_dependency_is_ready(
    upstreams: list[Upstream], tmp_path: Path
) -> None:
    socket_path = str(tmp_path / "proxy.sock")
    gate = Gate()
    server = Server()
    proxy = http_proxy_service(server.configuration, ToUpstream(upstreams[0].port))
    proxy.add_tcp("127.0.0.1:0")
    proxy.add_uds(socket_path)
    bg = background_service("gate", gate)
    # Added first, yet started last: the dependency decides.
    server.add_service(proxy, depends_on=[bg])
    server.add_service(bg)

    async with trio.open_nursery() as nursery:
        serving = trio.Event()

        async def serve() -> None:
            gate.system = await nursery.start(server.serve)
            serving.set()

        nursery.start_soon(serve)
        await gate.entered.wait()
        await trio.testing.wait_all_tasks_blocked()
        # The task is initializing: the proxy has not started, nothing is bound, connecting fails.
        assert not serving.is_set()
        assert proxy.bound == {}
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock, pytest.raises(OSError) as refused:
            sock.connect(socket_path)
        assert refused.value.errno in (errno.ENOENT, errno.ECONNREFUSED)

        gate.open.set()
        await serving.wait()
        host, port = proxy.bound[0]
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/echo/tcp")).status_code == 200
        transport = httpx.AsyncHTTPTransport(uds=socket_path)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            assert (await client.get("/echo/uds")).status_code == 200

        # A graceful drain stops the proxy first, then tells the task to finish.
        assert gate.system is not None
        await gate.system.shutdown()
        assert gate.proxy_running_at_shutdown is False
        nursery.cancel_scope.cancel()
    assert [r["target"] for r in upstreams[0].requests] == ["/echo/tcp", "/echo/uds"]
