"""`http_proxy_service`: a proxy application plus its endpoints, run as one supervised subtree.

The subtree (rest_for_one, so what depends on a crashed actor restarts after it):

    Service supervisor "<name>"
    ├── PeerPoolActor        idle upstream connections, reaped when idle too long
    ├── ConnectionSupervisor dynamic, temporary children: one ConnectionActor per accepted socket
    └── ListenerActor (n)    one per endpoint
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from actorproxy.config import DEFAULT_GRACE_PERIOD
from actorproxy.http import Forwarding, HttpLimits, select_codec
from actors import ActorSystem
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Restart,
    Strategy,
    Supervisor,
    terminate_child,
    which_children,
)

from ._connection import DEFAULT_KEEPALIVE_TIMEOUT, ConnectionActor
from ._connector import connect_peer
from ._engine import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_REQUEST_HEADER_TIMEOUT,
    PeerDefaults,
    ProxyCounters,
    ProxyRuntime,
)
from ._listener import Endpoint, ListenerActor, bind_endpoint
from ._listenfds import ListenFds
from ._peer import HttpPeer
from ._phases import ProxyHttp
from ._pool import DEFAULT_POOL_SIZE, ConnectionPool, PeerPoolActor

__all__ = ["HttpProxyService", "http_proxy_service"]

logger = logging.getLogger("actorproxy.proxy")


SniCallback = Callable[[ssl.SSLSocket | ssl.SSLObject, str | None, ssl.SSLContext], Any]


def _split_host_port(addr: str) -> tuple[str, int]:
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"listen address {addr!r}: not host:port")
    return host.strip("[]") or "0.0.0.0", int(port)


class HttpProxyService:
    """A proxy service: `app`'s phases served on every endpoint added with `add_tcp`/`add_uds`/`add_tls`."""

    def __init__(self, app: ProxyHttp, *, name: str = "proxy", conf: Any = None) -> None:
        self.app = app
        self.name = name
        self.conf = conf
        self.endpoints: list[Endpoint] = []
        #: The address each endpoint is bound to, by endpoint index, once its listener has started.
        self.bound: dict[int, Any] = {}
        self.pool = ConnectionPool(max_size=_conf(conf, "upstream_keepalive_pool_size", DEFAULT_POOL_SIZE))
        self.max_retries: int = _conf(conf, "max_retries", DEFAULT_MAX_RETRIES)
        self.keepalive_timeout: float | None = DEFAULT_KEEPALIVE_TIMEOUT
        #: Seconds from a request's head to the end of its response (408 or 504 while no response has
        #: started, then the connection is cut); None: no total deadline.
        self.request_timeout: float | None = None
        #: The server's `ca_file` and `client_bind_to_ipv4/6`, for peers that set neither.
        self.peer_defaults: PeerDefaults | None = _peer_defaults(conf)
        #: Seconds a client has to send a whole request head (408 for a partial one); None: no limit.
        self.request_header_timeout: float | None = DEFAULT_REQUEST_HEADER_TIMEOUT
        #: Seconds a client may leave between two pieces of a request body (408); None: no limit.
        self.request_body_timeout: float | None = DEFAULT_REQUEST_BODY_TIMEOUT
        #: The HTTP/1.1 codec by name ("h11", "httptools"); None takes `select_codec()`'s choice.
        self.codec: str | None = None
        #: How large a request from a client may be (request line, head, fields, body, chunk lines); past a
        #: limit the request is answered 413 / 414 / 431 / 400 and its connection closed (docs/security.md).
        self.limits: HttpLimits = HttpLimits()
        #: What the proxy adds to forwarded messages (Via, X-Forwarded-*) and whether it forwards TRACE.
        self.forwarding: Forwarding = Forwarding()
        #: Requests, statuses, errors and crashes seen by this service (kept across restarts).
        self.counters = ProxyCounters()
        #: Opens upstream connections: `connect_peer`, or an in-memory network in tests.
        self.connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]] = connect_peer
        #: The server's listening sockets (`Server` hands its table over); None: private to this service.
        self.listen_fds: ListenFds | None = None
        #: Seconds a request in flight may take to finish once the service drains (Pingora's
        #: `grace_period_seconds`); then its connection is cancelled.
        self.grace_period: float = _conf(conf, "grace_period_seconds", DEFAULT_GRACE_PERIOD)

    def __repr__(self) -> str:
        return f"<HttpProxyService {self.name} {[str(e) for e in self.endpoints]}>"

    def add_tcp(
        self,
        addr: str,
        *,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
    ) -> None:
        """Listen on "host:port" (port 0 picks a free port).

        Args:
            max_connections: connections open at once; at the limit the listener stops accepting (new ones
                wait in the kernel's backlog). None: no limit.
            max_connections_per_client: connections open at once from one client address; one more gets a
                503 and is closed. None: no limit.
        """
        host, port = _split_host_port(addr)
        self.endpoints.append(
            Endpoint(
                host=host,
                port=port,
                max_connections=max_connections,
                max_connections_per_client=max_connections_per_client,
            )
        )

    def add_uds(
        self, path: str, permissions: int | None = None, *, max_connections: int | None = None
    ) -> None:
        """Listen on a Unix socket at `path`, with `permissions` (e.g. 0o660) if given (see `add_tcp`)."""
        self.endpoints.append(Endpoint(path=path, permissions=permissions, max_connections=max_connections))

    def add_tls(
        self,
        addr: str,
        cert_path: str,
        key_path: str,
        *,
        sni_callback: SniCallback | None = None,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
    ) -> None:
        """Terminate TLS on "host:port" with a certificate chain and key (PEM files) (see `add_tcp`).

        `sni_callback(ssl_object, server_name, context)` may switch `ssl_object.context` per SNI name.
        """
        host, port = _split_host_port(addr)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        if sni_callback is not None:
            context.sni_callback = sni_callback
        self.endpoints.append(
            Endpoint(
                host=host,
                port=port,
                ssl_context=context,
                max_connections=max_connections,
                max_connections_per_client=max_connections_per_client,
            )
        )

    def add_listener(
        self, listener: trio.abc.Listener[trio.abc.Stream], *, max_connections: int | None = None
    ) -> None:
        """Serve the streams `listener` accepts: an `actorproxy.testing.MemoryListener` serves a test without
        a socket (see `add_tcp`; there is no per-client limit, as a stream has no client address).

        The service borrows `listener`; it stays open when the service stops, for its owner to close.
        """
        self.endpoints.append(Endpoint(listener=listener, max_connections=max_connections))

    def use_listen_fds(self, fds: ListenFds) -> None:
        """Borrow listening sockets from `fds` (the server's), and register those bound here."""
        self.listen_fds = fds

    def bind_listeners(self, fds: ListenFds) -> None:
        """Bind every endpoint not in `fds` yet, now (before the event loop: workers inherit them).

        Raises:
            OSError: an address is in use or not allowed; the message names the endpoint.
        """
        for endpoint in self.endpoints:
            if endpoint.listener is not None:
                continue  # nothing to bind: the streams come from the listener
            if endpoint.key in fds:
                continue  # handed over by the previous server, or a second "host:0" (bound at start)
            try:
                fds.adopt({endpoint.key: bind_endpoint(endpoint)})
            except OSError as exc:
                raise OSError(exc.errno, f"{self.name}: cannot listen on {endpoint}: {exc.strerror}") from exc

    async def begin_drain(self, system: ActorSystem) -> None:
        """Stop every listener (they stay stopped) and ask every connection to finish: requests in flight
        complete with keep-alive off, idle connections get a last request (`DRAIN_LINGER`)."""
        supervisor = system.whereis(self.name)
        if supervisor is None:
            return
        for index in range(len(self.endpoints)):
            try:
                await terminate_child(supervisor, f"listener-{index}")
            except Exception as exc:  # the supervisor is stopping, or already stopped, that child
                logger.debug("%s: listener-%d: %r", self.name, index, exc)
        connections = system.whereis(f"{self.name}/connections")
        children = [] if connections is None else await which_children(connections)
        for child in children:
            if child.ref is not None:
                child.ref.request_stop()
        logger.info("%s: stopped accepting; %d connections finishing", self.name, len(children))

    def runtime(self) -> ProxyRuntime:
        """What the service's connections share, built from the service's current settings."""
        return ProxyRuntime(
            self.app,
            self.pool,
            self.counters,
            codec=select_codec(self.codec),
            max_retries=self.max_retries,
            keepalive_timeout=self.keepalive_timeout,
            request_header_timeout=self.request_header_timeout,
            request_body_timeout=self.request_body_timeout,
            request_timeout=self.request_timeout,
            limits=self.limits,
            forwarding=self.forwarding,
            peer_defaults=self.peer_defaults,
            connect=self.connect,
        )

    def _listener(self, index: int, endpoint: Endpoint, connections: str, fds: ListenFds) -> ListenerActor:
        return ListenerActor(endpoint, connections, partial(self.bound.__setitem__, index), fds)

    def child_spec(self) -> ChildSpec:
        """The service's subtree as a child of the server's root supervisor."""
        connections = f"{self.name}/connections"
        runtime = self.runtime()
        fds = self.listen_fds if self.listen_fds is not None else ListenFds(closing=True)

        def build() -> Supervisor:
            children = [
                ChildSpec(id="pool", start=lambda: PeerPoolActor(self.pool)),
                ChildSpec(
                    id="connections",
                    name=connections,
                    start=lambda: DynamicSupervisor(
                        ChildSpec(
                            id="conn",
                            start=partial(ConnectionActor, runtime=runtime),
                            restart=Restart.TEMPORARY,
                            shutdown=self.grace_period,
                        )
                    ),
                ),
            ]
            children += [
                ChildSpec(id=f"listener-{n}", start=partial(self._listener, n, endpoint, connections, fds))
                for n, endpoint in enumerate(self.endpoints)
            ]
            return Supervisor(children, strategy=Strategy.REST_FOR_ONE, intensity=10, period=10)

        return ChildSpec(id=self.name, start=build)


def _peer_defaults(conf: Any) -> PeerDefaults | None:
    ca = _conf(conf, "ca_file", None)
    ipv4 = tuple(_conf(conf, "client_bind_to_ipv4", ()))
    ipv6 = tuple(_conf(conf, "client_bind_to_ipv6", ()))
    if ca is None and not ipv4 and not ipv6:
        return None
    return PeerDefaults(ca=ca, bind_ipv4=ipv4, bind_ipv6=ipv6)


def _conf(conf: Any, key: str, default: Any) -> Any:
    value = getattr(conf, key, None) if conf is not None else None
    return default if value is None else value


def http_proxy_service(conf: Any, app: ProxyHttp, name: str = "proxy") -> HttpProxyService:
    """Pingora's `http_proxy_service(&conf, app)`: a service to add endpoints to and hand to the Server."""
    return HttpProxyService(app, name=name, conf=conf)
