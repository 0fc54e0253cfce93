"""Multi-cluster: pick a cluster of upstreams per request, then round robin within it.

Pingora's `multi_lb` example (a `Router` over two load balancers) on local demo upstreams: cluster "one"
and cluster "two", two upstreams each. The request chooses its cluster:

- by Host, when the Host names a cluster (`one.demo.internal`, `two.demo.internal`);
- else by path, as in Pingora's example: paths under /one/ go to cluster one;
- everything else goes to cluster two.

Each cluster keeps its own turn, so traffic to one never shifts the rotation of the other. Pingora holds a
`LoadBalancer<RoundRobin>` (with a health check) per cluster; until this project's LoadBalancer actor lands
(issue 4) an `itertools.cycle` per cluster stands in, without health checks.

Run it with `python examples/multi_cluster.py` and try:

    curl -i http://127.0.0.1:6188/one/
    curl -i http://127.0.0.1:6188/ -H "Host: one.demo.internal"
    curl -i http://127.0.0.1:6188/
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import HttpPeer, ProxyHttp, RequestHeader, Session
from actors import http_proxy_service
from supervisors import Server

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"
#: Host names that choose a cluster outright.
CLUSTER_HOSTS = {"one.demo.internal": "one", "two.demo.internal": "two"}
#: The demo upstreams of each cluster.
CLUSTER_UPSTREAMS = {"one": ("one-a", "one-b"), "two": ("two-a", "two-b")}


def request_host(req: RequestHeader) -> str | None:
    """The host name of the Host header, lower-cased, without its port; None if there is none or it is bad."""
    try:
        return urlsplit("//" + (req.headers.get("Host") or "")).hostname
    except ValueError:  # an unclosed "[" of an IPv6 literal
        return None


class Router(ProxyHttp):
    """Routes each request to cluster "one" or "two", round robin inside the cluster."""

    def __init__(self, cluster_one: Sequence[Address], cluster_two: Sequence[Address]) -> None:
        if not cluster_one or not cluster_two:
            raise ValueError("Router: each cluster needs at least one upstream")
        # One stand-in for LoadBalancer<RoundRobin> per cluster until issue 4 (then `.select(b"", 256)`).
        self.clusters: dict[str, Iterator[Address]] = {
            "one": itertools.cycle(cluster_one),
            "two": itertools.cycle(cluster_two),
        }

    def new_ctx(self) -> None:
        return None

    def cluster_for(self, req: RequestHeader) -> str:
        """The cluster that serves `req`: its Host's, else by path prefix."""
        by_host = CLUSTER_HOSTS.get(request_host(req) or "")
        if by_host is not None:
            return by_host
        return "one" if req.path.startswith("/one/") else "two"

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        cluster = self.clusters[self.cluster_for(session.req_header)]
        upstream = next(cluster)
        # Plain HTTP to a demo upstream; Pingora's example uses TLS with SNI one.one.one.one.
        return HttpPeer(upstream, tls=False, sni="")


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, Router]:
    """Start the four demo upstreams and the router in `nursery`; return the router's URL and the app."""
    my_server = server or Server()
    one = await start_demo_upstreams(nursery, CLUSTER_UPSTREAMS["one"])
    two = await start_demo_upstreams(nursery, CLUSTER_UPSTREAMS["two"])
    router = Router([(DEMO_HOST, port) for port in one], [(DEMO_HOST, port) for port in two])
    my_proxy = http_proxy_service(my_server.configuration, router)
    my_proxy.add_tcp(listen)
    my_server.add_service(my_proxy)
    return await serve_proxy(nursery, my_server, my_proxy), router


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the router on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"multi-cluster router listening; try: curl -i {url}/one/  and  curl -i {url}/")


if __name__ == "__main__":
    run(main)
