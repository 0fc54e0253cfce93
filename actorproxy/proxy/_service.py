"""`http_proxy_service`: a proxy application plus its endpoints, run as one supervised subtree.

The subtree (rest_for_one, so what depends on a crashed actor restarts after it):

    Service supervisor "<name>"
    ├── PeerPoolActor        idle upstream connections, reaped when idle too long; upstream read timeouts
    ├── ConnectionSupervisor dynamic, temporary children: one ConnectionActor per accepted socket
    └── ListenerActor (n)    one per endpoint
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

import attrs
import trio

from actorproxy.config import ALPN_CHOICES, ProxySettings, ServerConf, did_you_mean
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

from ._accesslog import AccessLog, AccessLogActor
from ._connection import ConnectionActor
from ._connector import connect_peer
from ._engine import ProxyCounters, ProxyRuntime
from ._listener import Endpoint, ListenerActor, bind_endpoint
from ._listenfds import ListenFds
from ._peer import HttpPeer
from ._phases import ProxyHttp
from ._pool import ConnectionPool, PeerPoolActor
from ._tracing import TracedProxy

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

    def __init__(
        self,
        app: ProxyHttp,
        *,
        name: str = "proxy",
        conf: ServerConf | None = None,
        settings: ProxySettings | None = None,
    ) -> None:
        self.app = app
        self.name = name
        self.conf = conf
        #: How the service serves (timeouts, limits, forwarding, retries, pool size, ...), one frozen record:
        #: `settings`, else the server's (`conf.proxy_settings()`), else the defaults. Change it with
        #: `configure` before the service starts.
        if settings is None:
            settings = conf.proxy_settings() if conf is not None else ProxySettings()
        self.settings: ProxySettings = settings
        self.endpoints: list[Endpoint] = []
        #: The address each endpoint is bound to, by endpoint index, once its listener has started.
        self.bound: dict[int, Any] = {}
        self.pool = ConnectionPool(max_size=self.settings.upstream_keepalive_pool_size)
        #: Requests, statuses, errors and crashes seen by this service (kept across restarts).
        self.counters = ProxyCounters()
        #: Opens upstream connections: `connect_peer`, or an in-memory network in tests.
        self.connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]] = connect_peer
        #: The server's listening sockets (`Server` hands its table over); None: private to this service.
        self.listen_fds: ListenFds | None = None
        #: The access log's buffer, once the service starts with `settings.access_log`; None: no log.
        self.access_log: AccessLog | None = None

    def configure(self, **changes: Any) -> ProxySettings:
        """Replace some of the service's settings (`ProxySettings` fields by name); return the new record.

        Takes effect when the service starts (or restarts): its connections share the settings it started
        with.

        Raises:
            TypeError: a name that is not a setting (with the likely one meant).
            ConfigError: a value the setting refuses.
        """
        known = [field.name for field in attrs.fields(ProxySettings)]
        for key in changes:
            if key not in known:
                hint = did_you_mean(key, known)
                meant = f" (did you mean {hint!r}?)" if hint else ""
                raise TypeError(f"{self.name}: {key!r} is not a proxy setting{meant}")
        self.settings = attrs.evolve(self.settings, **changes)
        self.pool.max_size = self.settings.upstream_keepalive_pool_size
        return self.settings

    def __repr__(self) -> str:
        return f"<HttpProxyService {self.name} {[str(e) for e in self.endpoints]}>"

    def add_tcp(
        self,
        addr: str,
        *,
        max_connections: int | None = None,
        max_connections_per_client: int | None = None,
        h2c: bool = False,
    ) -> None:
        """Listen on "host:port" (port 0 picks a free port).

        Args:
            h2c: also accept HTTP/2 in cleartext with prior knowledge (RFC 9113 §3.3).
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
                h2c=h2c,
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
        alpn: Sequence[str] = ALPN_CHOICES,
    ) -> None:
        """Terminate TLS on "host:port" with a certificate chain and key (PEM files) (see `add_tcp`).

        `sni_callback(ssl_object, server_name, context)` may switch `ssl_object.context` per SNI name (a
        context it switches to should offer the same `alpn`).

        Args:
            alpn: the protocols offered by ALPN, preferred first: "h2" (HTTP/2) and "http/1.1".
        """
        host, port = _split_host_port(addr)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_path, key_path)
        unknown = [protocol for protocol in alpn if protocol not in ALPN_CHOICES]
        if unknown or not alpn:
            raise ValueError(f"alpn: expected some of {', '.join(ALPN_CHOICES)}, got {list(alpn)!r}")
        context.set_alpn_protocols(list(alpn))
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
        self,
        listener: trio.abc.Listener[trio.abc.Stream],
        *,
        max_connections: int | None = None,
        h2c: bool = False,
    ) -> None:
        """Serve the streams `listener` accepts: an `actorproxy.testing.MemoryListener` serves a test without
        a socket (see `add_tcp`; there is no per-client limit, as a stream has no client address).

        The service borrows `listener`; it stays open when the service stops, for its owner to close. With
        `h2c`, its streams speak HTTP/2 (prior knowledge) and nothing else.
        """
        self.endpoints.append(Endpoint(listener=listener, max_connections=max_connections, h2c=h2c))

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
        app = TracedProxy(self.app, service=self.name) if self.settings.opentelemetry else self.app
        return ProxyRuntime.for_service(
            app,
            self.pool,
            self.settings,
            counters=self.counters,
            connect=self.connect,
            access_log=self.access_log,
        )

    def extra_children(self) -> list[ChildSpec]:
        """More children of the service's supervisor, started before the listeners: the access log's
        writer when there is an access log."""
        log = self.access_log
        if log is None:
            return []
        return [ChildSpec(id="access-log", start=lambda: AccessLogActor(log), restart=Restart.PERMANENT)]

    def _listener(self, index: int, endpoint: Endpoint, connections: str, fds: ListenFds) -> ListenerActor:
        return ListenerActor(endpoint, connections, partial(self.bound.__setitem__, index), fds)

    def child_spec(self) -> ChildSpec:
        """The service's subtree as a child of the server's root supervisor."""
        connections = f"{self.name}/connections"
        conf = self.settings.access_log
        if conf is None:
            self.access_log = None
        elif self.access_log is None or self.access_log.conf != conf:
            self.access_log = AccessLog(conf)
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
                            start=partial(_connection, runtime),
                            restart=Restart.TEMPORARY,
                            shutdown=self.settings.grace_period,
                        )
                    ),
                ),
            ]
            children += self.extra_children()
            children += [
                ChildSpec(id=f"listener-{n}", start=partial(self._listener, n, endpoint, connections, fds))
                for n, endpoint in enumerate(self.endpoints)
            ]
            return Supervisor(children, strategy=Strategy.REST_FOR_ONE, intensity=10, period=10)

        return ChildSpec(id=self.name, start=build)


def _connection(runtime: ProxyRuntime, stream: trio.abc.Stream, h2c: bool = False) -> ConnectionActor:
    """A connection child for a socket a listener accepted (with `h2c` from an endpoint that allows it)."""
    return ConnectionActor(stream, runtime, h2c)


def http_proxy_service(conf: ServerConf | None, app: ProxyHttp, name: str = "proxy") -> HttpProxyService:
    """Pingora's `http_proxy_service(&conf, app)`: a service to add endpoints to and hand to the Server."""
    return HttpProxyService(app, name=name, conf=conf)
