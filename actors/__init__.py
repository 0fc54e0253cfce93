"""The proxy's actors: listeners, connections, peer pools and services.

This layer sits on top of the kernel (`actorproxy`) and of `supervisors`.
"""

from ._connection import DEFAULT_KEEPALIVE_TIMEOUT, ConnectionActor
from ._connector import connect_peer, tls_context
from ._engine import DEFAULT_MAX_RETRIES, ProxyCounters, ProxyRuntime, serve_request
from ._listener import Endpoint, ListenerActor
from ._pool import (
    DEFAULT_POOL_SIZE,
    ConnectionPool,
    GetPoolStatistics,
    PeerPoolActor,
    PooledConnection,
    PoolStatistics,
    get_pool_statistics,
)
from ._service import HttpProxyService, http_proxy_service
from .lb import (
    Backend,
    Consistent,
    FNVHash,
    HttpHealthCheck,
    LoadBalancer,
    Random,
    RoundRobin,
    TcpHealthCheck,
    background_service,
)

__all__ = [
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POOL_SIZE",
    "Backend",
    "ConnectionActor",
    "ConnectionPool",
    "Consistent",
    "Endpoint",
    "FNVHash",
    "GetPoolStatistics",
    "HttpHealthCheck",
    "HttpProxyService",
    "ListenerActor",
    "LoadBalancer",
    "PeerPoolActor",
    "PoolStatistics",
    "PooledConnection",
    "ProxyCounters",
    "ProxyRuntime",
    "Random",
    "RoundRobin",
    "TcpHealthCheck",
    "background_service",
    "connect_peer",
    "get_pool_statistics",
    "http_proxy_service",
    "serve_request",
    "tls_context",
]
