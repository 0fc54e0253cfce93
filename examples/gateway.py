"""Gateway: route, rewrite headers, refuse with an error page, and log every request.

This is the `MyGateway` that Pingora's guide builds in "Examples: taking control of the request", all four
steps in one proxy, pointed at two local demo upstreams instead of 1.0.0.1 and 1.1.1.1:

- routing (`upstream_peer`): paths under /family/ go to the "family" upstream, all others to "main";
- modifying headers (`response_filter`): responses carry `Server: MyGateway` and no `alt-svc`;
- error pages (`request_filter`): /login without `Authorization: password` gets a 403 from the proxy itself,
  and never reaches an upstream;
- logging (`logging`): every request, proxied or refused, is logged with its response code and counted.
  The guide counts with a Prometheus counter; this proxy has no Prometheus service yet, so it keeps an int.

Run it with `python examples/gateway.py` and try:

    curl -i http://127.0.0.1:6188/family/
    curl -i http://127.0.0.1:6188/
    curl -i http://127.0.0.1:6188/login
    curl -i http://127.0.0.1:6188/login -H "Authorization: password"
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import (
    Error,
    HttpPeer,
    ProxyHttp,
    RequestHeader,
    ResponseHeader,
    Server,
    Session,
    http_proxy_service,
)

logger = logging.getLogger("examples.gateway")

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"


def check_login(req: RequestHeader) -> bool:
    """A stand-in for real authentication: the password travels in the Authorization header."""
    return req.headers.get("Authorization") == "password"


class MyGateway(ProxyHttp):
    """The guide's gateway; `family` and `default` are where its 1.0.0.1 and 1.1.1.1 went."""

    def __init__(self, family: Address, default: Address) -> None:
        self.family = family
        self.default = default
        #: Requests seen by the logging phase (the guide's `req_metric`).
        self.req_metric = 0

    def new_ctx(self) -> None:
        return None

    async def request_filter(self, session: Session, ctx: None) -> bool:
        if session.req_header.path.startswith("/login") and not check_login(session.req_header):
            await session.respond_error(403)
            # The 403 is written: True stops the request here, before any upstream is chosen.
            return True
        return False

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        addr = self.family if session.req_header.path.startswith("/family/") else self.default
        logger.info("connecting to %s", addr)
        # Plain HTTP to a demo upstream; the guide's peers use TLS with SNI one.one.one.one.
        return HttpPeer(addr, tls=False, sni="")

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: None) -> None:
        # insert_header replaces the upstream's own Server field.
        upstream_response.insert_header("Server", "MyGateway")
        # alt-svc would invite clients to HTTP/3, which this proxy does not speak.
        upstream_response.remove_header("alt-svc")

    async def logging(self, session: Session, e: Error | None, ctx: None) -> None:
        response = session.response_written()
        response_code = 0 if response is None else response.status
        logger.info("%s response code: %d", self.request_summary(session, ctx), response_code)
        self.req_metric += 1


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, MyGateway]:
    """Start the two demo upstreams and the gateway in `nursery`; return the gateway's URL and the app."""
    my_server = server or Server()
    family, default = await start_demo_upstreams(nursery, ["family", "main"])
    gateway = MyGateway(family=(DEMO_HOST, family), default=(DEMO_HOST, default))
    my_proxy = http_proxy_service(my_server.configuration, gateway)
    my_proxy.add_tcp(listen)
    my_server.add_service(my_proxy)
    return await serve_proxy(nursery, my_server, my_proxy), gateway


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the gateway on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"gateway listening; try: curl -i {url}/family/  or  curl -i {url}/login")


if __name__ == "__main__":
    run(main)
