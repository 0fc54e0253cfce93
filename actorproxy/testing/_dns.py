"""`DnsServer`: a small authoritative DNS server on loopback, for tests and examples of DNS discovery.

Rules:
- It answers from an in-memory zone that the program changes while it runs (`set_a`, `set_aaaa`, `set_srv`,
  `set_records`, `remove`). Each change replaces a whole record set, so a query sees the zone before or after
  a change, never half of it.
- Messages are parsed and built with dnspython's message API; nothing here writes DNS wire format by hand.
- It serves UDP and TCP on one port (a resolver retries a truncated UDP answer over TCP, RFC 7766). A UDP
  answer larger than the requester's payload size (512 bytes without EDNS) is truncated with TC set.
- Every answer is authoritative (AA). A name with no record of any type is NXDOMAIN; a name with records of
  other types only gets an empty NOERROR answer (NODATA). CNAMEs are followed inside the zone.
- When the zone holds A/AAAA records for the targets of an SRV answer, they go in the additional section
  (as RFC 2782 urges servers to do), unless `additional` is False.
- Each query is counted per (name, type) on receipt, answered or not (`query_count`), and `wait_for_query`
  waits for the next one: tests assert caching by counting queries, and wait for a re-resolution without
  sleeping.
- `fail(rcode)` makes the answers carry that error code and `drop()` makes the server answer nothing (a
  resolver times out), for one name or for all; `recover()` ends both.
- `serve` reports the bound port through `task_status.started()`; it runs until cancelled.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
from collections import Counter
from collections.abc import Iterable
from functools import partial

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
import trio
from dns.rdtypes.IN.SRV import SRV

__all__ = ["DEFAULT_DNS_TTL", "DnsServer", "SrvRecord"]

#: TTL of the records a test sets without giving one: long enough that a test sees caching, short enough
#: that waiting it out on the autojump clock costs nothing.
DEFAULT_DNS_TTL = 30
# The largest UDP answer to a query without EDNS (RFC 1035 4.2.1).
_UDP_MIN_SIZE = 512
# The largest DNS message over TCP (RFC 1035 4.2.2: a two-byte length prefix).
_TCP_MAX_SIZE = 65535
# CNAME chains longer than this are refused, as resolvers do (BIND stops at 16; 8 is plenty for tests).
_MAX_CNAME_CHAIN = 8
# Binding TCP on port 0 and then UDP on the same number fails only if that UDP port is taken: rare.
_BIND_ATTEMPTS = 20
_ADDRESS_TYPES = (dns.rdatatype.A, dns.rdatatype.AAAA)

_Key = tuple[dns.name.Name, dns.rdatatype.RdataType]


@attrs.frozen(kw_only=True)
class SrvRecord:
    """One SRV record's data (RFC 2782): `priority weight port target`.

    Args:
        target: the host name offering the service; `"."` means the service is not offered.
        port: the port of the service on `target`.
        priority: lower values are tried first.
        weight: the relative share among records of the same priority.
    """

    target: str
    port: int
    priority: int = 10
    weight: int = 1

    def to_text(self) -> str:
        target = self.target if self.target.endswith(".") else self.target + "."
        return f"{self.priority} {self.weight} {self.port} {target}"


class DnsServer:
    """An authoritative DNS server for tests, answering from a zone held in memory.

    Args:
        host: the address to listen on (loopback by default; an IPv6 literal listens over IPv6).

    Attributes:
        additional: put the A/AAAA records of SRV targets in the additional section of SRV answers.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"DnsServer host: {host!r} is not an IP address") from None
        self._host = host
        self._family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
        self._port: int | None = None
        self._zone: dict[dns.name.Name, dict[dns.rdatatype.RdataType, dns.rrset.RRset]] = {}
        self._queries: Counter[_Key] = Counter()
        self._waiters: list[tuple[dns.name.Name, dns.rdatatype.RdataType | None, trio.Event]] = []
        # What to do instead of answering, by query name (None: for every name); a None value drops.
        self._failures: dict[dns.name.Name | None, dns.rcode.Rcode | None] = {}
        self.additional = True

    # -- where it listens ------------------------------------------------------------------------------------

    @property
    def host(self) -> str:
        return self._host

    @property
    def port(self) -> int:
        """The bound port (UDP and TCP).

        Raises:
            RuntimeError: the server has not started yet.
        """
        if self._port is None:
            raise RuntimeError(
                "DnsServer: not listening yet; start it with `await nursery.start(server.serve)`"
            )
        return self._port

    # -- the zone --------------------------------------------------------------------------------------------

    def set_a(self, name: str, addresses: Iterable[str], *, ttl: int = DEFAULT_DNS_TTL) -> None:
        """Make `addresses` the A records of `name` (none: remove them)."""
        self.set_records(name, "A", addresses, ttl=ttl)

    def set_aaaa(self, name: str, addresses: Iterable[str], *, ttl: int = DEFAULT_DNS_TTL) -> None:
        """Make `addresses` the AAAA records of `name` (none: remove them)."""
        self.set_records(name, "AAAA", addresses, ttl=ttl)

    def set_srv(
        self,
        name: str,
        records: Iterable[SrvRecord | tuple[int, int, int, str]],
        *,
        ttl: int = DEFAULT_DNS_TTL,
    ) -> None:
        """Make `records` the SRV records of `name` (e.g. `_http._tcp.api.internal`; none: remove them).

        Args:
            name: the service name.
            records: `SrvRecord`s or `(priority, weight, port, target)` tuples.
            ttl: their TTL in seconds.
        """
        texts = []
        for entry in records:
            if isinstance(entry, SrvRecord):
                record = entry
            else:
                priority, weight, port, target = entry
                record = SrvRecord(priority=priority, weight=weight, port=port, target=target)
            texts.append(record.to_text())
        self.set_records(name, "SRV", texts, ttl=ttl)

    def set_records(
        self, name: str, rdtype: str, rdatas: Iterable[str], *, ttl: int = DEFAULT_DNS_TTL
    ) -> None:
        """Make `rdatas` (in zone file text, e.g. `"10 1 80 a.internal."`) the `rdtype` records of `name`.

        An empty `rdatas` removes the records of that type.

        Raises:
            ValueError: the name, the type, the TTL or a record is not valid; the message names it.
        """
        owner = _name(name)
        kind = _rdtype(rdtype)
        if type(ttl) is not int or not 0 <= ttl <= 0x7FFFFFFF:
            raise ValueError(f"ttl: must be an int in [0, 2**31 - 1] seconds (RFC 2181 8), got {ttl!r}")
        texts = list(rdatas)
        if not texts:
            self.remove(name, rdtype)
            return
        try:
            rrset = dns.rrset.from_text_list(owner, ttl, dns.rdataclass.IN, kind, texts)
        except dns.exception.DNSException as exc:
            raise ValueError(f"{name} {rdtype}: not valid record data {texts!r}: {exc}") from None
        # A new dict: a query being answered holds the old one, never a half-changed one.
        self._zone[owner] = {**self._zone.get(owner, {}), kind: rrset}

    def remove(self, name: str, rdtype: str | None = None) -> None:
        """Remove the `rdtype` records of `name`, or all (then `name` is NXDOMAIN); a no-op if absent."""
        owner = _name(name)
        if rdtype is None:
            self._zone.pop(owner, None)
            return
        kind = _rdtype(rdtype)
        rrsets = {key: rrset for key, rrset in self._zone.get(owner, {}).items() if key != kind}
        if rrsets:
            self._zone[owner] = rrsets
        else:
            self._zone.pop(owner, None)

    # -- failures --------------------------------------------------------------------------------------------

    def fail(self, rcode: str = "SERVFAIL", *, name: str | None = None) -> None:
        """Answer queries for `name` (None: every query) with `rcode` (e.g. `"REFUSED"`) until `recover`."""
        try:
            code = dns.rcode.from_text(rcode)
        except dns.rcode.UnknownRcode:
            raise ValueError(f"rcode: unknown DNS response code {rcode!r}") from None
        self._failures[_name(name) if name is not None else None] = code

    def drop(self, *, name: str | None = None) -> None:
        """Answer no query for `name` (None: no query at all) until `recover`: a resolver times out."""
        self._failures[_name(name) if name is not None else None] = None

    def recover(self) -> None:
        """Answer every query from the zone again."""
        self._failures = {}

    # -- what it was asked -----------------------------------------------------------------------------------

    def query_count(self, name: str, rdtype: str | None = None) -> int:
        """How many queries for `name` (of type `rdtype`, or of any type) arrived."""
        owner = _name(name)
        if rdtype is not None:
            return self._queries[(owner, _rdtype(rdtype))]
        return sum(count for (qname, _), count in self._queries.items() if qname == owner)

    @property
    def queries(self) -> int:
        """How many queries arrived in all."""
        return self._queries.total()

    async def wait_for_query(self, name: str, rdtype: str | None = None) -> None:
        """Wait for the next query for `name` (of type `rdtype`, or of any type) to be answered or dropped."""
        event = trio.Event()
        self._waiters.append((_name(name), _rdtype(rdtype) if rdtype is not None else None, event))
        await event.wait()

    # -- serving ---------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        """Serve DNS over UDP and TCP on `host`, a free port, until cancelled; reports the port when bound."""
        udp, listeners = await self._bind()
        with udp:
            self._port = udp.getsockname()[1]
            try:
                async with trio.open_nursery() as nursery:
                    await nursery.start(partial(trio.serve_listeners, self._serve_tcp, listeners))
                    task_status.started(self._port)
                    await self._serve_udp(udp)
            finally:
                self._port = None

    async def _bind(self) -> tuple[trio.socket.SocketType, list[trio.SocketListener]]:
        for _ in range(_BIND_ATTEMPTS):
            listeners = await trio.open_tcp_listeners(0, host=self._host)
            port = listeners[0].socket.getsockname()[1]
            udp = trio.socket.socket(self._family, socket.SOCK_DGRAM)
            try:
                await udp.bind((self._host, port))
            except OSError:
                udp.close()
                for listener in listeners:
                    await listener.aclose()
                continue
            return udp, listeners
        raise OSError(
            f"DnsServer: no port free for both UDP and TCP on {self._host} in {_BIND_ATTEMPTS} tries"
        )

    async def _serve_udp(self, udp: trio.socket.SocketType) -> None:
        while True:
            data, peer = await udp.recvfrom(_TCP_MAX_SIZE)
            handled = self._handle(data, tcp=False)
            if handled is None:
                continue
            key, reply = handled
            if reply is not None:
                # The client may have gone away (its port closed): then there is nobody left to answer.
                with contextlib.suppress(OSError):
                    await udp.sendto(reply, peer)
            self._notify(key)

    async def _serve_tcp(self, stream: trio.SocketStream) -> None:
        buffer = bytearray()
        try:
            async with stream:
                while True:
                    size = int.from_bytes(buffer[:2], "big") if len(buffer) >= 2 else None
                    if size is None or len(buffer) < 2 + size:
                        data = await stream.receive_some()
                        if not data:
                            return
                        buffer += data
                        continue
                    wire = bytes(buffer[2 : 2 + size])
                    del buffer[: 2 + size]
                    handled = self._handle(wire, tcp=True)
                    if handled is None:
                        return  # not a DNS query: close, as servers do on a garbled TCP stream
                    key, reply = handled
                    if reply is not None:
                        await stream.send_all(reply)
                    self._notify(key)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            # The resolver closed the connection, perhaps mid-answer: nothing more to serve it.
            return

    def _handle(self, wire: bytes, *, tcp: bool) -> tuple[_Key, bytes | None] | None:
        """Count the query in `wire` and build its answer; None when it is not a query to answer."""
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            return None  # garbage: a real server would drop it too
        if query.flags & dns.flags.QR or len(query.question) != 1:
            return None
        question = query.question[0]
        key = (question.name, question.rdtype)
        self._queries[key] += 1
        failures = self._failures
        failing = question.name if question.name in failures else None
        rcode: dns.rcode.Rcode | None = None
        if failing in failures:
            rcode = failures[failing]
            if rcode is None:
                return key, None
        response = self._respond(query, question.name, question.rdtype, question.rdclass, rcode)
        if tcp:
            max_size = _TCP_MAX_SIZE
        else:
            # RFC 6891 7: the requester's EDNS payload size, else the 512 bytes of RFC 1035 4.2.1.
            max_size = max(query.payload, _UDP_MIN_SIZE) if query.edns >= 0 else _UDP_MIN_SIZE
        reply = response.to_wire(max_size=max_size, prefer_truncation=True, prepend_length=tcp)
        return key, reply

    def _respond(
        self,
        query: dns.message.Message,
        qname: dns.name.Name,
        rdtype: dns.rdatatype.RdataType,
        rdclass: dns.rdataclass.RdataClass,
        rcode: dns.rcode.Rcode | None,
    ) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if rcode is not None:
            response.set_rcode(rcode)
            return response
        if query.opcode() != dns.opcode.QUERY:
            response.set_rcode(dns.rcode.NOTIMP)
            return response
        if rdclass != dns.rdataclass.IN:
            response.set_rcode(dns.rcode.REFUSED)
            return response
        zone = self._zone
        name = qname
        for _ in range(_MAX_CNAME_CHAIN):
            rrsets = zone.get(name)
            if rrsets is None:
                # RFC 6604: the rcode speaks of the last name of a CNAME chain.
                response.set_rcode(dns.rcode.NXDOMAIN)
                break
            rrset = rrsets.get(rdtype)
            if rrset is not None:
                response.answer.append(rrset)
                break
            cname = rrsets.get(dns.rdatatype.CNAME)
            if cname is None:
                break  # NODATA: the name exists, with other types only
            response.answer.append(cname)
            name = cname[0].target
        else:
            response.set_rcode(dns.rcode.SERVFAIL)
            return response
        if self.additional and rdtype == dns.rdatatype.SRV:
            targets = {
                rdata.target
                for rrset in response.answer
                if rrset.rdtype == dns.rdatatype.SRV
                for rdata in rrset
                if isinstance(rdata, SRV)
            }
            for target in sorted(targets):
                for address_type in _ADDRESS_TYPES:
                    address_rrset = zone.get(target, {}).get(address_type)
                    if address_rrset is not None:
                        response.additional.append(address_rrset)
        return response

    def _notify(self, key: _Key) -> None:
        name, rdtype = key
        waiting = []
        for waiter in self._waiters:
            wanted_name, wanted_type, event = waiter
            if wanted_name == name and wanted_type in (None, rdtype):
                event.set()
            else:
                waiting.append(waiter)
        self._waiters = waiting

    def __repr__(self) -> str:
        where = f"{self._host}:{self._port}" if self._port is not None else "not listening"
        return f"<DnsServer {where} names={len(self._zone)} queries={self.queries}>"


def _name(name: str) -> dns.name.Name:
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ValueError(f"{name!r}: not a valid DNS name: {exc}") from None


def _rdtype(rdtype: str) -> dns.rdatatype.RdataType:
    try:
        return dns.rdatatype.from_text(rdtype)
    except dns.rdatatype.UnknownRdatatype:
        raise ValueError(f"{rdtype!r}: not a DNS record type") from None
