"""`AdminService`: the admin API and page as a service of the server, beside the proxy services.

The subtree (one_for_one: the monitor and the listener restart on their own):

    Supervisor "admin"
    ├── AdminMonitorActor      samples the counters every second, records supervisor events
    └── Service "admin/http"   an HttpProxyService whose AdminApp answers every request itself

Rules:
- The admin is an HTTP proxy service that proxies nothing: it gets TCP listeners, the listening-socket
  table (so a graceful upgrade hands its socket over too), a supervised connection per client and the
  server's drain for free.
- With `threads` > 1, only worker 0 serves the admin listener (the others still sample, unseen): a page
  must talk to one tree, and the WebSocket must not jump between workers. The admin therefore shows, and
  acts on, worker 0's process: its tree, its counters, its load balancers (each worker has its own).
- When the server drains, WebSockets close (1001) at once instead of holding the drain up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import attrs

from actorproxy.config import AdminConf, ConfigError
from actorproxy.proxy import HttpProxyService, ListenFds, ProxyCounters
from actors import ActorSystem
from supervisors import ChildSpec, Strategy, Supervisor

from ._app import AdminApp
from ._monitor import AdminMonitorActor, AdminState
from ._target import AdminTarget

__all__ = ["AdminService"]


class AdminService:
    """The admin API and the live supervision-tree page, on one listener (see the module rules).

    Args:
        target: the server to show and act on (`Server.add_admin_service` passes itself).
        listen: "host:port" (port 0: the OS picks one; see `url`).
        token: what write actions must send in `X-Admin-Token`; None only on a loopback address.
        name: the service's name (its actor path).

    Raises:
        ConfigError: `listen` is not host:port, or a token is missing or too short (`admin.listen`,
            `admin.token`).
    """

    def __init__(
        self, target: AdminTarget, listen: str, *, token: str | None = None, name: str = "admin"
    ) -> None:
        try:
            self.conf = AdminConf(listen=listen, token=token)
        except ConfigError as exc:
            raise ConfigError([attrs.evolve(p, path=f"admin.{p.path}") for p in exc.problems]) from None
        self.name = name
        self.target = target
        self.state = AdminState()
        self.app = AdminApp(target, self.state, self.counters, token=token)
        self.http = HttpProxyService(self.app, name=f"{name}/http", conf=target.configuration)
        self.http.add_tcp(listen)

    @classmethod
    def from_conf(
        cls,
        target: AdminTarget,
        conf: AdminConf | None,
        *,
        listen: str | None = None,
        token: str | None = None,
        name: str = "admin",
    ) -> AdminService:
        """The admin service of `conf` (the `admin:` section), `listen` and `token` given instead of its."""
        conf = conf or AdminConf()
        return cls(
            target,
            conf.listen if listen is None else listen,
            token=conf.token if token is None else token,
            name=name,
        )

    def __repr__(self) -> str:
        return f"<AdminService {self.name} {self.conf.listen}>"

    @property
    def url(self) -> str:
        """`http://host:port/` of the page, once the listener is bound."""
        host, port = self.http.bound[0][:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def counters(self) -> Iterator[tuple[str, ProxyCounters]]:
        """The counters of the server's proxy services, by name (the admin's own are not shown)."""
        for service in self.target.services:
            if isinstance(service, HttpProxyService):
                yield service.name, service.counters

    # -- the ListeningService protocol -------------------------------------------------------------------

    def use_listen_fds(self, fds: ListenFds) -> None:
        self.http.use_listen_fds(fds)

    def bind_listeners(self, fds: ListenFds) -> None:
        self.http.bind_listeners(fds)

    async def begin_drain(self, system: ActorSystem) -> None:
        self.state.close()
        await self.http.begin_drain(system)

    def child_spec(self) -> ChildSpec:
        """The monitor, and the listener in a single process or worker 0 (see the module rules)."""
        state = self.state
        counters = self.counters
        children = [ChildSpec(id="monitor", start=lambda: AdminMonitorActor(state, counters))]
        if self.target.worker in (None, 0):
            children.append(attrs.evolve(self.http.child_spec(), name=self.http.name))

        def build() -> Any:
            return Supervisor(children, strategy=Strategy.ONE_FOR_ONE, intensity=10, period=10)

        return ChildSpec(id=self.name, start=build)
