"""`DnsCache`: upstream answers kept for their TTL, the least recently used dropped first.

Rules:
- Only NOERROR and NXDOMAIN answers that were not truncated are kept. A positive answer is kept for the
  smallest TTL of its records; a negative one (NXDOMAIN, or NOERROR with no answer) for the smaller of its
  SOA record's TTL and SOA minimum (RFC 2308 section 5); a negative answer without a SOA is not kept.
  Every time is capped at `max_ttl`.
- A cached answer is handed out with its TTLs lowered by the time it spent in the cache (RFC 1035 section
  7.3: a resolver never gives out a TTL longer than what is left).
- Time is trio's clock, so tests run on virtual time.
"""

from __future__ import annotations

from collections import OrderedDict

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import trio

__all__ = ["CacheKey", "DnsCache"]

#: (name, type, class, DNSSEC OK): an answer for a client that asked for signatures differs.
CacheKey = tuple[str, int, int, bool]


def _time_to_keep(response: dns.message.Message) -> int | None:
    rcode = response.rcode()
    if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    if rcode == dns.rcode.NOERROR and response.answer:
        return min(rrset.ttl for rrset in response.answer)
    for rrset in response.authority:
        if rrset.rdtype == dns.rdatatype.SOA:
            minimum: int = min(rrset.ttl, *(rdata.minimum for rdata in rrset))
            return minimum
    return None


class DnsCache:
    """Answers by query, each until its TTL runs out (see the module rules).

    Args:
        size: the most answers kept; 0 keeps none.
        max_ttl: the longest an answer is kept, seconds.
    """

    __slots__ = ("_entries", "hits", "max_ttl", "misses", "size")

    def __init__(self, size: int, max_ttl: float) -> None:
        self.size = size
        self.max_ttl = max_ttl
        self._entries: OrderedDict[CacheKey, tuple[bytes, float, float]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: CacheKey) -> dns.message.Message | None:
        """The cached answer to `key` with its TTLs lowered, or None (expired entries are dropped)."""
        entry = self._entries.get(key)
        now = trio.current_time()
        if entry is None or entry[2] <= now:
            if entry is not None:
                del self._entries[key]
            self.misses += 1
            return None
        wire, stored, _ = entry
        self._entries.move_to_end(key)
        self.hits += 1
        message = dns.message.from_wire(wire)
        spent = int(now - stored)
        for section in (message.answer, message.authority, message.additional):
            for rrset in section:
                rrset.ttl = max(rrset.ttl - spent, 0)
        return message

    def put(self, key: CacheKey, response: dns.message.Message) -> bool:
        """Keep `response` for `key` if the rules allow; True when it was kept."""
        if self.size <= 0 or response.flags & dns.flags.TC:
            return False
        ttl = _time_to_keep(response)
        if ttl is None or ttl <= 0:
            return False
        now = trio.current_time()
        self._entries[key] = (response.to_wire(), now, now + min(ttl, self.max_ttl))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)
        return True
