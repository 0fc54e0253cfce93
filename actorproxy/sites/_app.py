"""`SitesProxy`: the `ProxyHttp` application of the virtual server: each site is a host route.

Rules:
- The routes are a `RouteTable` of the declared proxy (host conditions only), read once per request from
  `routing`, which the sites actor replaces whole when the sites change.
- A `root` site is answered in `request_filter` by its `StaticFiles`; a `proxy` site goes to its URL; a
  `run` site goes to its process's port, and a request that arrives while the process is starting or
  waiting to restart waits for it (at most `start_timeout`), then gets 503 naming the site's log; an
  `invalid` site gets 503 with the reason. A host that is no site gets 404 listing the sites.
- The Host header goes upstream unchanged: an application sees the name it is served under.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import attrs

from actorproxy.declared import RouteRule, RouteTable, respond_text
from actorproxy.http import Error, ErrorSource, ErrorType
from actorproxy.proxy import HttpPeer, ProxyHttp, Session

from ._definitions import SiteDefinition
from ._process import RunningSite
from ._static import StaticFiles

__all__ = ["SiteRoute", "SitesProxy", "build_routing"]


@attrs.frozen(eq=False)
class SiteRoute:
    """What answers one site: its definition and, by kind, its files, its peer or its process."""

    definition: SiteDefinition
    static: StaticFiles | None = None
    peer: HttpPeer | None = None
    process: RunningSite | None = None


def route_for(definition: SiteDefinition, process: RunningSite | None = None) -> SiteRoute:
    """The route of a site (`process` for a `run` site)."""
    if definition.kind == "root":
        return SiteRoute(definition, static=StaticFiles(definition.target))
    if definition.kind == "proxy":
        url = urlsplit(definition.target)
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        host = url.hostname or "127.0.0.1"
        return SiteRoute(definition, peer=HttpPeer((host, port), tls=tls, sni=host if tls else ""))
    return SiteRoute(definition, process=process)


def build_routing(routes: list[SiteRoute]) -> RouteTable[SiteRoute]:
    """A route table of `routes`, in their order (`merge_sites` puts exact names first)."""
    return RouteTable((RouteRule.build(host=route.definition.name), route) for route in routes)


class SitesProxy(ProxyHttp):
    """Serves each request from the site its host names (see the module rules).

    Args:
        start_timeout: how long a request waits for a `run` site's process to answer.
    """

    def __init__(self, *, start_timeout: float) -> None:
        self.routing: RouteTable[SiteRoute] = RouteTable(())
        self.start_timeout = start_timeout

    def __repr__(self) -> str:
        return f"<SitesProxy sites={len(self.routing)}>"

    def new_ctx(self) -> dict[str, Any]:
        return {}

    async def request_filter(self, session: Session, ctx: dict[str, Any]) -> bool:
        route = self.routing.match(session.req_header)
        if route is None:
            names = ", ".join(target.definition.name for target in self.routing.targets()) or "none"
            await respond_text(session, 404, f"no site is named so here (sites: {names})\n")
            return True
        definition = route.definition
        if route.static is not None:
            await route.static.respond(session)
            return True
        if definition.kind == "invalid":
            await respond_text(
                session, 503, f"site {definition.name} cannot be served: {definition.target}\n"
            )
            return True
        if route.process is not None:
            address = await route.process.wait_running(self.start_timeout)
            if address is None:
                status = route.process.status
                why = f" (last exit: {status.last_exit})" if status.last_exit else ""
                text = f"site {definition.name} is {status.state}{why}; see {route.process.log_path}\n"
                await respond_text(session, 503, text, [("Retry-After", "1")])
                return True
            ctx["peer"] = HttpPeer(address, tls=False, sni="")
        else:
            ctx["peer"] = route.peer
        return False

    async def upstream_peer(self, session: Session, ctx: dict[str, Any]) -> HttpPeer:
        peer: HttpPeer | None = ctx.get("peer")
        if peer is None:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "no peer chosen for this request", ErrorSource.INTERNAL
            )
        return peer
