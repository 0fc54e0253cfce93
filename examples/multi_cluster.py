"""Multi-cluster: pick a cluster of upstreams per request, then round robin within it.

Pingora's `multi_lb` example (a `Router` over two load balancers) on local demo upstreams: cluster "one"
and cluster "two", two upstreams each. The request chooses its cluster:

- by Host, when the Host names a cluster (`one.demo.internal`, `two.demo.internal`);
- else by path, as in Pingora's example: paths under /one/ go to cluster one;
- everything else goes to cluster two.

Each cluster is a round-robin `LoadBalancer`, health-checked over TCP every second, as Pingora's
`LoadBalancer<RoundRobin>` per cluster; each keeps its own turn, so traffic to one never shifts the rotation
of the other. The two run as background services (their actors discover the backends, check them and
publish what is ready); they are added to the server before the proxy, so the listener opens only once both
have done their first health round. `Router.upstream_peer` reads the chosen cluster's published snapshot
(`select`: no message, no await).

Run it with `python examples/multi_cluster.py` and try:

    curl -i http://127.0.0.1:6188/one/
    curl -i http://127.0.0.1:6188/ -H "Host: one.demo.internal"
    curl -i http://127.0.0.1:6188/
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import (
    Error,
    ErrorSource,
    ErrorType,
    HttpPeer,
    LoadBalancer,
    ProxyHttp,
    RequestHeader,
    RoundRobin,
    Server,
    Session,
    TcpHealthCheck,
    background_service,
    http_proxy_service,
)

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


def load_balancer(upstreams: Iterable[Address]) -> LoadBalancer:
    """A round-robin LoadBalancer over `upstreams`, health-checked over TCP every second."""
    addresses = [f"{host}:{port}" for host, port in upstreams]
    if not addresses:
        raise ValueError("Router: each cluster needs at least one upstream")
    lb = LoadBalancer.try_from_iter(addresses, selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = 1.0
    return lb


class Router(ProxyHttp):
    """Routes each request to cluster "one" or "two", round robin over the healthy backends of the cluster."""

    def __init__(self, cluster_one: LoadBalancer, cluster_two: LoadBalancer) -> None:
        self.clusters: dict[str, LoadBalancer] = {"one": cluster_one, "two": cluster_two}

    def new_ctx(self) -> None:
        return None

    def cluster_for(self, req: RequestHeader) -> str:
        """The cluster that serves `req`: its Host's, else by path prefix."""
        by_host = CLUSTER_HOSTS.get(request_host(req) or "")
        if by_host is not None:
            return by_host
        return "one" if req.path.startswith("/one/") else "two"

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        name = self.cluster_for(session.req_header)
        backend = self.clusters[name].select(b"", 256)  # hash doesn't matter for round robin
        if backend is None:
            raise Error.explain(
                ErrorType.http_status(503), f"no healthy upstream in cluster {name}", ErrorSource.INTERNAL
            )
        # Plain HTTP to a demo upstream; Pingora's example uses TLS with SNI one.one.one.one.
        return HttpPeer(backend.addr, tls=False, sni="")


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, Router]:
    """Start the four demo upstreams and the router in `nursery`; return the router's URL and the app."""
    my_server = server or Server()
    one = await start_demo_upstreams(nursery, CLUSTER_UPSTREAMS["one"])
    two = await start_demo_upstreams(nursery, CLUSTER_UPSTREAMS["two"])
    cluster_one = background_service("cluster one", load_balancer((DEMO_HOST, port) for port in one))
    cluster_two = background_service("cluster two", load_balancer((DEMO_HOST, port) for port in two))
    router = Router(cluster_one.task(), cluster_two.task())
    my_proxy = http_proxy_service(my_server.configuration, router)
    my_proxy.add_tcp(listen)
    # First: the listener opens once both clusters' backends are checked.
    my_server.add_service(cluster_one)
    my_server.add_service(cluster_two)
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
