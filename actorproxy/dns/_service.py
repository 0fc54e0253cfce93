"""`DnsService`: the local DNS server as one supervised subtree of the server.

    Service supervisor "dns"        rest_for_one
    ├── DnsSocketsActor "sockets"   binds UDP and TCP on one port
    ├── DynamicSupervisor "forwards"          ForwardActor (n) (temporary), one per query waiting upstream
    ├── DynamicSupervisor "tcp-connections"   DnsTcpConnectionActor (n) (temporary)
    ├── DnsUdpActor "udp"
    └── DnsTcpListenerActor "tcp"

The service is ready once both sockets are bound and both loops run.
"""

from __future__ import annotations

import socket
from functools import partial

import attrs

from actorproxy.config import DnsConf
from supervisors import BRUTAL, ChildSpec, DynamicSupervisor, Restart, Strategy, Supervisor

from ._actors import (
    DnsSocketsActor,
    DnsTcpConnectionActor,
    DnsTcpListenerActor,
    DnsUdpActor,
    ForwardActor,
)
from ._cache import DnsCache
from ._forward import Exchange, Forwarder, exchange
from ._names import LocalNames
from ._responder import DnsResponder
from ._stats import DnsCounters, DnsStatistics

__all__ = ["DNS_PORT", "DnsRuntime", "DnsService", "dns_service", "host_port"]

# RFC 1035 section 4.2: DNS servers listen on port 53.
DNS_PORT = 53
# TCP connections served at once; more are closed at once (a client falls back to UDP or retries).
MAX_TCP_CONNECTIONS = 128
# Restarts the service's supervisor allows within `SERVICE_PERIOD` seconds (as a proxy service's).
SERVICE_INTENSITY = 10
SERVICE_PERIOD = 10.0


def host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or a bare host (with `default_port`) as (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        return text.strip("[]"), default_port
    return host.strip("[]"), int(port)


@attrs.define(eq=False)
class DnsRuntime:
    """What the service's actors share: the listen address, the sockets, the responder and the forwarder."""

    listen: tuple[str, int]
    responder: DnsResponder
    forwarder: Forwarder
    counters: DnsCounters
    udp: socket.socket | None = None
    tcp: socket.socket | None = None


class DnsService:
    """The DNS server of the virtual server: answers the local zones, forwards the rest.

    Args:
        conf: the `dns:` section.
        names: the local zones and their sites; one built from `conf.zones` when omitted.
        name: the service's name (its actor path and registry name).
        exchange: how upstream queries travel (real sockets by default; tests replace it).
    """

    def __init__(
        self,
        conf: DnsConf,
        names: LocalNames | None = None,
        *,
        name: str = "dns",
        exchange: Exchange = exchange,
    ) -> None:
        self.conf = conf
        self.name = name
        self.names = names if names is not None else LocalNames(conf.zones)
        self.counters = DnsCounters()
        self.cache = DnsCache(conf.cache_size, conf.max_cache_ttl)
        responder = DnsResponder(conf, self.names, self.cache, self.counters)
        forwarder = Forwarder(
            [host_port(server, DNS_PORT) for server in conf.upstream],
            query_timeout=conf.query_timeout,
            counters=self.counters,
            exchange=exchange,
        )
        self.runtime = DnsRuntime(host_port(conf.listen, DNS_PORT), responder, forwarder, self.counters)

    def __repr__(self) -> str:
        return f"<DnsService {self.name} {self.conf.listen} {self.names!r}>"

    @property
    def address(self) -> tuple[str, int] | None:
        """The bound (host, port), UDP and TCP alike, while the service runs."""
        udp = self.runtime.udp
        if udp is None:
            return None
        host, port = udp.getsockname()[:2]
        return host, port

    def statistics(self) -> DnsStatistics:
        """A snapshot of the counters."""
        return DnsStatistics(
            address=self.address, cache_entries=len(self.cache), counters=attrs.evolve(self.counters)
        )

    def child_spec(self) -> ChildSpec:
        """The service's subtree as a child of the server's root supervisor."""
        runtime = self.runtime
        forwards = f"{self.name}/forwards"
        connections = f"{self.name}/tcp-connections"

        def build() -> Supervisor:
            return Supervisor(
                [
                    ChildSpec(id="sockets", start=partial(DnsSocketsActor, runtime)),
                    _dynamic(
                        "forwards",
                        forwards,
                        ChildSpec(
                            id="forward",
                            start=partial(ForwardActor, runtime),
                            restart=Restart.TEMPORARY,
                            shutdown=BRUTAL,
                        ),
                        self.conf.max_inflight,
                    ),
                    _dynamic(
                        "tcp-connections",
                        connections,
                        ChildSpec(
                            id="conn",
                            start=partial(DnsTcpConnectionActor, runtime),
                            restart=Restart.TEMPORARY,
                            shutdown=BRUTAL,
                        ),
                        MAX_TCP_CONNECTIONS,
                    ),
                    ChildSpec(id="udp", start=partial(DnsUdpActor, runtime, forwards)),
                    ChildSpec(id="tcp", start=partial(DnsTcpListenerActor, runtime, connections)),
                ],
                strategy=Strategy.REST_FOR_ONE,
                intensity=SERVICE_INTENSITY,
                period=SERVICE_PERIOD,
            )

        return ChildSpec(id=self.name, start=build)


def _dynamic(child_id: str, name: str, spec: ChildSpec, max_children: int) -> ChildSpec:
    """A dynamic supervisor of temporary `spec` children, registered as `name`."""
    return ChildSpec(id=child_id, name=name, start=lambda: DynamicSupervisor(spec, max_children=max_children))


def dns_service(conf: DnsConf, names: LocalNames | None = None, *, name: str = "dns") -> DnsService:
    """A DNS service to add to a `Server` (`server.add_service(dns_service(conf.dns))`)."""
    return DnsService(conf, names, name=name)
