"""DNS discovery: a load balancer whose backends are the SRV records of a service, followed as they change.

The demo upstreams "one", "two" and "three" listen on 127.0.0.1, each on its own port. A small DNS server
(`actorproxy.testing.DnsServer`, on 127.0.0.1 and a free port) publishes them as the SRV records of
`_http._tcp.demo.internal`: one record per upstream, pointing at `<name>.demo.internal` on the upstream's
port, with the target's A record (127.0.0.1) in the additional section. The records live `RECORD_TTL`
seconds.

The `LoadBalancer` gets its backends from `DnsDiscovery.srv(...)` asking that server. Its background
service runs discovery every `UPDATE_FREQUENCY` seconds (a query goes out only once the records' TTL has
run out) and a TCP health check every second; the proxy service depends on it, so the listener opens only
once the first discovery and health round are done. Requests go through the load balancer example's `LB`:
round robin over the ready backends, with the Host header the upstreams serve.

Run it with `python examples/dns_discovery.py` and repeat:

    curl -i http://127.0.0.1:6190/

The `x-upstream` header of the answers takes turns over the three upstreams. The program prints the DNS
server's port, to look at the records with `dig @127.0.0.1 -p <port> SRV _http._tcp.demo.internal`. A
program holding the zone changes the backends with `DemoZone.publish`: publish two of the names, and within
`RECORD_TTL + UPDATE_FREQUENCY` seconds the third gets no more requests.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import trio
from demo_upstreams import DEMO_HOST, run, serve_proxy, start_demo_upstreams
from load_balancer import LB, UPSTREAM_NAMES

from actorproxy import (
    DnsDiscovery,
    LoadBalancer,
    RoundRobin,
    Server,
    TcpHealthCheck,
    background_service,
    http_proxy_service,
)
from actorproxy.testing import DnsServer, SrvRecord

# Next to the other examples' 6188, so both can run at once.
LISTEN = "127.0.0.1:6190"
#: The service whose SRV records list the upstreams (RFC 2782: `_service._proto.name`).
SERVICE = "_http._tcp.demo.internal"
#: The zone the upstreams' host names are in: `one.demo.internal`, ...
ZONE = "demo.internal"
#: Seconds the records live: short, so a change shows within seconds.
RECORD_TTL = 1
#: Seconds between discoveries.
UPDATE_FREQUENCY = 1.0


@dataclass
class DemoZone:
    """The DNS server and what it publishes: the SRV records of `SERVICE` for some demo upstreams.

    Attributes:
        dns: the DNS server.
        ports: each demo upstream's port, by name.
    """

    dns: DnsServer
    ports: dict[str, int]

    def publish(self, names: Iterable[str] | None = None) -> None:
        """Make the upstreams `names` (default all) the SRV records of `SERVICE`, and give each an A record.

        Raises:
            KeyError: a name is not a demo upstream.
        """
        chosen = list(self.ports) if names is None else list(names)
        records = []
        for name in chosen:
            target = f"{name}.{ZONE}"
            self.dns.set_a(target, [DEMO_HOST], ttl=RECORD_TTL)
            records.append(SrvRecord(priority=10, weight=1, port=self.ports[name], target=target))
        self.dns.set_srv(SERVICE, records, ttl=RECORD_TTL)


def load_balancer(dns: DnsServer) -> LoadBalancer:
    """A round-robin LoadBalancer over the SRV records of `SERVICE` on `dns`, TCP-checked every second."""
    discovery = DnsDiscovery.srv(SERVICE, nameservers=[dns.host], nameserver_port=dns.port)
    lb = LoadBalancer.from_backends(discovery, selection=RoundRobin)
    lb.update_frequency = UPDATE_FREQUENCY
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    return lb


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, LB, DemoZone]:
    """Start the demo upstreams, the DNS server and the balancer in `nursery`.

    Returns:
        The balancer's URL, the proxy application, and the zone (to change what DNS publishes).
    """
    my_server = server or Server()
    ports = await start_demo_upstreams(nursery, UPSTREAM_NAMES)
    dns = DnsServer(DEMO_HOST)
    await nursery.start(dns.serve)
    zone = DemoZone(dns, dict(zip(UPSTREAM_NAMES, ports, strict=True)))
    zone.publish()
    background = background_service("dns discovery", load_balancer(dns))
    lb_app = LB(background.task())
    lb = http_proxy_service(my_server.configuration, lb_app)
    lb.add_tcp(listen)
    my_server.add_service(background)
    my_server.add_service(lb, depends_on=[background])  # the listener opens once the backends are known
    return await serve_proxy(nursery, my_server, lb), lb_app, zone


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the balancer on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _, zone = await start(nursery, server=my_server, listen=LISTEN)
        host, port = zone.dns.host, zone.dns.port
        print(f"DNS server on {host}:{port}; try: dig @{host} -p {port} SRV {SERVICE}")
        print(f"load balancer listening; try: curl -i {url}/")


if __name__ == "__main__":
    run(main)
