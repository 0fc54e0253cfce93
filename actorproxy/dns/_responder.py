"""`DnsResponder`: what the DNS server does with one packet, without touching a socket.

Rules:
- A packet that does not parse as a DNS message, or that is a response (QR set), is dropped and counted as
  malformed: answering garbage would make the server a reflector. A query whose header parses but that
  asks other than one question gets FORMERR; an opcode other than QUERY gets NOTIMP; an EDNS version above
  0 gets BADVERS (RFC 6891 section 6.1.3); a class other than IN gets REFUSED.
- The answer keeps the query's id, question, RD and CD bits, sets QR and RA; an answer from a local zone is
  authoritative (AA). EDNS is answered with EDNS (our payload size, `EDNS_PAYLOAD`) when the query used it.
- Local zones (see `LocalNames`): a site name gets A (and AAAA when `address6` is set) with the configured
  TTL; ANY gets the A record set alone (RFC 8482: a minimal answer); other types, the apex and names with
  sites below them get NODATA; other names NXDOMAIN. Negative answers carry the zone's SOA (RFC 2308).
- Other names go upstream (`Forward`) for the clients allowed to forward (see `_ratelimit`), from the cache
  when it has the answer; without upstream servers, or for other clients, they are REFUSED.
- Over UDP an answer is cut to the client's payload size (512 without EDNS; RFC 6891 section 7), never more
  than `EDNS_PAYLOAD`, nor more than 512 bytes for a client that has not proved its address; a cut answer
  has TC set, so the client asks again over TCP. Over TCP it is whole, with its two-byte length prefix.
"""

from __future__ import annotations

import attrs
import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from actorproxy.config import DnsConf

from ._cache import CacheKey, DnsCache
from ._names import LocalNames, NameKind, normalize_name
from ._ratelimit import ClientPolicy, RateLimiter
from ._stats import DnsCounters

__all__ = ["EDNS_PAYLOAD", "DnsResponder", "Forward"]

#: The UDP payload size this server offers and asks for: the 2020 DNS flag day's value, which avoids IP
#: fragmentation on common paths.
EDNS_PAYLOAD = 1232
# RFC 1035 section 4.2.1: the UDP size a client without EDNS accepts.
CLASSIC_UDP_SIZE = 512
# RFC 1035 section 4.1.1: the header is 12 bytes; anything shorter cannot be a query.
HEADER_SIZE = 12
# The largest DNS message (RFC 1035 section 4.2.2: a two-byte length prefix over TCP).
MAX_MESSAGE_SIZE = 65535
# The SOA of a local zone: a refresh, retry, expire of no consequence (nothing transfers the zone).
_SOA_TIMERS = "1 3600 600 86400"


@attrs.frozen(eq=False)
class Forward:
    """A query to resolve upstream: the client's query, and what its answer is cached under."""

    query: dns.message.Message
    key: CacheKey
    tcp: bool


class DnsResponder:
    """Turns packets into answers (bytes), upstream work (`Forward`) or nothing (see the module rules).

    Args:
        conf: the server's section.
        names: the local zones and their sites.
        cache: the upstream answers kept.
        counters: what the server has seen.
    """

    def __init__(
        self, conf: DnsConf, names: LocalNames, cache: DnsCache, counters: DnsCounters | None = None
    ) -> None:
        self.conf = conf
        self.names = names
        self.cache = cache
        self.counters = counters if counters is not None else DnsCounters()
        self.clients = ClientPolicy(conf.allow)
        self.limiter = RateLimiter(conf.rate_limit)
        self._forwarding = bool(conf.upstream)

    # -- the packet --------------------------------------------------------------------------------------

    def handle(self, wire: bytes, client: str, *, tcp: bool) -> bytes | Forward | None:
        """The answer to `wire` from `client` (bytes, ready to send), a `Forward`, or None (drop it)."""
        counters = self.counters
        counters.received += 1
        query = self._parse(wire)
        if query is None:
            counters.malformed += 1
            return None
        counters.queries += 1
        if len(query.question) != 1:
            return self._error(query, dns.rcode.FORMERR, client, tcp=tcp)
        if query.opcode() != dns.opcode.QUERY:
            return self._error(query, dns.rcode.NOTIMP, client, tcp=tcp)
        if query.edns > 0:
            return self._error(query, dns.rcode.BADVERS, client, tcp=tcp)
        question = query.question[0]
        if question.rdclass != dns.rdataclass.IN:
            return self._error(query, dns.rcode.REFUSED, client, tcp=tcp)
        name = normalize_name(question.name.to_text())
        zone = self.names.zone_of(name)
        if zone is not None:
            counters.local += 1
            return self.encode(self._local(query, name, zone), query, client, tcp=tcp)
        if not self._forwarding or not self.clients.may_forward(client):
            counters.refused += 1
            return self._error(query, dns.rcode.REFUSED, client, tcp=tcp)
        key: CacheKey = (
            name,
            int(question.rdtype),
            int(question.rdclass),
            bool(query.ednsflags & dns.flags.DO),
        )
        cached = self.cache.get(key)
        if cached is not None:
            counters.cache_hits += 1
            return self.encode(self.relay(query, cached), query, client, tcp=tcp)
        counters.forwarded += 1
        return Forward(query, key, tcp)

    def _parse(self, wire: bytes) -> dns.message.Message | None:
        if len(wire) < HEADER_SIZE:
            return None
        try:
            message = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None
        except (ValueError, UnicodeError, IndexError):
            # Hostile bytes can reach corners of the parser that raise plain errors; still just garbage.
            return None
        if message.flags & dns.flags.QR:
            return None
        return message

    # -- answers -----------------------------------------------------------------------------------------

    def _response(self, query: dns.message.Message, rcode: dns.rcode.Rcode) -> dns.message.Message:
        response = dns.message.make_response(query, recursion_available=True, our_payload=EDNS_PAYLOAD)
        response.set_rcode(rcode)
        return response

    def _error(
        self, query: dns.message.Message, rcode: dns.rcode.Rcode, client: str, *, tcp: bool
    ) -> bytes | None:
        return self.encode(self._response(query, rcode), query, client, tcp=tcp)

    def _local(self, query: dns.message.Message, name: str, zone: str) -> dns.message.Message:
        question = query.question[0]
        kind = self.names.kind(name)
        response = self._response(query, dns.rcode.NOERROR)
        response.flags |= dns.flags.AA
        owner = question.name
        rdtype = question.rdtype
        if kind is NameKind.MISSING:
            response.set_rcode(dns.rcode.NXDOMAIN)
        elif kind is NameKind.SITE and rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
            response.answer.append(self._rrset(owner, dns.rdatatype.A, self.conf.address))
        elif kind is NameKind.SITE and rdtype == dns.rdatatype.AAAA and self.conf.address6 is not None:
            response.answer.append(self._rrset(owner, dns.rdatatype.AAAA, self.conf.address6))
        elif name == zone and rdtype == dns.rdatatype.SOA:
            response.answer.append(self._soa(zone))
        if not response.answer:
            response.authority.append(self._soa(zone))
        return response

    def _rrset(self, owner: dns.name.Name, rdtype: dns.rdatatype.RdataType, address: str) -> dns.rrset.RRset:
        return dns.rrset.from_text(owner, self.conf.ttl, dns.rdataclass.IN, rdtype, address)

    def _soa(self, zone: str) -> dns.rrset.RRset:
        origin = dns.name.from_text(zone)
        text = f"localhost. hostmaster.{zone}. {_SOA_TIMERS} {self.conf.ttl}"
        return dns.rrset.from_text(origin, self.conf.ttl, dns.rdataclass.IN, dns.rdatatype.SOA, text)

    def relay(self, query: dns.message.Message, upstream: dns.message.Message | None) -> dns.message.Message:
        """The client's answer made of an upstream answer (None: every upstream failed, SERVFAIL)."""
        if upstream is None:
            return self._response(query, dns.rcode.SERVFAIL)
        response = self._response(query, upstream.rcode())
        response.flags |= upstream.flags & dns.flags.AD
        response.answer = list(upstream.answer)
        response.authority = list(upstream.authority)
        response.additional = list(upstream.additional)
        return response

    def encode(
        self, response: dns.message.Message, query: dns.message.Message, client: str, *, tcp: bool
    ) -> bytes | None:
        """`response` as it goes on the wire to `client` (see the module rules); None: drop it (rate)."""
        counters = self.counters
        if tcp:
            counters.answered += 1
            return response.to_wire(max_size=MAX_MESSAGE_SIZE, prepend_length=True)
        admitted = self.limiter.admit(client)
        if admitted is False:
            counters.rate_limited += 1
            return None
        size = CLASSIC_UDP_SIZE
        if query.edns >= 0:
            size = min(max(query.payload, CLASSIC_UDP_SIZE), EDNS_PAYLOAD)
        cap = self.clients.udp_size_limit(client)
        if cap is not None:
            size = min(size, cap)
        if admitted is None:
            counters.rate_limited += 1
            response = self._response(query, dns.rcode.NOERROR)
            response.flags |= dns.flags.TC
        wire = response.to_wire(max_size=size, prefer_truncation=True)
        if wire[2] & 0x02:  # the TC bit of the header's flags (RFC 1035 section 4.1.1)
            counters.truncated += 1
        counters.answered += 1
        return wire

    def remember(self, forward: Forward, upstream: dns.message.Message) -> None:
        """Cache an upstream answer under its query (when the cache rules allow)."""
        self.cache.put(forward.key, upstream)
