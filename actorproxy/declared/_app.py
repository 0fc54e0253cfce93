"""`DeclaredProxy`: the `ProxyHttp` application of a service declared in the configuration file.

Rules:
- The app reads its routes from `routing`, an immutable `Routing` snapshot that a reload replaces whole.
  A request reads it once, in `request_filter`, and keeps the route it matched in its ctx: one request sees
  one table (and the load balancers that table was built with) from start to end, retries included.
  A keep-alive connection reads the current snapshot again at its next request.
- No route matches: 404 with a short text body, written by the proxy. The route's cluster has no ready
  backend: 503 naming the cluster.
- Backend choice: `LoadBalancer.select(key, 256)`; the key is the request path for the hashing algorithms
  (`fnv_hash`, `consistent`: a path sticks to a backend) and empty for the others, which ignore it. A retry
  skips the backends this request already tried while another one is ready.
- Retries: the engine's `max_retries` (the server's) bounds every request; a route's `retries` bounds its
  own requests further. The app counts the attempts of each request and refuses a retry, in
  `fail_to_connect` and `error_while_proxy`, once the route's retries are spent. A connect failure (nothing
  was sent) is retried while a ready backend is left untried; a failure after connecting follows Pingora's
  rule (a reused connection, or with `retry_idempotent_on_fresh_connection`, which this app turns on, an
  idempotent request whose body is still whole).
- Header edits are applied removals first, then sets: `request_headers` to the request that goes upstream
  (`upstream_request_filter`), `response_headers` to the upstream's response (`response_filter`); the
  proxy's own answers (404, 502, 503, ...) are not edited.
- A route with `compression` turns on the request's `downstream_compression` with the route's settings in
  `request_filter`; other routes never touch it.
- The peer's timeouts come from the route, built into one `PeerOptions` per route at build time and shared
  by its requests (read-only: the engine never changes a peer's options).
- A route's `rate_limit` is its plan's `limiter`, checked in `request_filter` right after the match; a
  refused request is answered there (429 by default, see `actorproxy.limits.RouteLimiter`). A route
  without one costs a single `is None` test.
- A route's `cache` is its plan's `ResponseCache`, enabled in `request_cache_filter`; its `header`
  (`x-cache` by default) is set in `response_filter`, on hits and on what the upstream answered. The cache
  phases run only while some route of the routing caches (`cache_phases` follows the routing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from actorproxy.config import CompressionConf, HeaderEditsConf, RouteConf, UpstreamConf
from actorproxy.http import Error, ErrorSource, ErrorType, RequestHeader, ResponseHeader
from actorproxy.lb import Backend, LoadBalancer
from actorproxy.limits import LimitStatistics, RouteLimiter
from actorproxy.proxy import HttpPeer, PeerOptions, ProxyHttp, ResponseCache, Session

from ._router import RouteTable

__all__ = [
    "HASHING_ALGORITHMS",
    "MAX_ITERATIONS",
    "NO_ROUTE_BODY",
    "DeclaredProxy",
    "DeclaredRequest",
    "HeaderEdits",
    "RoutePlan",
    "Routing",
    "respond_text",
]

# Candidates `select` may draw before it gives up (Pingora's examples use 256).
MAX_ITERATIONS = 256
#: The algorithms that choose by key: for them the key is the request path.
HASHING_ALGORITHMS = frozenset({"fnv_hash", "consistent"})
#: The body of the proxy's 404 when no route matches.
NO_ROUTE_BODY = "no route matches this request\n"
#: Backends whose parsed peer a route keeps; past it the route forgets them all (discovery churn).
PEER_CACHE_SIZE = 1024


@attrs.frozen
class HeaderEdits:
    """Header edits compiled for the request path: lower-case names to remove, then (name, value) to set."""

    remove: frozenset[str] = frozenset()
    set: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_conf(cls, conf: HeaderEditsConf) -> HeaderEdits:
        return cls(remove=frozenset(name.lower() for name in conf.remove), set=tuple(conf.set.items()))

    def __bool__(self) -> bool:
        return bool(self.remove or self.set)

    def apply(self, header: RequestHeader | ResponseHeader) -> None:
        """Edit `header` in place: removals first, then sets (each replacing every field of its name)."""
        if self.remove:
            header.headers.remove_all(self.remove)
        for name, value in self.set:
            header.insert_header(name, value)


def _peer_options(route: RouteConf) -> PeerOptions:
    """The route's timeouts; one it does not set keeps `PeerOptions`' default."""
    options = PeerOptions()
    if route.connect_timeout is not None:
        options.connection_timeout = route.connect_timeout
    if route.total_timeout is not None:
        options.total_connection_timeout = route.total_timeout
    if route.read_timeout is not None:
        options.read_timeout = route.read_timeout
    if route.write_timeout is not None:
        options.write_timeout = route.write_timeout
    return options


@attrs.frozen(eq=False)
class RoutePlan:
    """What the proxy does with a request one route matched, bound to the cluster's `LoadBalancer`.

    Attributes:
        index: the route's position in its service's `routes`.
        upstream: the cluster's name.
        lb: the cluster's load balancer.
        hash_by_path: select with the request path as the key (hashing algorithms).
        retries: the most retries of one request; None: the server's `max_retries` alone.
        options: the peer options (timeouts) of every request of the route.
        request_edits: edits of the request that goes upstream; None: none.
        response_edits: edits of the upstream's response; None: none.
        compression: the route's response compression; None: off.
        limiter: the route's rate limit; None: none.
        cache: the route's HTTP cache; None: none.
        cache_header: the response header that says what the cache did; None: none.
    """

    index: int
    upstream: str
    lb: LoadBalancer
    hash_by_path: bool
    retries: int | None
    options: PeerOptions
    request_edits: HeaderEdits | None
    response_edits: HeaderEdits | None
    compression: CompressionConf | None = None
    #: The route in logs: `routes[<index>]`.
    label: str = ""
    limiter: RouteLimiter | None = None
    cache: ResponseCache | None = None
    cache_header: str | None = None
    # Each backend's address parsed once: a request's peer is a copy of its backend's (`peer`).
    _peers: dict[Backend, HttpPeer] = attrs.field(factory=dict, init=False, repr=False)

    @classmethod
    def build(
        cls,
        index: int,
        route: RouteConf,
        upstream: UpstreamConf,
        lb: LoadBalancer,
        limiter: RouteLimiter | None = None,
        *,
        cache: ResponseCache | None = None,
    ) -> RoutePlan:
        """The plan of `route` (at `index`), sending to `lb`, the cluster `upstream` describes, limited by
        `limiter`, cached in `cache`."""
        return cls(
            index=index,
            upstream=route.upstream,
            lb=lb,
            hash_by_path=upstream.algorithm in HASHING_ALGORITHMS,
            retries=route.retries,
            options=_peer_options(route),
            request_edits=HeaderEdits.from_conf(route.request_headers) or None,
            response_edits=HeaderEdits.from_conf(route.response_headers) or None,
            compression=route.compression,
            label=f"routes[{index}]",
            limiter=limiter,
            cache=cache,
            cache_header=None if cache is None or route.cache is None else route.cache.header,
        )

    def peer(self, backend: Backend) -> HttpPeer:
        """The peer of one request to `backend`, with the route's options: a new object every time."""
        peers = self._peers
        known = peers.get(backend)
        if known is None:
            if len(peers) >= PEER_CACHE_SIZE:
                peers.clear()
            known = peers[backend] = HttpPeer(backend.addr, tls=False, sni="", options=self.options)
        return known.with_options(self.options)

    def retry_allowed(self, attempts: int) -> bool:
        """Whether a request that made `attempts` attempts may make another, by this route's bound."""
        return self.retries is None or attempts <= self.retries


@attrs.frozen(eq=False)
class Routing:
    """A service's routes bound to the clusters they send to: the snapshot the app reads per request.

    Attributes:
        table: the service's routes, each leading to its plan.
        generation: 0 when built at start, then one more per reload that changed it.
    """

    table: RouteTable[RoutePlan]
    generation: int = 0

    @classmethod
    def build(
        cls,
        routes: tuple[RouteConf, ...],
        upstreams: Mapping[str, UpstreamConf],
        lbs: Mapping[str, LoadBalancer],
        *,
        generation: int = 0,
        limiter: Callable[[int, RouteConf], RouteLimiter | None] | None = None,
        cache: Callable[[int, RouteConf], ResponseCache | None] | None = None,
    ) -> Routing:
        """Bind `routes` to the load balancers `lbs` of the clusters `upstreams` (both by cluster name),
        each limited by `limiter(index, route)` and cached in `cache(index, route)` if given.

        Raises:
            KeyError: a route names a cluster missing from `upstreams` or `lbs`.
        """

        def plan(index: int, route: RouteConf) -> RoutePlan:
            limit = limiter(index, route) if limiter is not None else None
            cached = cache(index, route) if cache is not None else None
            return RoutePlan.build(
                index, route, upstreams[route.upstream], lbs[route.upstream], limit, cache=cached
            )

        return cls(RouteTable.from_routes(routes, plan), generation)

    def load_balancers(self) -> set[LoadBalancer]:
        """The load balancers the routes send to."""
        return {plan.lb for plan in self.table.targets()}

    def limiters(self) -> list[RouteLimiter]:
        """The rate limiters of the routes that have one, in route order."""
        return [plan.limiter for plan in self.table.targets() if plan.limiter is not None]

    def caches(self) -> list[ResponseCache]:
        """The HTTP caches of the routes that have one, in route order."""
        return [plan.cache for plan in self.table.targets() if plan.cache is not None]


class DeclaredRequest:
    """The ctx of one request: its route, and the backends it tried."""

    __slots__ = ("route", "tried", "unavailable")

    def __init__(self) -> None:
        #: The route the request matched; None until `request_filter` found one.
        self.route: RoutePlan | None = None
        #: The backends of the attempts made so far, in order.
        self.tried: list[Backend] = []
        #: The error `upstream_peer` raised for a cluster without a ready backend.
        self.unavailable: Error | None = None

    def __repr__(self) -> str:
        route = None if self.route is None else self.route.index
        return f"<DeclaredRequest route={route} tried={[str(b) for b in self.tried]}>"


def _compress(session: Session, conf: CompressionConf) -> None:
    compression = session.downstream_compression
    for coding, level in (("gzip", conf.gzip), ("br", conf.br), ("zstd", conf.zstd)):
        compression.adjust_algorithm_level(coding, level)
    compression.adjust_decompression(conf.decompress)
    compression.adjust_preserve_etag(conf.preserve_etag)
    compression.min_size = conf.min_size
    compression.content_types = conf.content_types


async def respond_text(
    session: Session, status: int, text: str, headers: Iterable[tuple[str, str]] = ()
) -> None:
    """Answer with `status`, `headers` and a short plain-text body (no-op if a response already started)."""
    await session.respond_text(status, text, headers)


class DeclaredProxy(ProxyHttp):
    """Routes each request by the service's declared routes to a backend of the route's cluster.

    Args:
        routing: the routes; replace the attribute whole to change them (a reload does).
        name: the service's name, for logs.
    """

    retry_idempotent_on_fresh_connection = True

    def __init__(self, routing: Routing, *, name: str = "proxy") -> None:
        self.routing = routing
        self.name = name

    @property
    def routing(self) -> Routing:
        """The routes; replace it whole to change them (a reload does)."""
        return self._routing

    @routing.setter
    def routing(self, routing: Routing) -> None:
        self._routing = routing
        self.cache_phases = bool(routing.caches())

    def __repr__(self) -> str:
        routing = self.routing
        return f"<DeclaredProxy {self.name} routes={len(routing.table)} generation={routing.generation}>"

    def new_ctx(self) -> DeclaredRequest:
        return DeclaredRequest()

    def response_caches(self) -> list[ResponseCache]:
        """The HTTP caches of the current routing's routes (what the admin API purges)."""
        return self.routing.caches()

    def limit_statistics(self) -> list[LimitStatistics]:
        """What each rate-limited route of the current routing decided, in this process (for metrics)."""
        return [limiter.statistics() for limiter in self.routing.limiters()]

    async def request_filter(self, session: Session, ctx: DeclaredRequest) -> bool:
        route = self.routing.table.match(session.req_header)
        if route is None:
            await respond_text(session, 404, NO_ROUTE_BODY)
            return True
        ctx.route = route
        session.route = route.label
        limiter = route.limiter
        if limiter is not None and not await limiter.admit(session):
            return True
        if route.compression is not None:
            _compress(session, route.compression)
        return False

    def request_cache_filter(self, session: Session, ctx: DeclaredRequest) -> None:
        route = ctx.route
        if route is not None and route.cache is not None:
            session.cache.enable(route.cache)

    async def upstream_peer(self, session: Session, ctx: DeclaredRequest) -> HttpPeer:
        route = ctx.route
        assert route is not None  # request_filter answered the requests without one
        key = session.req_header.path.encode("latin-1", "replace") if route.hash_by_path else b""
        lb = route.lb
        tried = ctx.tried
        backend = None
        if tried:
            backend = lb.select_with(key, MAX_ITERATIONS, lambda b, ready: ready and b not in tried)
        if backend is None:
            backend = lb.select(key, MAX_ITERATIONS)
        if backend is None:
            error = Error.explain(
                ErrorType.http_status(503),
                f"no ready backend in upstream {route.upstream!r}",
                ErrorSource.INTERNAL,
            )
            ctx.unavailable = error
            raise error
        tried.append(backend)
        return route.peer(backend)

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: DeclaredRequest, e: Error) -> Error:
        route = ctx.route
        # Nothing was sent upstream: another backend may take the request, if one is left to try.
        retry = route is not None and route.retry_allowed(len(ctx.tried))
        if retry and route is not None:
            retry = not route.lb.ready_backends().issubset(ctx.tried)
        e.set_retry(retry)
        return e

    def error_while_proxy(
        self, peer: HttpPeer, session: Session, e: Error, ctx: DeclaredRequest, client_reused: bool
    ) -> Error:
        e = super().error_while_proxy(peer, session, e, ctx, client_reused)
        route = ctx.route
        if route is not None and not route.retry_allowed(len(ctx.tried)):
            e.set_retry(False)
        return e

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: DeclaredRequest
    ) -> None:
        route = ctx.route
        if route is not None and route.request_edits is not None:
            route.request_edits.apply(upstream_request)

    async def response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: DeclaredRequest
    ) -> None:
        route = ctx.route
        if route is None:
            return
        if route.response_edits is not None:
            route.response_edits.apply(upstream_response)
        if route.cache_header is not None and session.cache_status is not None:
            upstream_response.insert_header(route.cache_header, session.cache_status)

    async def fail_to_proxy(self, session: Session, e: Error, ctx: Any) -> int:
        if isinstance(ctx, DeclaredRequest) and e is ctx.unavailable:
            await respond_text(session, 503, f"{e.context}\n")
            return 503
        return await super().fail_to_proxy(session, e, ctx)
