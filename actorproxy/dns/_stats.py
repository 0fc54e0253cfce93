"""What the DNS server has seen: counters kept by the server, a frozen snapshot for readers."""

from __future__ import annotations

import attrs

__all__ = ["DnsCounters", "DnsStatistics"]


@attrs.define
class DnsCounters:
    """Plain integers, changed on the trio thread only; `DnsService.statistics()` copies them."""

    received: int = 0  # packets and TCP messages
    malformed: int = 0  # dropped: not a DNS query
    queries: int = 0
    answered: int = 0  # answers sent (or handed to the transport)
    local: int = 0  # queries for the local zones
    refused: int = 0  # not allowed to forward, or nowhere to forward to
    forwarded: int = 0  # sent upstream (cache misses)
    cache_hits: int = 0
    upstream_timeouts: int = 0
    upstream_failovers: int = 0  # an answer came from a server after the first one tried
    upstream_failures: int = 0  # no upstream answered: SERVFAIL
    overloaded: int = 0  # too many forwarded queries in flight: SERVFAIL
    rate_limited: int = 0  # answers dropped or replaced by an empty truncated one
    truncated: int = 0  # UDP answers cut, with TC set
    tcp_connections: int = 0


@attrs.frozen(kw_only=True)
class DnsStatistics:
    """A snapshot of a DNS service: where it listens and its counters."""

    address: tuple[str, int] | None
    cache_entries: int
    counters: DnsCounters
