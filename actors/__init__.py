"""The proxy's actors: listeners, connections, peer pools and services.

This layer sits on top of the kernel (`actorproxy`) and of `supervisors`.
"""

from ._background import background_service
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
from .declared import DeclaredProxy, DeclaredProxyHandle, build_proxy
from .lb import (
    Backend,
    Backends,
    Consistent,
    DnsDiscovery,
    FileDiscovery,
    FNVHash,
    HttpHealthCheck,
    LeastConnections,
    LoadBalancer,
    OutlierDetection,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    Static,
    TcpHealthCheck,
)

__all__ = [
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POOL_SIZE",
    "Backend",
    "Backends",
    "ConnectionActor",
    "ConnectionPool",
    "Consistent",
    "DeclaredProxy",
    "DeclaredProxyHandle",
    "DnsDiscovery",
    "Endpoint",
    "FNVHash",
    "FileDiscovery",
    "GetPoolStatistics",
    "HttpHealthCheck",
    "HttpProxyService",
    "LeastConnections",
    "ListenerActor",
    "LoadBalancer",
    "OutlierDetection",
    "PeerPoolActor",
    "PoolStatistics",
    "PooledConnection",
    "PowerOfTwoChoices",
    "ProxyCounters",
    "ProxyRuntime",
    "Random",
    "RoundRobin",
    "Static",
    "TcpHealthCheck",
    "background_service",
    "build_proxy",
    "connect_peer",
    "get_pool_statistics",
    "http_proxy_service",
    "serve_request",
    "tls_context",
]
