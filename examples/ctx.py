"""CTX: state shared by the phases of one request, and counters shared by all requests.

The example of the guide's "Sharing state across phases with CTX":

- `request_filter` reads the `beta-flag` header into the request's ctx (`ctx.beta_user`), and
  `upstream_peer` reads it back to send beta users to their own upstream. Each request gets a fresh ctx
  from `new_ctx`, so nothing leaks from one request to the next on the same connection.
- The proxy object itself carries what outlives a request: the number of beta visitors and of all visitors.

Run it with `python examples/ctx.py` and try:

    curl -i http://127.0.0.1:6188/
    curl -i http://127.0.0.1:6188/ -H "beta-flag: 1"

The `x-upstream` header says where each request went; the log counts the visitors.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import HttpPeer, ProxyHttp, RequestHeader, Server, Session, http_proxy_service

logger = logging.getLogger("examples.ctx")

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"


@dataclass
class MyCtx:
    """What the phases of one request share."""

    beta_user: bool = False


def check_beta_user(req: RequestHeader) -> bool:
    """A stand-in for a real beta check: the client says so in a header."""
    return "beta-flag" in req.headers


class MyProxy(ProxyHttp):
    """Beta users go to `beta`, everyone else to `regular` (the guide's 1.0.0.1 and 1.1.1.1)."""

    def __init__(self, beta: Address, regular: Address) -> None:
        self.beta = beta
        self.regular = regular
        # Pingora guards its counters with a Mutex because its phases run on many threads. Here every phase
        # runs in one trio thread and nothing awaits between reading and writing a counter, so plain ints
        # are exact. With `threads: N` each worker process counts its own requests.
        self.beta_counter = 0
        self.req_counter = 0

    def new_ctx(self) -> MyCtx:
        return MyCtx(beta_user=False)

    async def request_filter(self, session: Session, ctx: MyCtx) -> bool:
        ctx.beta_user = check_beta_user(session.req_header)
        return False

    async def upstream_peer(self, session: Session, ctx: MyCtx) -> HttpPeer:
        self.req_counter += 1
        if ctx.beta_user:
            self.beta_counter += 1
            logger.info("beta visitor number %d", self.beta_counter)
            addr = self.beta
        else:
            logger.info("visitor number %d", self.req_counter)
            addr = self.regular
        # Plain HTTP to a demo upstream; the guide's peers use TLS with SNI one.one.one.one.
        return HttpPeer(addr, tls=False, sni="")


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, MyProxy]:
    """Start the demo upstreams and the proxy in `nursery`; return the proxy's URL and the app."""
    my_server = server or Server()
    beta, regular = await start_demo_upstreams(nursery, ["beta", "regular"])
    app = MyProxy(beta=(DEMO_HOST, beta), regular=(DEMO_HOST, regular))
    my_proxy = http_proxy_service(my_server.configuration, app)
    my_proxy.add_tcp(listen)
    my_server.add_service(my_proxy)
    return await serve_proxy(nursery, my_server, my_proxy), app


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the proxy on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"ctx proxy listening; try: curl -i {url}/  and  curl -i {url}/ -H 'beta-flag: 1'")


if __name__ == "__main__":
    run(main)
