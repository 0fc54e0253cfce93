"""The proxy: Pingora's phases (`ProxyHttp`, `Session`), peers, and the actors that serve them: listeners,
connections, the upstream pool and connector, and the service that supervises them."""

from ._connection import DRAIN_LINGER, LINGER_TIMEOUT, ConnectionActor
from ._connector import connect_peer, tls_context
from ._engine import PeerDefaults, ProxyCounters, ProxyRuntime, serve_request
from ._exchange import Exchange
from ._feedback import Outcome, Tracker, note_pick
from ._histogram import LATENCY_BOUNDS, Histogram
from ._listener import Endpoint, ListenerActor
from ._listenfds import ListenFds, endpoint_key
from ._peer import (
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
from ._service import HttpProxyService, http_proxy_service
from ._session import RETRY_BUFFER_SIZE, Session

__all__ = [
    "DRAIN_LINGER",
    "IDEMPOTENT_METHODS",
    "LATENCY_BOUNDS",
    "LINGER_TIMEOUT",
    "RETRY_BUFFER_SIZE",
    "Address",
    "BodyChunk",
    "ConnectionActor",
    "ConnectionPool",
    "Endpoint",
    "Exchange",
    "GetPoolStatistics",
    "Histogram",
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
    "Session",
    "TcpKeepalive",
    "Tracker",
    "connect_peer",
    "endpoint_key",
    "get_pool_statistics",
    "http_proxy_service",
    "note_pick",
    "parse_address",
    "serve_request",
    "tls_context",
]
