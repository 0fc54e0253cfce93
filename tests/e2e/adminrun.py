"""A declared proxy with the admin service, served in the test's own trio loop, for the admin's API and
browser tests: service "edge" routes to cluster "api" (two origins, TCP health checks)."""

from __future__ import annotations

import textwrap
from pathlib import Path

import attrs
import httpx
import trio

from actorproxy.admin import AdminService
from actorproxy.config import ServerConf
from actorproxy.declared import DeclaredProxyHandle, build_proxy
from actorproxy.server import Server
from actors import ActorRef, ActorSystem
from supervisors import which_children

#: The admin token of these tests (never a real one).
TOKEN = "test-admin-token-0123456789"


def admin_yaml(ports: list[int], *, health_frequency: float = 3600, token: str = TOKEN) -> str:
    backends = ", ".join(f'"127.0.0.1:{port}"' for port in ports)
    return textwrap.dedent(
        f"""
        admin:
          listen: 127.0.0.1:0
          token: {token}
        services:
          - name: edge
            listeners:
              - address: 127.0.0.1:0
            routes:
              - path_prefix: /
                upstream: api
        upstreams:
          - name: api
            discovery:
              static: [{backends}]
            health_check:
              tcp: {{connect_timeout: 1.0}}
              frequency: {health_frequency}
        """
    )


@attrs.frozen
class AdminRunning:
    server: Server
    handle: DeclaredProxyHandle
    admin: AdminService
    proxy_url: str

    @property
    def admin_url(self) -> str:
        return self.admin.url.rstrip("/")

    @property
    def system(self) -> ActorSystem:
        assert self.server.system is not None
        return self.server.system

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.admin_url)

    async def load_balancer_actor(self) -> ActorRef:
        """The running `LoadBalancerActor` of cluster "api"."""
        supervisor = self.system.whereis("upstream api")
        assert supervisor is not None
        [child] = await which_children(supervisor)
        assert child.ref is not None
        return child.ref


async def run_admin(nursery: trio.Nursery, text: str, conf_path: Path | None = None) -> AdminRunning:
    """Build the proxy declared in `text` plus its admin service into a fresh server, and serve it."""
    conf = ServerConf.from_yaml(text)
    server = Server(conf)
    if conf_path is not None:
        await trio.Path(conf_path).write_text(text)
        server.conf_path = str(conf_path)
    handle = build_proxy(server)
    admin = server.add_admin_service()
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    return AdminRunning(server, handle, admin, f"http://{host}:{port}")
