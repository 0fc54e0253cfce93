"""The local DNS server of the virtual server: answers the sites' zones (`*.test`) from the sites table and
forwards every other name to upstream resolvers, over UDP and TCP, as a supervised subtree; and the resolver
configuration that sends a platform's queries for those zones to it (`resolver_setup`).

    names = LocalNames(["test"], ["app.test", "*.app.test"])
    server.add_service(DnsService(conf.dns, names))    # names.publish([...]) changes the sites live

See docs/virtual-server.md.
"""

from ._actors import (
    DnsSocketsActor,
    DnsTcpConnectionActor,
    DnsTcpListenerActor,
    DnsUdpActor,
    ForwardActor,
    bind_dns_sockets,
)
from ._cache import CacheKey, DnsCache
from ._command import dns_command
from ._forward import DOWN_PERIOD, Exchange, Forwarder, exchange
from ._names import LocalNames, NameKind, normalize_name
from ._ratelimit import ClientPolicy, RateLimiter
from ._responder import EDNS_PAYLOAD, DnsResponder, Forward
from ._service import DnsRuntime, DnsService, dns_service
from ._setup import PLATFORMS, Platform, current_platform, resolver_setup
from ._stats import DnsCounters, DnsStatistics

__all__ = [
    "DOWN_PERIOD",
    "EDNS_PAYLOAD",
    "PLATFORMS",
    "CacheKey",
    "ClientPolicy",
    "DnsCache",
    "DnsCounters",
    "DnsResponder",
    "DnsRuntime",
    "DnsService",
    "DnsSocketsActor",
    "DnsStatistics",
    "DnsTcpConnectionActor",
    "DnsTcpListenerActor",
    "DnsUdpActor",
    "Exchange",
    "Forward",
    "ForwardActor",
    "Forwarder",
    "LocalNames",
    "NameKind",
    "Platform",
    "RateLimiter",
    "bind_dns_sockets",
    "current_platform",
    "dns_command",
    "dns_service",
    "exchange",
    "normalize_name",
    "resolver_setup",
]
