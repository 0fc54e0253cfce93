"""actorproxy: a programmable HTTP reverse proxy and load balancer on a tree of supervised trio actors.

This is the public face, shaped as Pingora's so its guide ports line for line: the phases (`ProxyHttp`,
`Session`), peers, errors, the `Server` and its services, load balancing and health checks. The layers under
it are public too: `actors` (the kernel), `supervisors` (OTP supervision), and this package's subpackages
(`http`, `proxy`, `lb`, `config`, `server`, `declared`, `testing`); docs/architecture.md draws them.
"""

from actors import (
    Actor,
    ActorContext,
    ActorProxyError,
    ActorRef,
    ActorSystem,
    ExitReason,
    open_actor_system,
)

from .config import ConfigError, Forwarding, HttpLimits, ProxySettings, ServerConf, load_conf
from .declared import DeclaredProxy, DeclaredProxyHandle, build_proxy
from .http import (
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    RequestHeader,
    ResponseHeader,
    RetryType,
)
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
from .proxy import (
    ALPN,
    BodyChunk,
    Cacheable,
    ForcedFreshness,
    HttpPeer,
    HttpProxyService,
    PeerOptions,
    ProxyHttp,
    ResponseCache,
    Session,
    TcpKeepalive,
    Uncacheable,
    http_proxy_service,
)
from .server import Server, ServiceHandle, background_service

__all__ = [
    "ALPN",
    "Actor",
    "ActorContext",
    "ActorProxyError",
    "ActorRef",
    "ActorSystem",
    "Backend",
    "Backends",
    "BodyChunk",
    "Cacheable",
    "ConfigError",
    "Consistent",
    "DeclaredProxy",
    "DeclaredProxyHandle",
    "DnsDiscovery",
    "Error",
    "ErrorSource",
    "ErrorType",
    "ExitReason",
    "FNVHash",
    "FileDiscovery",
    "ForcedFreshness",
    "Forwarding",
    "Headers",
    "HttpHealthCheck",
    "HttpLimits",
    "HttpPeer",
    "HttpProxyService",
    "LeastConnections",
    "LoadBalancer",
    "OutlierDetection",
    "PeerOptions",
    "PowerOfTwoChoices",
    "ProxyHttp",
    "ProxySettings",
    "Random",
    "RequestHeader",
    "ResponseCache",
    "ResponseHeader",
    "RetryType",
    "RoundRobin",
    "Server",
    "ServerConf",
    "ServiceHandle",
    "Session",
    "Static",
    "TcpHealthCheck",
    "TcpKeepalive",
    "Uncacheable",
    "background_service",
    "build_proxy",
    "http_proxy_service",
    "load_conf",
    "open_actor_system",
]

__version__ = "0.1.0"
