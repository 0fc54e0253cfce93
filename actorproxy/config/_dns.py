"""`DnsConf`: the local DNS server of the virtual server (`dns:`), answering for the sites' zones.

Names under `zones` are answered from the sites table (A `address`, AAAA `address6`); every other name is
forwarded to `upstream`, first server first, the next one when it does not answer in `query_timeout`.
"""

from __future__ import annotations

import ipaddress
import re

import attrs

from ._address import parse_ip, parse_ip_port
from ._checks import at_least, doc, each, parsed_by
from ._rules import LISTEN_ADDRESS, POSITIVE

__all__ = ["DnsConf"]

# RFC 1035 section 4.2: DNS servers listen on port 53.
DNS_PORT = 53
# A zone is one or more DNS labels (RFC 1035 section 2.3.1, letters, digits and hyphens; '_' is tolerated).
_LABEL = r"[A-Za-z0-9_]([A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_ZONE = re.compile(rf"{_LABEL}(\.{_LABEL})*")
# A cache entry is one query's answer; a thousand covers a developer's browsing with room to spare.
DEFAULT_DNS_CACHE_SIZE = 1024
# An hour: the longest an upstream answer is kept, whatever its TTL (as resolvers' max-cache-ttl does).
DEFAULT_DNS_MAX_CACHE_TTL = 3600.0
# Local answers change when a site is added or removed: a short TTL makes the change visible quickly.
DEFAULT_DNS_LOCAL_TTL = 5
# Seconds one upstream server gets before the next is tried (glibc's resolver waits 5; less will do).
DEFAULT_DNS_UPSTREAM_TIMEOUT = 2.0
# Responses per second to one client network (BIND's responses-per-second examples use 5-20 for public
# servers; a developer's own machine gets more). Loopback clients are not limited.
DEFAULT_DNS_RATE_LIMIT = 50
# Forwarded queries waiting for an upstream answer at once; more are answered SERVFAIL.
DEFAULT_DNS_MAX_INFLIGHT = 256


def _zone(value: str) -> None:
    if not _ZONE.fullmatch(value.rstrip(".")):
        raise ValueError(f"expected a DNS zone such as 'test', got {value!r}")


def _nameserver(value: str) -> None:
    parse_ip_port(value, DNS_PORT)


def _network(value: str) -> None:
    try:
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(f"expected an IP network such as 10.0.0.0/8, got {value!r}") from None


@attrs.frozen(kw_only=True)
class DnsConf:
    """The local DNS server: where it listens, the zones it answers, where other names go."""

    listen: str = attrs.field(
        default="127.0.0.1:5353",
        validator=LISTEN_ADDRESS,
        metadata=doc("host:port for UDP and TCP; port 53 needs privileges (see docs/virtual-server.md)."),
    )
    zones: tuple[str, ...] = attrs.field(
        default=("test",),
        validator=each(parsed_by(_zone, "a DNS zone")),
        metadata=doc("Zones answered from the sites table; an unknown name in them is NXDOMAIN."),
    )
    upstream: tuple[str, ...] = attrs.field(
        default=(),
        validator=each(parsed_by(_nameserver, "ip or ip:port")),
        metadata=doc(
            "Resolvers other names are forwarded to, ip or ip:port, tried in order; empty: they are refused."
        ),
    )
    allow: tuple[str, ...] = attrs.field(
        default=(),
        validator=each(parsed_by(_network, "an IP network")),
        metadata=doc("Client networks (CIDR) besides loopback that may have names forwarded upstream."),
    )
    address: str = attrs.field(
        default="127.0.0.1",
        validator=parsed_by(lambda value: parse_ip(value, 4), "an IPv4 address", format="ipv4"),
        metadata=doc("The IPv4 address every site name resolves to (A)."),
    )
    address6: str | None = attrs.field(
        default="::1",
        validator=parsed_by(lambda value: parse_ip(value, 6), "an IPv6 address", format="ipv6"),
        metadata=doc("The IPv6 address every site name resolves to (AAAA); null: no AAAA answers."),
    )
    ttl: int = attrs.field(
        default=DEFAULT_DNS_LOCAL_TTL,
        validator=at_least(0),
        metadata=doc("TTL of the answers for site names, seconds."),
    )
    query_timeout: float = attrs.field(
        default=DEFAULT_DNS_UPSTREAM_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds one upstream resolver gets to answer before the next one is asked."),
    )
    cache_size: int = attrs.field(
        default=DEFAULT_DNS_CACHE_SIZE,
        validator=at_least(0),
        metadata=doc("Upstream answers kept (each for its TTL); 0: no cache."),
    )
    max_cache_ttl: float = attrs.field(
        default=DEFAULT_DNS_MAX_CACHE_TTL,
        validator=POSITIVE,
        metadata=doc("The longest an upstream answer is kept, seconds."),
    )
    rate_limit: int | None = attrs.field(
        default=DEFAULT_DNS_RATE_LIMIT,
        validator=at_least(1),
        metadata=doc(
            "Responses per second to one client network (/24, /56) beyond loopback; null: no limit."
        ),
    )
    max_inflight: int = attrs.field(
        default=DEFAULT_DNS_MAX_INFLIGHT,
        validator=at_least(1),
        metadata=doc("Forwarded queries waiting upstream at once; more are answered SERVFAIL."),
    )


attrs.resolve_types(DnsConf)
