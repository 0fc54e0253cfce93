"""`SitesActor`: owns the sites table; `SitesService`: it and the sites' processes, as one subtree.

    Service supervisor "sites"          rest_for_one
    ├── Supervisor "processes"          one_for_one; a SiteProcessActor per `run` site, added and removed
    │                                   as sites come and go (child id: the site's name), restarted with
    │                                   back-off when its process exits
    └── SitesActor "table"              reads the sites every `park_interval`, publishes them

Rules:
- Every `park_interval` seconds (and on start) the actor reads the sites: the `sites:` section and the park
  folders (in a worker thread). A site whose definition is unchanged keeps its route, its process and its
  state; a new `run` site gets a process, a removed or changed one has its process stopped (SIGTERM, then
  SIGKILL) before anything new starts under its name.
- When the set changed, it publishes, in one synchronous step: the proxy's route table (replaced whole),
  the DNS server's names (`LocalNames.publish`), then tells the certificates actor (`on_names`).
- The status file is rewritten when what it shows (sites and process states) changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import trio

from actorproxy.config import ServerConf, SitesServerConf
from actors import Actor, ActorRef
from supervisors import Backoff, ChildSpec, Strategy, Supervisor, delete_child, start_child, terminate_child

from ._app import SiteRoute, SitesProxy, build_routing, route_for
from ._definitions import SiteDefinition, configured_sites, merge_sites, scan_park
from ._process import ProcessSettings, RunningSite, SiteProcessActor
from ._status import STATUS_FILE, site_row, write_status

__all__ = ["GetSites", "ScanSites", "SitesActor", "SitesRuntime", "SitesService"]

logger = logging.getLogger("actorproxy.sites")

# The window of `sites_server.max_restarts`.
RESTART_PERIOD = 600.0
# What a process actor's supervisor waits beyond the process's own grace before it kills the actor.
STOP_MARGIN = 2.0


@attrs.frozen
class ScanSites:
    """Read the sites again (the actor's periodic timer)."""


@attrs.frozen
class GetSites:
    """Ask for the sites, one status row each (as `actorproxy sites` shows them)."""


@attrs.define(eq=False)
class SitesRuntime:
    """What the sites actor works with: the configuration, where it is, and whom it tells."""

    conf: ServerConf
    base: Path
    zone: str
    settings: SitesServerConf
    app: SitesProxy
    #: Called with the site names after every change (the DNS names and the certificates).
    on_names: Callable[[list[str]], None] = lambda names: None

    @property
    def state_dir(self) -> Path:
        return self.base / self.settings.state_dir

    def process_settings(self) -> ProcessSettings:
        return ProcessSettings(
            log_dir=self.state_dir / "logs",
            start_timeout=self.settings.start_timeout,
            stop_timeout=self.settings.stop_timeout,
        )

    def definitions(self) -> list[SiteDefinition]:
        """The sites as they are now (blocking: reads the park folders)."""
        parked = [site for park in self.conf.park for site in scan_park(park, self.zone, self.base)]
        return merge_sites(configured_sites(self.conf, self.base), parked)


class SitesActor(Actor):
    """Keeps the sites table and the sites' processes in line with the configuration and the park folders.

    Args:
        runtime: what it works with.
        processes: the registered name of the processes supervisor.
    """

    def __init__(self, runtime: SitesRuntime, processes: str) -> None:
        self.runtime = runtime
        self.processes_name = processes
        self._routes: dict[str, SiteRoute] = {}
        self._order: list[str] = []
        self._rows: list[dict[str, Any]] | None = None
        self._process_settings = runtime.process_settings()

    def routes(self) -> list[SiteRoute]:
        """The routes, in table order."""
        return [self._routes[name] for name in self._order]

    async def on_start(self) -> None:
        await self._scan()
        self.timers.start_periodic("scan", ScanSites(), self.runtime.settings.park_interval)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, ScanSites):
            await self._scan()
            return None
        if isinstance(message, GetSites):
            return [site_row(route) for route in self.routes()]
        return await super().receive(message)

    async def _scan(self) -> None:
        definitions = await trio.to_thread.run_sync(self.runtime.definitions)
        await self._apply(definitions)
        rows = [site_row(route) for route in self.routes()]
        if rows != self._rows:
            path = self.runtime.state_dir / STATUS_FILE
            await trio.to_thread.run_sync(write_status, path, rows)
            self._rows = rows

    def _processes(self) -> ActorRef:
        ref = self.system.whereis(self.processes_name)
        if ref is None:
            raise RuntimeError(f"no processes supervisor named {self.processes_name!r}")
        return ref

    async def _apply(self, definitions: list[SiteDefinition]) -> None:
        current = self._routes
        wanted = {definition.name: definition for definition in definitions}
        for name, route in list(current.items()):
            if wanted.get(name) != route.definition:
                await self._retire(route)
                del current[name]
        changed = list(wanted) != self._order
        for definition in definitions:
            if definition.name in current:
                continue
            changed = True
            process = None
            if definition.kind == "run":
                process = RunningSite(definition, self._process_settings)
                await self._start(process)
            current[definition.name] = route_for(definition, process)
            logger.info(
                "site %s: %s %s (%s)", definition.name, definition.kind, definition.target, definition.source
            )
        if not changed:
            return
        self._order = list(wanted)
        # One synchronous step: the routes, the names the DNS answers, the certificates to prepare.
        self.runtime.app.routing = build_routing(self.routes())
        self.runtime.on_names(list(self._order))

    async def _start(self, process: RunningSite) -> None:
        settings = self.runtime.settings
        spec = ChildSpec(
            id=process.definition.name,
            start=partial(SiteProcessActor, process),
            shutdown=settings.stop_timeout + STOP_MARGIN,
            backoff=Backoff(min_delay=settings.restart_min_interval, max_delay=settings.restart_max_interval),
        )
        await start_child(self._processes(), spec)

    async def _retire(self, route: SiteRoute) -> None:
        logger.info("site %s: removed", route.definition.name)
        if route.process is None:
            return
        processes = self._processes()
        name = route.definition.name
        await terminate_child(processes, name)
        await delete_child(processes, name)


class SitesService:
    """The sites as a service of `Server`: their table and their processes (ready once the table is read).

    Args:
        runtime: what the sites actor works with.
        name: the service's name.
    """

    def __init__(self, runtime: SitesRuntime, *, name: str = "sites") -> None:
        self.runtime = runtime
        self.name = name

    def __repr__(self) -> str:
        return f"<SitesService {self.name}>"

    def child_spec(self) -> ChildSpec:
        """The service's subtree as a child of the server's root supervisor."""
        processes = f"{self.name}/processes"
        settings = self.runtime.settings

        def build() -> Supervisor:
            return Supervisor(
                [
                    ChildSpec(
                        id="processes",
                        name=processes,
                        start=lambda: Supervisor([], intensity=settings.max_restarts, period=RESTART_PERIOD),
                    ),
                    ChildSpec(
                        id="table",
                        name=f"{self.name}/table",
                        start=partial(SitesActor, self.runtime, processes),
                    ),
                ],
                strategy=Strategy.REST_FOR_ONE,
                intensity=10,
                period=60,
            )

        return ChildSpec(id=self.name, start=build)
