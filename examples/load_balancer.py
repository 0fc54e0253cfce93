"""Load balancer: round robin over three local upstreams with TCP health checks, as in Pingora's quickstart.

`LB.upstream_peer` asks the `LoadBalancer` for the next healthy backend (`select` reads a published snapshot:
no message, no await) and `upstream_request_filter` sets the Host header the upstreams serve. The load
balancer runs as a background service: its actor discovers the backends, checks them every second and
publishes what is ready. The proxy service depends on it, so the listener opens only once the first
health round is done.

Run it with `python examples/load_balancer.py` and repeat:

    curl -i http://127.0.0.1:6188/

The `x-upstream` header of the answers takes turns over the three upstreams.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import Error, ErrorSource, ErrorType, HttpPeer, ProxyHttp, RequestHeader, Session
from actors import LoadBalancer, RoundRobin, TcpHealthCheck, background_service, http_proxy_service
from supervisors import Server

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"
#: The name the upstreams serve (the guide's one.one.one.one); the demo upstreams echo it back.
UPSTREAM_HOST = "demo.internal"
#: The demo upstreams behind the balancer.
UPSTREAM_NAMES = ("one", "two", "three")


class LB(ProxyHttp):
    """Round robin over the healthy backends of `upstreams`."""

    def __init__(self, upstreams: LoadBalancer) -> None:
        self.upstreams = upstreams

    def new_ctx(self) -> None:
        return None

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        backend = self.upstreams.select(b"", 256)  # hash doesn't matter for round robin
        if backend is None:
            raise Error.explain(ErrorType.http_status(503), "no healthy upstream", ErrorSource.INTERNAL)
        # Plain HTTP to a demo upstream; the guide's peer uses TLS with SNI one.one.one.one.
        return HttpPeer(backend.addr, tls=False, sni="")

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: None
    ) -> None:
        upstream_request.insert_header("Host", UPSTREAM_HOST)


def load_balancer(upstreams: Iterable[Address]) -> LoadBalancer:
    """A round-robin LoadBalancer over `upstreams`, health-checked over TCP every second."""
    addresses = [f"{host}:{port}" for host, port in upstreams]
    if not addresses:
        raise ValueError("LB: no upstreams to balance over")
    lb = LoadBalancer.try_from_iter(addresses, selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    return lb


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, LB]:
    """Start the demo upstreams and the balancer in `nursery`; return the balancer's URL and the app."""
    my_server = server or Server()
    ports = await start_demo_upstreams(nursery, UPSTREAM_NAMES)
    upstreams = load_balancer((DEMO_HOST, port) for port in ports)
    background = background_service("health check", upstreams)
    lb_app = LB(background.task())
    lb = http_proxy_service(my_server.configuration, lb_app)
    lb.add_tcp(listen)
    my_server.add_service(background)
    my_server.add_service(lb, depends_on=[background])  # the listener opens once the backends are checked
    return await serve_proxy(nursery, my_server, lb), lb_app


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the balancer on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"load balancer listening; try: curl -i {url}/")


if __name__ == "__main__":
    run(main)
