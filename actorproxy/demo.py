"""The demo: origin servers on loopback, and the guide's load balancer in front of three of them.

`actorproxy demo` runs it, the examples reuse it, and tests drive it; nothing here reaches the network
beyond 127.0.0.1. Pingora's guide proxies to public hosts (1.1.1.1, 1.0.0.1); the demo upstreams stand in
for them, so everything runs offline.

A demo upstream is a tiny HTTP/1.1 server that answers every request with 200 and a JSON body naming
itself, the method, the path and the Host it saw, plus an `x-upstream: <name>` header. It also sends
`Server` and `alt-svc` headers, like a real origin, so a proxy that rewrites them has something to rewrite.
A `?pad=N` query adds a field of N bytes, for a body big enough to reach the proxy in several pieces (at
most `MAX_PAD`). It speaks HTTP through h11 directly, not through the proxy's own codec, so a bug in the
proxy cannot hide behind the same bug on the other side.

Two ways to run demo upstreams:
- `start_demo_upstreams(nursery, names)` serves them in a nursery of the caller (a script, a test);
- `DemoUpstreams(names)` binds their sockets at once and serves them as a background task of a `Server`
  (`background_service("demo upstreams", upstreams)`), so their ports are known before the server runs.

The demo load balancer (`add_demo_proxy`, `add_demo`) is the guide's quickstart: round robin over the demo
upstreams, TCP health checks every second, listening on 127.0.0.1:6188 once the first health round is done.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable, Sequence
from functools import partial
from urllib.parse import parse_qs

import h11
import trio

from actorproxy.http import Error, ErrorSource, ErrorType, RequestHeader
from actorproxy.lb import LoadBalancer, RoundRobin, TcpHealthCheck
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session, http_proxy_service
from actorproxy.server import Server, Service, ServiceHandle, background_service
from supervisors import GenBackgroundService, ServiceReadyNotifier, ShutdownWatch

__all__ = [
    "DEMO_HOST",
    "DEMO_LISTEN",
    "DEMO_UPSTREAM_HOST",
    "DEMO_UPSTREAM_NAMES",
    "MAX_PAD",
    "Address",
    "DemoBalancer",
    "DemoUpstreams",
    "add_demo",
    "add_demo_proxy",
    "demo_load_balancer",
    "demo_record",
    "serve_demo_upstream",
    "start_demo_upstreams",
]

logger = logging.getLogger("actorproxy.demo")

#: Demo upstreams listen on loopback only.
DEMO_HOST = "127.0.0.1"
#: Where the demo load balancer listens: the guide's port, on loopback rather than the guide's 0.0.0.0, so
#: the demo is not reachable from the network.
DEMO_LISTEN = "127.0.0.1:6188"
#: The name the demo upstreams are asked for (the guide's one.one.one.one); they echo it back.
DEMO_UPSTREAM_HOST = "demo.internal"
#: The demo upstreams behind the demo load balancer.
DEMO_UPSTREAM_NAMES = ("one", "two", "three")
# A demo request is a few hundred bytes; 64 KiB is the read size the proxy uses too
# (docs/architecture.md, "The request path").
READ_SIZE = 64 * 1024
#: Largest `?pad=`: many times the proxy's read size, and small enough that a typo cannot eat the memory.
MAX_PAD = 4 * 1024 * 1024
# The guide's health check frequency, in seconds.
HEALTH_CHECK_FREQUENCY = 1.0
# Candidates `select` may draw before it gives up (the guide's value).
MAX_ITERATIONS = 256

Address = tuple[str, int]
"""Where a demo upstream listens: (host, port)."""


# -- the demo upstreams --------------------------------------------------------------------------------------


def demo_record(name: str, request: h11.Request) -> dict[str, str]:
    """What a demo upstream says about `request`: its own name, the method, the path and the Host."""
    host = next((value for key, value in request.headers if key == b"host"), b"")
    path, _, query = request.target.decode("latin-1").partition("?")
    record = {
        "upstream": name,
        "method": request.method.decode("latin-1"),
        "path": path,
        "host": host.decode("latin-1"),
    }
    pad = parse_qs(query).get("pad", ["0"])[-1]
    if pad.isdigit() and int(pad) > 0:
        record["pad"] = "x" * min(int(pad), MAX_PAD)
    return record


async def serve_demo_upstream(
    name: str,
    *,
    port: int = 0,
    host: str = DEMO_HOST,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the demo origin `name` on `host:port` until cancelled; reports the bound port when listening."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound: int = listeners[0].socket.getsockname()[1]
    logger.info("demo upstream %s on %s:%d", name, host, bound)
    task_status.started(bound)
    await trio.serve_listeners(partial(_serve_connection, name), listeners)


async def start_demo_upstreams(
    nursery: trio.Nursery, names: Sequence[str], *, ports: Sequence[int] | None = None
) -> list[int]:
    """Start one demo upstream per name in `nursery` (on `ports`, default all 0); return their bound ports.

    Raises:
        ValueError: `ports` does not give one port per name.
    """
    wanted = [0] * len(names) if ports is None else list(ports)
    if len(wanted) != len(names):
        raise ValueError(f"ports: {len(wanted)} given for {len(names)} upstreams")
    return [
        await nursery.start(partial(serve_demo_upstream, name, port=port))
        for name, port in zip(names, wanted, strict=True)
    ]


class DemoUpstreams:
    """Demo upstreams as a background task of a `Server`; their sockets are bound when this is built.

    Binding up front gives the ports before the server runs, so a load balancer over them can be built
    (and health-checked as soon as it starts). Each incarnation of the task serves duplicates of the
    sockets, so a restarted task listens again on the same ports.

    Args:
        names: one demo upstream per name.
        host: the address they listen on.
        ports: their ports (default all 0: the OS picks).

    Raises:
        ValueError: `ports` does not give one port per name.
        OSError: a port cannot be bound.
    """

    def __init__(
        self, names: Sequence[str] = DEMO_UPSTREAM_NAMES, *, host: str = DEMO_HOST, ports: Sequence[int] = ()
    ) -> None:
        wanted = list(ports) or [0] * len(names)
        if len(wanted) != len(names):
            raise ValueError(f"ports: {len(wanted)} given for {len(names)} upstreams")
        self.names = tuple(names)
        self.host = host
        self._sockets: list[socket.socket] = []
        try:
            for port in wanted:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                self._sockets.append(sock)
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((host, port))
                sock.listen()
        except OSError:
            self.close()
            raise
        #: The bound port of each upstream, in the order of `names`.
        self.ports: tuple[int, ...] = tuple(sock.getsockname()[1] for sock in self._sockets)
        self._names_by_port = dict(zip(self.ports, self.names, strict=True))

    def __repr__(self) -> str:
        listening = ", ".join(f"{name}={port}" for name, port in zip(self.names, self.ports, strict=True))
        return f"<DemoUpstreams {listening}>"

    @property
    def addresses(self) -> list[Address]:
        """Where each upstream listens, in the order of `names`."""
        return [(self.host, port) for port in self.ports]

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        """Serve every upstream until cancelled; ready at once (the sockets are listening already)."""
        listeners = [
            trio.SocketListener(trio.socket.from_stdlib_socket(sock.dup())) for sock in self._sockets
        ]
        for name, port in zip(self.names, self.ports, strict=True):
            logger.info("demo upstream %s on %s:%d", name, self.host, port)
        ready_notifier.notify_ready()
        await trio.serve_listeners(self._serve, listeners)

    async def _serve(self, stream: trio.SocketStream) -> None:
        port = stream.socket.getsockname()[1]
        await _serve_connection(self._names_by_port.get(port, str(port)), stream)

    def close(self) -> None:
        """Close the sockets bound at construction (a task still serving keeps its duplicates)."""
        for sock in self._sockets:
            sock.close()


async def _serve_connection(name: str, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await _read_request(conn, stream)
            if request is None:
                return
            body = json.dumps(demo_record(name, request)).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("x-upstream", name),
                ("Server", "demo-upstream"),
                ("alt-svc", 'h3=":443"; ma=86400'),
            ]
            data = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")) or b""
            if request.method != b"HEAD":
                data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # the client asked to close, or we could not tell where its request ended
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
        # A demo origin has nobody to report to: the client broke the connection, so it just ends.
        logger.debug("demo upstream %s: connection ended: %r", name, exc)
    finally:
        await trio.aclose_forcefully(stream)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request | None:
    """The next request, its body read and dropped; None when the client closed between requests."""
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


# -- the demo load balancer ----------------------------------------------------------------------------------


class DemoBalancer(ProxyHttp):
    """The guide's `LB`: round robin over the healthy backends of `upstreams`, asking for the demo Host."""

    def __init__(self, upstreams: LoadBalancer) -> None:
        self.upstreams = upstreams

    def new_ctx(self) -> None:
        return None

    async def upstream_peer(self, session: Session, ctx: None) -> HttpPeer:
        backend = self.upstreams.select(b"", MAX_ITERATIONS)  # the key does not matter for round robin
        if backend is None:
            raise Error.explain(ErrorType.http_status(503), "no healthy upstream", ErrorSource.INTERNAL)
        # Plain HTTP to a demo upstream; the guide's peer uses TLS with SNI one.one.one.one.
        return HttpPeer(backend.addr, tls=False, sni="")

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: None
    ) -> None:
        upstream_request.insert_header("Host", DEMO_UPSTREAM_HOST)


def demo_load_balancer(upstreams: Iterable[Address]) -> LoadBalancer:
    """A round-robin `LoadBalancer` over `upstreams`, health-checked over TCP every second.

    Raises:
        ValueError: `upstreams` is empty.
    """
    addresses = [f"{host}:{port}" for host, port in upstreams]
    if not addresses:
        raise ValueError("LB: no upstreams to balance over")
    lb = LoadBalancer.try_from_iter(addresses, selection=RoundRobin)
    lb.set_health_check(TcpHealthCheck())
    lb.health_check_frequency = HEALTH_CHECK_FREQUENCY
    return lb


def add_demo_proxy(
    server: Server,
    upstreams: Iterable[Address],
    *,
    listen: str = DEMO_LISTEN,
    depends_on: Iterable[ServiceHandle | Service] = (),
) -> HttpProxyService:
    """Add the demo load balancer over `upstreams` to `server`: its health-checked `LoadBalancer` as a
    background service, and the proxy on `listen`, which opens once the first health round is done.

    Args:
        server: the server to add the two services to.
        upstreams: the backends.
        listen: "host:port" to listen on (port 0: the OS picks; see the service's `bound`).
        depends_on: services the load balancer starts after (the upstreams' own service, say).

    Returns:
        The proxy service; its `app` is the `DemoBalancer`.
    """
    health_check = background_service("health check", demo_load_balancer(upstreams))
    proxy = http_proxy_service(server.configuration, DemoBalancer(health_check.task()))
    proxy.add_tcp(listen)
    server.add_service(health_check, depends_on=depends_on)
    server.add_service(proxy, depends_on=[health_check])
    return proxy


def add_demo(
    server: Server, *, listen: str = DEMO_LISTEN, names: Sequence[str] = DEMO_UPSTREAM_NAMES
) -> HttpProxyService:
    """Add the whole demo to `server`: the demo upstreams (a background service), then the demo load
    balancer over them (see `add_demo_proxy`).

    Raises:
        OSError: an upstream's socket cannot be bound.
    """
    upstreams = DemoUpstreams(names)
    service: GenBackgroundService[DemoUpstreams] = background_service("demo upstreams", upstreams)
    # The upstreams stop last, once the proxy has drained; nothing of theirs is worth waiting for then.
    service.shutdown_timeout = 0.0
    server.add_service(service)
    return add_demo_proxy(server, upstreams.addresses, listen=listen, depends_on=[service])
