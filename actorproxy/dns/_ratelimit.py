"""Who may be answered how: loopback and allowed networks, response rate limiting, verified sources.

A DNS answer over UDP goes to whatever source address the query claims, so a server that answers anyone
can be aimed at a victim (reflection) and made to send more than it receives (amplification). The rules:
- Forwarding (recursion) is for loopback clients and the networks in `allow` only; everyone else may ask
  about the local zones and nothing else (REFUSED), so the server is never an open resolver.
- Responses to one client network (a /24 for IPv4, a /56 for IPv6, BIND's rate-limit prefixes) are limited to
  `rate` per second by a token bucket. Over the limit, every second response is replaced by an empty
  truncated one (TC, BIND's "slip 2": a real client retries over TCP, a reflected flood gains nothing) and
  the others are dropped. Loopback clients are never limited: a packet claiming a loopback source cannot
  arrive from the network.
- A UDP answer to a source that has not proved its address is at most 512 bytes (RFC 1035's size, no larger
  than most queries that could be spoofed). Loopback proves itself; any other address proves itself by
  completing a TCP connection, and stays proved for `VERIFIED_PERIOD` seconds.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Iterable

import trio

__all__ = ["ClientPolicy", "RateLimiter"]

# BIND's response rate limiting groups clients by these prefixes.
IPV4_PREFIX = 24
IPV6_PREFIX = 56
# How long a TCP connection proves its source address for UDP answers (BIND keeps cookies' state as long).
VERIFIED_PERIOD = 300.0
# Client networks tracked at once; the least recently seen are forgotten first (bounded memory under a
# spoofed flood from many addresses).
MAX_TRACKED = 4096
# RFC 1035 section 4.2.1: the UDP answer size every client accepts.
UNVERIFIED_UDP_SIZE = 512


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientPolicy:
    """Which clients may have names forwarded, and which have proved their address.

    Args:
        allow: networks (CIDR) besides loopback allowed to use forwarding.
    """

    __slots__ = ("_verified", "allow")

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = tuple(ipaddress.ip_network(network, strict=False) for network in allow)
        self._verified: OrderedDict[str, float] = OrderedDict()

    def is_loopback(self, client: str) -> bool:
        address = _address(client)
        return address is not None and address.is_loopback

    def may_forward(self, client: str) -> bool:
        """Whether `client` may have names outside the local zones resolved upstream."""
        address = _address(client)
        if address is None:
            return False
        return address.is_loopback or any(address in network for network in self.allow)

    def verify(self, client: str) -> None:
        """`client` completed a TCP connection: its address is real."""
        self._verified[client] = trio.current_time() + VERIFIED_PERIOD
        self._verified.move_to_end(client)
        while len(self._verified) > MAX_TRACKED:
            self._verified.popitem(last=False)

    def udp_size_limit(self, client: str) -> int | None:
        """The largest UDP answer `client` may get regardless of what it asks for; None: no cap."""
        if self.is_loopback(client):
            return None
        until = self._verified.get(client)
        if until is not None and until > trio.current_time():
            return None
        return UNVERIFIED_UDP_SIZE


class RateLimiter:
    """A token bucket of `rate` responses per second (burst: one second's worth) per client network.

    Args:
        rate: responses per second; None: no limit.
    """

    __slots__ = ("_buckets", "_slip", "rate")

    def __init__(self, rate: int | None) -> None:
        self.rate = rate
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._slip = 0

    def _network(self, client: str) -> str | None:
        address = _address(client)
        if address is None or address.is_loopback:
            return None
        prefix = IPV4_PREFIX if address.version == 4 else IPV6_PREFIX
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))

    def admit(self, client: str) -> bool | None:
        """Take a token for a response to `client`: True (answer), None (send an empty TC answer instead),
        False (drop)."""
        if self.rate is None:
            return True
        network = self._network(client)
        if network is None:
            return True
        now = trio.current_time()
        tokens, last = self._buckets.get(network, (float(self.rate), now))
        tokens = min(float(self.rate), tokens + (now - last) * self.rate)
        admitted = tokens >= 1.0
        self._buckets[network] = (tokens - 1.0 if admitted else tokens, now)
        self._buckets.move_to_end(network)
        while len(self._buckets) > MAX_TRACKED:
            self._buckets.popitem(last=False)
        if admitted:
            return True
        self._slip ^= 1
        return None if self._slip else False
