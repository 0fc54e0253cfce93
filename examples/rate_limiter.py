"""Rate limiter: Pingora's `rate_limiter` example, a load balancer that answers 429 to a client over its rate.

Requests carry their client's id in an `appid` header; a `Rate` with one-second windows counts them per
appid, and past `MAX_REQ_PER_SEC` in the current window the proxy answers 429 itself, with Pingora's
`X-Rate-Limit-Limit`, `X-Rate-Limit-Remaining` and `X-Rate-Limit-Reset` headers, and closes the connection.
A request without an appid is not limited. Everything else is the load balancer of `load_balancer.py`: round
robin over three demo upstreams, health-checked over TCP every second.

Beyond Pingora's example, each appid may also have at most `MAX_IN_FLIGHT` requests in progress: an
`Inflight` guard tied to the request (`session.enter_context`) counts it until the request ends, however it
ends. The same limits, with Retry-After and the IETF RateLimit headers, need no code at all in YAML
(`rate_limit:` on a route; docs/rate-limiting.md).

Run it with `python examples/rate_limiter.py` and try, twice within a second:

    curl -i http://127.0.0.1:6188/ -H "appid: 1"
"""

from __future__ import annotations

from collections.abc import Sequence

import trio
from demo_upstreams import run, serve_proxy, start_demo_upstreams

from actorproxy import (
    HttpPeer,
    LoadBalancer,
    ProxyHttp,
    ResponseHeader,
    Server,
    Session,
    background_service,
    http_proxy_service,
)
from actorproxy.demo import DEMO_HOST, DEMO_LISTEN, DEMO_UPSTREAM_NAMES, demo_load_balancer
from actorproxy.limits import Inflight, Rate

__all__ = ["LB", "LISTEN", "MAX_IN_FLIGHT", "MAX_REQ_PER_SEC", "main", "start"]

#: Where the proxy listens (Pingora's port, on loopback).
LISTEN = DEMO_LISTEN
#: Requests per second per appid (Pingora's example allows 1).
MAX_REQ_PER_SEC = 1
#: Requests of one appid in progress at once.
MAX_IN_FLIGHT = 2


class LB(ProxyHttp):
    """Pingora's `LB` of the rate limiter example.

    Args:
        upstreams: the load balancer to pick backends from.
        rate: the per-appid counter (Pingora's `RATE_LIMITER`, one-second windows).
        inflight: the per-appid count of requests in progress.
    """

    def __init__(
        self, upstreams: LoadBalancer, rate: Rate | None = None, inflight: Inflight | None = None
    ) -> None:
        self.upstreams = upstreams
        self.rate = rate if rate is not None else Rate(1.0)
        self.inflight = inflight if inflight is not None else Inflight()

    def new_ctx(self) -> None:
        return None

    @staticmethod
    def get_request_appid(session: Session) -> str | None:
        return session.req_header.headers.get("appid")

    async def request_filter(self, session: Session, ctx: None) -> bool:
        appid = self.get_request_appid(session)
        if appid is None:
            return False  # no client appid: not limited
        curr_window_requests = self.rate.observe(appid, 1)
        in_flight = session.enter_context(self.inflight.incr(appid))
        if curr_window_requests > MAX_REQ_PER_SEC or in_flight.count > MAX_IN_FLIGHT:
            header = ResponseHeader.build(429)
            header.insert_header("X-Rate-Limit-Limit", str(MAX_REQ_PER_SEC))
            header.insert_header("X-Rate-Limit-Remaining", "0")
            header.insert_header("X-Rate-Limit-Reset", "1")
            session.set_keepalive(None)
            await session.write_response_header(header, end_of_stream=True)
            return True
        return False

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        backend = self.upstreams.select(b"", 256)
        assert backend is not None  # the proxy starts once the health check found the upstreams ready
        return HttpPeer(backend.addr, tls=False, sni="")


async def start(
    nursery: trio.Nursery,
    *,
    server: Server | None = None,
    listen: str = "127.0.0.1:0",
    rate: Rate | None = None,
) -> tuple[str, LB]:
    """Start the demo upstreams and the rate-limited balancer in `nursery`; return its URL and the app."""
    my_server = server or Server()
    ports = await start_demo_upstreams(nursery, DEMO_UPSTREAM_NAMES)
    background = background_service("health check", demo_load_balancer([(DEMO_HOST, p) for p in ports]))
    app = LB(background.task(), rate)
    lb = http_proxy_service(my_server.configuration, app)
    lb.add_tcp(listen)
    my_server.add_service(background)
    my_server.add_service(lb, depends_on=[background])
    return await serve_proxy(nursery, my_server, lb), app


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the rate-limited balancer on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"rate limiter listening; try twice within a second: curl -i {url}/ -H 'appid: 1'")


if __name__ == "__main__":
    run(main)
