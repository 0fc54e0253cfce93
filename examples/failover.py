"""Failover: when connecting fails, mark the error retryable and try another upstream, after a back-off.

The example of the guide's "Handling failures and failover", on loopback:

- The first attempt goes to a local port where nothing listens (the guide's unroutable 192.0.2.1), so the
  connection is refused.
- `fail_to_connect` counts the try in the request's ctx and marks the error retryable; the proxy then calls
  `upstream_peer` again, which fails over to a live demo upstream (the guide's 1.1.1.1). Nothing was sent
  upstream before a connect failure, so any request, even a POST, is safe to retry here.
- Only `MAX_TRIES` failures are made retryable; after that the error ends the request with a 502.
- Before each retry `upstream_peer` waits a little, twice as long as the time before (exponential
  back-off), so a struggling upstream is not hammered.

Run it with `python examples/failover.py` and try:

    curl -i http://127.0.0.1:6188/

The answer comes from the "fallback" upstream; the log shows the refused attempt and the retry.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import Error, HttpPeer, ProxyHttp, Server, Session, http_proxy_service

logger = logging.getLogger("examples.failover")

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"
#: Connect failures made retryable per request (the guide retries once).
MAX_TRIES = 1
#: Wait before the first retry, doubled for each one after it. Small: a refused connect fails at once.
BACKOFF_BASE = 0.01
#: No retry waits longer than this.
BACKOFF_MAX = 1.0
#: The guide's connect timeout (100 ms) for every attempt.
CONNECTION_TIMEOUT = 0.1


@dataclass
class MyCtx:
    """What the phases of one request share: connect failures so far, and each back-off waited."""

    tries: int = 0
    backoffs: list[float] = field(default_factory=list)


def backoff(tries: int) -> float:
    """Seconds to wait before retry number `tries` (1 for the first)."""
    # The exponent is capped so a large count cannot overflow a float; the delay is capped anyway.
    return min(BACKOFF_BASE * 2.0 ** min(tries - 1, 32), BACKOFF_MAX)


# Sockets held while the example runs, so the ports they took stay refused.
_HELD: list[socket.socket] = []


def unused_port(host: str = DEMO_HOST) -> int:
    """A port on `host` that refuses connections: bound by us but never listening.

    The socket stays open, so no other listener can be given the port while the example runs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind((host, 0))
    _HELD.append(sock)
    port: int = sock.getsockname()[1]
    return port


class MyProxy(ProxyHttp):
    """First try `primary`; after a connect failure, `fallback`."""

    def __init__(self, primary: Address, fallback: Address, *, max_tries: int = MAX_TRIES) -> None:
        self.primary = primary
        self.fallback = fallback
        self.max_tries = max_tries
        #: The ctx of every request that ended, in order (for the curious, and for the tests).
        self.finished: list[MyCtx] = []

    def new_ctx(self) -> MyCtx:
        return MyCtx(tries=0)

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: MyCtx, e: Error) -> Error:
        logger.info("could not connect to %s (try %d): %s", peer.label(), ctx.tries + 1, e)
        if ctx.tries >= self.max_tries:
            return e
        ctx.tries += 1
        e.set_retry(True)
        return e

    async def upstream_peer(self, session: Session, ctx: MyCtx) -> HttpPeer:
        if ctx.tries > 0:
            delay = backoff(ctx.tries)
            ctx.backoffs.append(delay)
            await trio.sleep(delay)
        addr = self.primary if ctx.tries < 1 else self.fallback
        # Plain HTTP to a demo upstream; the guide's peers use TLS with SNI one.one.one.one.
        peer = HttpPeer(addr, tls=False, sni="")
        peer.options.connection_timeout = CONNECTION_TIMEOUT
        return peer

    async def logging(self, session: Session, e: Error | None, ctx: MyCtx) -> None:
        response = session.response_written()
        response_code = 0 if response is None else response.status
        logger.info("%s response code: %d after %d retries", session.req_header.uri, response_code, ctx.tries)
        self.finished.append(ctx)


async def start(
    nursery: trio.Nursery,
    *,
    server: Server | None = None,
    listen: str = "127.0.0.1:0",
    max_tries: int = MAX_TRIES,
    fallback_alive: bool = True,
) -> tuple[str, MyProxy]:
    """Start the fallback upstream and the proxy in `nursery`; return the proxy's URL and the app.

    Args:
        max_tries: connect failures made retryable per request.
        fallback_alive: False points the fallback at a dead port too, to see the 502 the guide describes.
    """
    my_server = server or Server()
    if fallback_alive:
        [port] = await start_demo_upstreams(nursery, ["fallback"])
    else:
        port = unused_port()
    app = MyProxy(primary=(DEMO_HOST, unused_port()), fallback=(DEMO_HOST, port), max_tries=max_tries)
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
        print(f"failover proxy listening; try: curl -i {url}/")


if __name__ == "__main__":
    run(main)
