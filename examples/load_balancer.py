"""Load balancer: round robin over three local upstreams, with the Host header the upstreams expect.

The `LB` of Pingora's quickstart (the load balancer the guide's "RateLimiter quickstart" starts from):
`upstream_peer` takes the next upstream in turn, and `upstream_request_filter` sets the Host header on the
request that goes upstream, since an origin behind a load balancer serves its own name, not the proxy's.

Pingora selects with `LoadBalancer<RoundRobin>`; until this project's LoadBalancer actor lands (issue 4),
an `itertools.cycle` over the peers stands in for it, and there is no health check to skip a dead one.

Run it with `python examples/load_balancer.py` and repeat:

    curl -i http://127.0.0.1:6188/

The `x-upstream` header of the answers goes one, two, three, one, ...
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import HttpPeer, ProxyHttp, RequestHeader, Session
from actors import http_proxy_service
from supervisors import Server

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"
#: The name the upstreams serve (the guide's one.one.one.one); the demo upstreams echo it back.
UPSTREAM_HOST = "demo.internal"
#: The demo upstreams behind the balancer.
UPSTREAM_NAMES = ("one", "two", "three")


class LB(ProxyHttp):
    """Round robin over `upstreams`."""

    def __init__(self, upstreams: Iterable[Address]) -> None:
        peers = list(upstreams)
        if not peers:
            raise ValueError("LB: no upstreams to balance over")
        # Stand-in for Pingora's LoadBalancer<RoundRobin> until issue 4: then
        # `LoadBalancer.try_from_iter([...])` here and `self.upstreams.select(b"", 256)` below.
        self.upstreams = itertools.cycle(peers)

    def new_ctx(self) -> None:
        return None

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        upstream = next(self.upstreams)
        # Plain HTTP to a demo upstream; the guide's peer uses TLS with SNI one.one.one.one.
        return HttpPeer(upstream, tls=False, sni="")

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: None
    ) -> None:
        upstream_request.insert_header("Host", UPSTREAM_HOST)


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, LB]:
    """Start the demo upstreams and the balancer in `nursery`; return the balancer's URL and the app."""
    my_server = server or Server()
    ports = await start_demo_upstreams(nursery, UPSTREAM_NAMES)
    lb_app = LB((DEMO_HOST, port) for port in ports)
    lb = http_proxy_service(my_server.configuration, lb_app)
    lb.add_tcp(listen)
    my_server.add_service(lb)
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
