"""Load balancer: round robin over three local upstreams with TCP health checks, as in Pingora's quickstart.

The code is the package's demo (`actorproxy.demo`, which `actorproxy demo` runs too): `LB.upstream_peer` asks
the `LoadBalancer` for the next healthy backend (`select` reads a published snapshot: no message, no
await) and `upstream_request_filter` sets the Host header the upstreams serve:

    class LB(ProxyHttp):
        def __init__(self, upstreams):
            self.upstreams = upstreams

        async def upstream_peer(self, session, ctx):
            backend = self.upstreams.select(b"", 256)
            return HttpPeer(backend.addr, tls=False, sni="")

The load balancer runs as a background service: its actor discovers the backends, checks them every second
and publishes what is ready. The proxy service depends on it, so the listener opens only once the first
health round is done.

Run it with `python examples/load_balancer.py` (or `actorproxy demo`) and repeat:

    curl -i http://127.0.0.1:6188/

The `x-upstream` header of the answers takes turns over the three upstreams.
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
from demo_upstreams import run, serve_proxy, start_demo_upstreams

from actorproxy import Server
from actorproxy.demo import (
    DEMO_HOST,
    DEMO_LISTEN,
    DEMO_UPSTREAM_HOST,
    DEMO_UPSTREAM_NAMES,
    DemoBalancer,
    add_demo_proxy,
    demo_load_balancer,
)

__all__ = ["LB", "LISTEN", "UPSTREAM_HOST", "UPSTREAM_NAMES", "load_balancer", "main", "start"]

#: Where the balancer listens (the guide's port, on loopback).
LISTEN = DEMO_LISTEN
#: The name the upstreams serve (the guide's one.one.one.one); the demo upstreams echo it back.
UPSTREAM_HOST = DEMO_UPSTREAM_HOST
#: The demo upstreams behind the balancer.
UPSTREAM_NAMES = DEMO_UPSTREAM_NAMES
#: Round robin over the healthy backends of a `LoadBalancer` (the guide's `LB`).
LB = DemoBalancer
#: A round-robin `LoadBalancer` over (host, port) pairs, health-checked over TCP every second.
load_balancer = demo_load_balancer


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, LB]:
    """Start the demo upstreams and the balancer in `nursery`; return the balancer's URL and the app."""
    my_server = server or Server()
    ports = await start_demo_upstreams(nursery, UPSTREAM_NAMES)
    proxy = add_demo_proxy(my_server, [(DEMO_HOST, port) for port in ports], listen=listen)
    app = proxy.app
    assert isinstance(app, LB)
    return await serve_proxy(nursery, my_server, proxy), app


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the balancer on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"load balancer listening; try: curl -i {url}/")


if __name__ == "__main__":
    run(main)
