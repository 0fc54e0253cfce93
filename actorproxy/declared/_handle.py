"""Building the declared proxy into a `Server`, and reloading it while it runs.

Rules:
- `build_proxy` adds one load balancer service per upstream cluster (`upstream <name>`), then one proxy
  service per declared service, each depending on the clusters its routes send to: a service's listeners
  open only once those clusters have run their first discovery and health round. It registers the reload
  hook with the server (`server.on_reload`): SIGHUP and `await server.reload()` read the file again.
- A reload plans everything synchronously first (new load balancers, new route tables; nothing runs yet),
  so a configuration the builder refuses changes nothing. It then starts the load balancers of the clusters
  that are new or whose section changed, each under a name of its own (`upstream <name> #<n>`) so that old
  and new run side by side; if one fails to start, the ones started are stopped and nothing changes. Then
  every service's route table is replaced, all in one synchronous step (no request sees half a reload),
  and only then are the replaced load balancers stopped. A cluster whose section is unchanged keeps its
  `LoadBalancer` object, its health state and its in-flight counts.
- A reload never touches a connection: a request in flight finishes on the table it started with (and the
  load balancers of that table, which keep serving selections from their last snapshot once stopped); a
  keep-alive connection takes the new table at its next request.
- What a reload cannot apply is logged as a warning naming it: listener changes, services added to or
  removed from the file (a removed service keeps its listeners and its last routes), and the top-level
  settings (`threads`, `max_retries`, ...). They need a graceful upgrade or a restart.
- Reloads run one at a time.
- When a route caches (`routes[i].cache`), the store runs as a background service (`store`, the file's
  `store:` section, else in memory) that the proxy services depend on, and each such route gets its own
  `ResponseCache` on it, its keys under `cache:<service>:<route index>:`. A reload builds new caches on
  the same store (what they hold stays); a reload that adds the first caching route cannot start a store,
  and says so: that route caches after a restart.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping

import attrs
import trio

from actorproxy.config import (
    ConfigError,
    ListenerConf,
    Problem,
    RouteConf,
    ServerConf,
    ServiceConf,
    StoreConf,
    UpstreamConf,
    load_conf,
)
from actorproxy.lb import LoadBalancer, LoadBalancerService
from actorproxy.limits import LimitTables, RouteLimiter
from actorproxy.proxy import HttpProxyService, ResponseCache
from actorproxy.server import ReloadOutcome, Server, background_service
from actorproxy.store import Store
from actors import ActorSystem, StartFailed

from ._app import DeclaredProxy, Routing
from ._clusters import build_load_balancer

__all__ = ["Cluster", "DeclaredProxyHandle", "DeclaredService", "ReloadReport", "applies_live", "build_proxy"]

logger = logging.getLogger("actorproxy.declared")

#: The service that owns the Redis client of the rate limits (`backend: redis`).
REDIS_LIMITS_SERVICE = "rate limits redis"
#: The service that runs the store the routes cache in.
STORE_SERVICE = "store"
# Seconds the load balancers a failed or cancelled reload started get to stop, shielded.
CLEANUP_TIMEOUT = 10.0

# What a reload applies (the module rules): a service's routes, the upstream clusters; and the sections only
# the reload's own reading uses (where the settings file is) or the settings command reads (its hooks).
_LIVE = re.compile(r"(services\[\d+\]\.routes|upstreams|settings|hooks)([.\[]|$)")


def applies_live(path: str) -> bool:
    """Whether a change of the value at key path `path` (`services[0].routes[1].upstream`) is applied by a
    reload (SIGHUP); any other change needs a graceful upgrade or a restart."""
    return _LIVE.match(path) is not None


@attrs.frozen(eq=False)
class Cluster:
    """An upstream cluster of the declared proxy: its section and the service running its load balancer."""

    conf: UpstreamConf
    service: LoadBalancerService

    @property
    def lb(self) -> LoadBalancer:
        return self.service.lb


@attrs.frozen(eq=False)
class DeclaredService:
    """A declared proxy service: the section it runs with, its listeners (as started), its app."""

    conf: ServiceConf
    listeners: tuple[ListenerConf, ...]
    service: HttpProxyService
    app: DeclaredProxy


@attrs.frozen
class ReloadReport:
    """What a reload did, by cluster and service name.

    Attributes:
        kept: clusters whose section is unchanged: same `LoadBalancer`, same health state.
        replaced: clusters whose section changed: a new load balancer replaced the old one.
        added: clusters new in the file.
        removed: clusters no longer in the file; their load balancers were stopped.
        services: the services whose route tables were replaced.
        warnings: what the reload could not apply (it needs an upgrade or a restart).
    """

    kept: tuple[str, ...] = ()
    replaced: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    services: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()


@attrs.frozen(eq=False)
class _Plan:
    """A reload decided but not applied yet."""

    clusters: dict[str, Cluster]
    starting: list[Cluster]
    retiring: list[Cluster]
    routings: list[tuple[DeclaredService, ServiceConf, Routing]]
    report: ReloadReport


def _cluster(conf: UpstreamConf, index: int, generation: int) -> Cluster:
    lb = build_load_balancer(conf, where=f"upstreams[{index}]")
    name = f"upstream {conf.name}" if generation == 0 else f"upstream {conf.name} #{generation}"
    return Cluster(conf, background_service(name, lb))


def _proxy_service(
    server_conf: ServerConf, conf: ServiceConf, where: str, app: DeclaredProxy
) -> HttpProxyService:
    proxy = HttpProxyService(app, name=conf.name, conf=server_conf, settings=server_conf.proxy_settings(conf))
    for n, listener in enumerate(conf.listeners):
        limit = listener.max_connections
        if listener.path is not None:
            proxy.add_uds(listener.path, listener.permissions, max_connections=limit)
            continue
        assert listener.address is not None  # ListenerConf holds exactly one of address and path
        per_client = listener.max_connections_per_client
        if listener.tls is None:
            proxy.add_tcp(
                listener.address,
                max_connections=limit,
                max_connections_per_client=per_client,
                h2c=listener.h2c,
            )
            continue
        try:
            proxy.add_tls(
                listener.address,
                listener.tls.cert,
                listener.tls.key,
                max_connections=limit,
                max_connections_per_client=per_client,
                alpn=listener.alpn,
            )
        except OSError as exc:  # a missing file, or an ssl.SSLError for a bad certificate or key
            reason = f"cannot load the certificate and key: {exc.strerror or exc}"
            raise ConfigError([Problem(f"{where}.listeners[{n}].tls", reason)]) from exc
    return proxy


def _caches(conf: ServerConf) -> bool:
    """Whether a route of `conf` caches."""
    return any(route.cache is not None and route.cache.enabled for s in conf.services for route in s.routes)


def _routing(
    conf: ServiceConf,
    clusters: Mapping[str, Cluster],
    generation: int,
    limits: LimitTables,
    store: Store | None = None,
) -> Routing:
    def limiter(index: int, route: RouteConf) -> RouteLimiter | None:
        if route.rate_limit is None:
            return None
        return limits.route_limiter(f"{conf.name}.routes[{index}]", route.rate_limit, conf)

    def cache(index: int, route: RouteConf) -> ResponseCache | None:
        if route.cache is None or not route.cache.enabled or store is None:
            return None
        return ResponseCache.from_conf(route.cache, store, namespace=f"cache:{conf.name}:{index}:")

    return Routing.build(
        conf.routes,
        {name: cluster.conf for name, cluster in clusters.items()},
        {name: cluster.lb for name, cluster in clusters.items()},
        generation=generation,
        limiter=limiter,
        cache=cache,
    )


def build_proxy(server: Server, conf: ServerConf | None = None) -> DeclaredProxyHandle:
    """Add the proxy declared in `conf` (default: the server's configuration) to `server`.

    Adds a load balancer service per upstream cluster and a proxy service per declared service (which
    starts once the clusters its routes use are ready), and registers the reload hook with the server.

    Returns:
        The handle, to reload the proxy or reach its clusters and services.

    Raises:
        ConfigError: the configuration cannot be built (a TLS certificate that cannot be loaded, a DNS
            discovery without a resolver), naming the key path.
    """
    conf = server.configuration if conf is None else conf
    clusters = {upstream.name: _cluster(upstream, index, 0) for index, upstream in enumerate(conf.upstreams)}
    # Before the workers fork: they share the tables.
    limits = LimitTables(conf, worker=lambda: server.worker)
    # Opened by its service in each process that serves (after any fork).
    store = None
    if _caches(conf):
        store = Store.from_conf(conf.store or StoreConf(backend="memory"), redis=conf.redis)
    services: dict[str, DeclaredService] = {}
    for index, service_conf in enumerate(conf.services):
        routing = _routing(service_conf, clusters, 0, limits, store)
        app = DeclaredProxy(routing, name=service_conf.name)
        proxy = _proxy_service(conf, service_conf, f"services[{index}]", app)
        services[service_conf.name] = DeclaredService(service_conf, service_conf.listeners, proxy, app)
    for cluster in clusters.values():
        server.add_service(cluster.service)
    resources = []
    if limits.redis is not None:
        resources.append(server.add_service(background_service(REDIS_LIMITS_SERVICE, limits.redis)))
    if store is not None:
        resources.append(server.add_service(background_service(STORE_SERVICE, store)))
    for declared in services.values():
        used = {route.upstream for route in declared.conf.routes}
        depends = [clusters[name].service for name in sorted(used)]
        server.add_service(declared.service, depends_on=[*depends, *resources])
    handle = DeclaredProxyHandle(server, conf, clusters, services, limits, store=store)
    server.on_reload(handle.reload_from_file)
    # A reload replaces clusters: the admin service asks the handle, never the services added here.
    server.add_cluster_source(
        lambda: {name: cluster.lb for name, cluster in handle.clusters.items()},
        replaces=[cluster.service for cluster in clusters.values()],
    )
    return handle


class DeclaredProxyHandle:
    """The declared proxy of a server: its clusters and services, and `reload`.

    Built by `build_proxy`; the server runs the services.
    """

    def __init__(
        self,
        server: Server,
        conf: ServerConf,
        clusters: Mapping[str, Cluster],
        services: Mapping[str, DeclaredService],
        limits: LimitTables | None = None,
        *,
        store: Store | None = None,
    ) -> None:
        self.server = server
        #: Where the routes' rate limits are counted.
        self.limits = limits if limits is not None else LimitTables(conf, worker=lambda: server.worker)
        #: The store the routes cache in; None: no route cached when the proxy was built.
        self.store = store
        self._conf = conf
        self._clusters = dict(clusters)
        self._services = dict(services)
        self._generation = 0
        self._lock = trio.Lock()

    def __repr__(self) -> str:
        return (
            f"<DeclaredProxyHandle services={list(self._services)} upstreams={list(self._clusters)}"
            f" generation={self._generation}>"
        )

    @property
    def conf(self) -> ServerConf:
        """The configuration applied last (at build, or by the last successful reload)."""
        return self._conf

    @property
    def clusters(self) -> Mapping[str, Cluster]:
        """The running clusters, by name."""
        return dict(self._clusters)

    @property
    def services(self) -> Mapping[str, DeclaredService]:
        """The declared services, by name."""
        return dict(self._services)

    def load_balancer(self, upstream: str) -> LoadBalancer:
        """The current load balancer of the cluster named `upstream`.

        Raises:
            KeyError: no such cluster.
        """
        return self._clusters[upstream].lb

    # -- reload ----------------------------------------------------------------------------------------------

    async def reload_from_file(self) -> ReloadOutcome:
        """The reload hook: read the server's configuration file (`-c`) again and `reload` with it.

        A file that cannot be loaded, or a configuration that cannot be built, is logged with the key path
        of every problem, and so is a new cluster that fails to start; nothing changes.

        Returns:
            What happened: the `ReloadReport` as `details` when it was applied, the reason when refused.
        """
        hook = "declared proxy"
        path = self.server.conf_path
        if path is None:
            message = "the server was started without a configuration file; nothing to reload"
            logger.info("reload: %s", message)
            return ReloadOutcome(hook=hook, ok=True, message=message)
        try:
            conf = await trio.to_thread.run_sync(load_conf, path)
            report = await self.reload(conf)
        except ConfigError as exc:
            logger.error("reload refused, nothing changed: %s", exc)
            return ReloadOutcome(hook=hook, ok=False, message=f"reload refused, nothing changed: {exc}")
        except StartFailed as exc:
            # What failed (a discovery, say) says more than the supervisors' wrapping of it.
            cause: BaseException = exc
            while isinstance(cause, StartFailed) and cause.__cause__ is not None:
                cause = cause.__cause__
            logger.error("reload refused, nothing changed: %s (%s)", exc, cause)
            return ReloadOutcome(
                hook=hook, ok=False, message=f"reload refused, nothing changed: {exc} ({cause})"
            )
        return ReloadOutcome(hook=hook, ok=True, message=f"reloaded {path}", details=attrs.asdict(report))

    async def reload(self, conf: ServerConf) -> ReloadReport:
        """Apply the routes and clusters of `conf` (already loaded, so valid) to the running proxy.

        See the module rules for what changes and what does not.

        Raises:
            RuntimeError: the server is not serving.
            ConfigError: `conf` cannot be built, or a service it leaves running needs a cluster it drops;
                nothing changed.
            StartFailed: a new cluster's load balancer failed to start (its first discovery failed);
                nothing changed.
        """
        async with self._lock:
            system = self.server.system
            if system is None:
                raise RuntimeError("reload: the server is not serving")
            self._generation += 1
            plan = self._plan(conf, self._generation)
            await self._start(system, plan.starting)
            # The swap: one synchronous step, so no request sees some services on the new routes and
            # others on the old ones.
            for declared, service_conf, routing in plan.routings:
                declared.app.routing = routing
                self._services[declared.conf.name] = attrs.evolve(declared, conf=service_conf)
            self._clusters = plan.clusters
            self._conf = conf
            await _stop(system, plan.retiring)
        report = plan.report
        for warning in report.warnings:
            logger.warning("reload: %s", warning)
        logger.info(
            "reloaded: clusters kept %s, replaced %s, added %s, removed %s; routes of %s",
            _names(report.kept),
            _names(report.replaced),
            _names(report.added),
            _names(report.removed),
            _names(report.services),
        )
        return report

    def _plan(self, conf: ServerConf, generation: int) -> _Plan:
        """Decide the reload and build what it starts, without running anything.

        Raises:
            ConfigError: see `reload`.
        """
        old = self._clusters
        clusters: dict[str, Cluster] = {}
        starting: list[Cluster] = []
        kept: list[str] = []
        replaced: list[str] = []
        added: list[str] = []
        for index, upstream in enumerate(conf.upstreams):
            current = old.get(upstream.name)
            if current is not None and current.conf == upstream:
                clusters[upstream.name] = current
                kept.append(upstream.name)
                continue
            cluster = _cluster(upstream, index, generation)
            clusters[upstream.name] = cluster
            starting.append(cluster)
            (added if current is None else replaced).append(upstream.name)
        retiring = [cluster for name, cluster in old.items() if clusters.get(name) is not cluster]
        removed = [name for name in old if name not in clusters]

        warnings = _settings_warnings(self._conf, conf)
        if self.store is None and _caches(conf):
            warnings.append("a route caches now, but no store runs: its cache starts at the next restart")
        declared = {service.name: service for service in conf.services}
        routings = []
        problems = []
        for name, running in self._services.items():
            service_conf = declared.get(name)
            if service_conf is None:
                warnings.append(
                    f"service {name!r} is no longer in the file: it keeps its listeners and its last routes"
                    " until an upgrade or a restart"
                )
                service_conf = running.conf
                for index, route in enumerate(service_conf.routes):
                    if route.upstream not in clusters:
                        problems.append(
                            Problem(
                                "upstreams",
                                f"service {name!r} keeps running (a reload cannot stop its listeners) and its"
                                f" routes[{index}] needs upstream {route.upstream!r}",
                            )
                        )
            elif service_conf.listeners != running.listeners:
                warnings.append(_listener_warning(name, running.listeners, service_conf.listeners))
            if not problems:
                routing = _routing(service_conf, clusters, generation, self.limits, self.store)
                routings.append((running, service_conf, routing))
        for name in declared:
            if name not in self._services:
                warnings.append(f"service {name!r} is new: its listeners open at the next upgrade or restart")
        if problems:
            raise ConfigError(problems)
        report = ReloadReport(
            kept=tuple(kept),
            replaced=tuple(replaced),
            added=tuple(added),
            removed=tuple(removed),
            services=tuple(self._services),
            warnings=tuple(warnings),
        )
        return _Plan(clusters, starting, retiring, routings, report)

    async def _start(self, system: ActorSystem, clusters: list[Cluster]) -> None:
        """Start the load balancers of `clusters`; on any failure stop the ones started, then raise."""
        started: list[Cluster] = []
        try:
            for cluster in clusters:
                await system.spawn(cluster.service.child_spec().start, name=cluster.service.name)
                started.append(cluster)
        except BaseException:
            # Nothing may stay half-applied, not even when the reload itself is cancelled.
            with trio.CancelScope(shield=True), trio.move_on_after(CLEANUP_TIMEOUT):
                await _stop(system, started)
            raise


async def _stop(system: ActorSystem, clusters: Iterable[Cluster]) -> None:
    for cluster in clusters:
        ref = system.whereis(cluster.service.name)
        if ref is not None:
            await ref.stop()


def _names(names: tuple[str, ...]) -> str:
    return ", ".join(names) if names else "none"


def _settings_warnings(old: ServerConf, new: ServerConf) -> list[str]:
    before = attrs.asdict(old, recurse=False)
    after = attrs.asdict(new, recurse=False)
    changed = [key for key in after if key not in ("services", "upstreams") and before[key] != after[key]]
    if not changed:
        return []
    return [f"top-level settings changed ({', '.join(changed)}): they apply at the next upgrade or restart"]


def _listener_warning(
    service: str, running: tuple[ListenerConf, ...], wanted: tuple[ListenerConf, ...]
) -> str:
    def label(listener: ListenerConf) -> str:
        where = listener.address or f"unix:{listener.path}"
        return f"tls://{where}" if listener.tls is not None else where

    gone = [label(listener) for listener in running if listener not in wanted]
    new = [label(listener) for listener in wanted if listener not in running]
    parts = []
    if new:
        parts.append(f"to add {', '.join(new)}")
    if gone:
        parts.append(f"to remove {', '.join(gone)}")
    if not parts:
        parts.append("listener settings changed")
    return f"service {service!r}: listener changes need an upgrade or a restart ({'; '.join(parts)})"
