"""The proxy: Pingora's phases (`ProxyHttp`, `Session`), peers, and the actors that serve them: listeners,
connections, the upstream pool and connector, and the service that supervises them; the HTTP cache's
phases on the request path (`ResponseCache`, `session.cache`)."""

from ._cache import proxy_cache
from ._cacheupstream import CacheExchange, CachePhases, TakeOver
from ._connection import DRAIN_LINGER, LINGER_TIMEOUT, ConnectionActor
from ._connector import connect_peer, tls_context
from ._engine import PeerDefaults, ProxyCounters, ProxyRuntime, serve_request
from ._exchange import Exchange
from ._feedback import Outcome, Tracker, note_pick
from ._histogram import LATENCY_BOUNDS, Histogram
from ._hottier import HotEntry, HotTier
from ._httpcache import (
    X_CACHE,
    Cacheable,
    CachePhase,
    ForcedFreshness,
    HttpCache,
    RespCacheable,
    Uncacheable,
    UpstreamMode,
)
from ._listener import Endpoint, ListenerActor
from ._listenfds import ListenFds, endpoint_key
from ._peer import (
    ALPN,
    Address,
    HttpPeer,
    PeerOptions,
    TcpKeepalive,
    parse_address,
)
from ._phases import IDEMPOTENT_METHODS, BodyChunk, ProxyHttp
from ._pool import (
    ConnectionPool,
    GetPoolStatistics,
    PeerPoolActor,
    PooledConnection,
    PoolStatistics,
    get_pool_statistics,
)
from ._responsecache import (
    DEFAULT_KEEP_STALE,
    DEFAULT_MEMORY_SIZE,
    DEFAULT_NAMESPACE,
    PURGE_TOKEN_HEADER,
    Fill,
    Found,
    ResponseCache,
)
from ._service import HttpProxyService, http_proxy_service
from ._session import RETRY_BUFFER_SIZE, Session

__all__ = [
    "ALPN",
    "DEFAULT_KEEP_STALE",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_NAMESPACE",
    "DRAIN_LINGER",
    "IDEMPOTENT_METHODS",
    "LATENCY_BOUNDS",
    "LINGER_TIMEOUT",
    "PURGE_TOKEN_HEADER",
    "RETRY_BUFFER_SIZE",
    "X_CACHE",
    "Address",
    "BodyChunk",
    "CacheExchange",
    "CachePhase",
    "CachePhases",
    "Cacheable",
    "ConnectionActor",
    "ConnectionPool",
    "Endpoint",
    "Exchange",
    "Fill",
    "ForcedFreshness",
    "Found",
    "GetPoolStatistics",
    "Histogram",
    "HotEntry",
    "HotTier",
    "HttpCache",
    "HttpPeer",
    "HttpProxyService",
    "ListenFds",
    "ListenerActor",
    "Outcome",
    "PeerDefaults",
    "PeerOptions",
    "PeerPoolActor",
    "PoolStatistics",
    "PooledConnection",
    "ProxyCounters",
    "ProxyHttp",
    "ProxyRuntime",
    "RespCacheable",
    "ResponseCache",
    "Session",
    "TakeOver",
    "TcpKeepalive",
    "Tracker",
    "Uncacheable",
    "UpstreamMode",
    "connect_peer",
    "endpoint_key",
    "get_pool_statistics",
    "http_proxy_service",
    "note_pick",
    "parse_address",
    "proxy_cache",
    "serve_request",
    "tls_context",
]
