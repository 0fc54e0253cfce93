"""DNS service discovery: a load balancer's backends from A/AAAA or SRV records (dnspython's async resolver).

Rules:
- `DnsDiscovery.host(name, port=...)` gives one backend per A/AAAA address of `name`, all on `port` with the
  same weight. Either family may be missing as long as the other answers; none at all is an error.
- `DnsDiscovery.srv(name)` reads the SRV records of a service name (`_http._tcp.api.internal`) as RFC 2782
  means them: only the records with the lowest priority value are used; the next priority is used only when
  no target of the lower one has an address. A target of `"."` means the service is not offered there.
  Each address of a target becomes a backend on the record's port with the record's weight; a weight of 0
  becomes 1, because a `Backend`'s weight is >= 1 (so it gets the share of a weight-1 record, not RFC 2782's
  "very small chance"). Records that lead to the same address and port add up their weights.
- A target's addresses come from the additional section when the server put any there for that target,
  else from A/AAAA queries of the target.
- The result is cached until its TTL runs out on trio's clock: the smallest TTL of the records it came from,
  clamped to `[min_ttl, max_ttl]`. A `discover` before then answers from the cache and sends no query. How
  often `discover` is called is the load balancer's `update_frequency`; the TTL only decides whether a call
  goes to the network.
- A lookup that fails (no answer in time, SERVFAIL, REFUSED, no such name, no records) raises
  `DnsDiscoveryError` naming the query and the reason. Nothing is cached, so the next call asks again; the
  load balancer keeps its last set meanwhile. An empty result is a failure too: a zone caught in the middle
  of an update is likelier than a wish to drop every backend.
- Names are absolute (the resolver's search list is not used), and queries run one after another: discovery
  is off the request path, and only supervisors own nurseries.
- A backend's `ext` holds `dns_name` (the host name its address belongs to) and `dns_records` (the records
  it came from, as text); neither takes part in equality.
"""

from __future__ import annotations

import enum
import ipaddress
import math
from collections.abc import Callable, Sequence

import dns.asyncresolver
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.resolver
import trio
from dns.rdtypes.IN.A import A
from dns.rdtypes.IN.AAAA import AAAA
from dns.rdtypes.IN.SRV import SRV

from actorproxy.config import DEFAULT_DNS_MAX_TTL, DEFAULT_DNS_MIN_TTL, DEFAULT_DNS_QUERY_TIMEOUT
from actors import ActorProxyError

from ._backend import Backend

__all__ = [
    "DnsDiscovery",
    "DnsDiscoveryError",
]

Discovered = tuple[frozenset[Backend], dict[Backend, bool]]


_FAMILIES = ("A", "AAAA")
_ADDRESS_RDATA: dict[str, type[A] | type[AAAA]] = {"A": A, "AAAA": AAAA}


class DnsDiscoveryError(ActorProxyError):
    """A DNS lookup for service discovery failed.

    Args:
        query: the query, as `"<type> <name>"` (e.g. `"SRV _http._tcp.api.internal"`).
        reason: why it failed.
    """

    def __init__(self, query: str, reason: str) -> None:
        super().__init__(f"DNS {query}: {reason}")
        self.query = query
        self.reason = reason


class _Missing(enum.Enum):
    """An authoritative "nothing here": not an error for one family, an error when nothing is found."""

    NXDOMAIN = "no such name (NXDOMAIN)"
    NO_RECORDS = "no records"


# (address, the record text it came from) per address, and the smallest TTL of the records.
_Addresses = tuple[list[tuple[str, str]], float]


class DnsDiscovery:
    """Backends from DNS: the addresses of a host name, or the targets of SRV records.

    Prefer the constructors `host` and `srv`, which take only what applies to each lookup.

    Args:
        name: the name to look up (absolute; a trailing dot is optional).
        srv: look up SRV records of `name`; else A/AAAA records.
        port: the backends' port (address lookups only; SRV records give their own).
        weight: the backends' weight (address lookups only; SRV records give their own).
        families: which address records to ask for, `"A"` and/or `"AAAA"`.
        nameservers: the IP addresses of the DNS servers to ask; None: the system's resolver configuration
            (`/etc/resolv.conf`).
        nameserver_port: the port the nameservers listen on.
        query_timeout: seconds one query may take, retries included.
        min_ttl: the shortest time an answer is cached, in seconds.
        max_ttl: the longest time an answer is cached, in seconds.
        clock: the clock TTLs run on (trio's, so tests can run on virtual time).

    Raises:
        ValueError: an argument is not valid, or there is no system resolver configuration to fall back
            on; the message names the argument.
    """

    __slots__ = (
        "_backends",
        "_clock",
        "_expires_at",
        "_families",
        "_lookups",
        "_max_ttl",
        "_min_ttl",
        "_name",
        "_port",
        "_query_timeout",
        "_resolver",
        "_srv",
        "_weight",
    )

    def __init__(
        self,
        name: str,
        *,
        srv: bool = False,
        port: int | None = None,
        weight: int = 1,
        families: Sequence[str] = _FAMILIES,
        nameservers: Sequence[str] | None = None,
        nameserver_port: int = 53,
        query_timeout: float = DEFAULT_DNS_QUERY_TIMEOUT,
        min_ttl: float = DEFAULT_DNS_MIN_TTL,
        max_ttl: float = DEFAULT_DNS_MAX_TTL,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._name = _parse_name(name)
        self._srv = srv
        if srv:
            if port is not None:
                raise ValueError("port: an SRV lookup takes each backend's port from its record")
            if weight != 1:
                raise ValueError("weight: an SRV lookup takes each backend's weight from its record")
        else:
            if port is None:
                raise ValueError("port: required for an address lookup")
            _check_port(port, "port")
            if type(weight) is not int or weight < 1:
                raise ValueError(f"weight: must be an int >= 1, got {weight!r}")
        self._port = port
        self._weight = weight
        self._families = _check_families(families)
        _check_seconds(query_timeout, "query_timeout", positive=True)
        _check_seconds(min_ttl, "min_ttl", positive=False)
        _check_seconds(max_ttl, "max_ttl", positive=False)
        if min_ttl > max_ttl:
            raise ValueError(f"min_ttl: {min_ttl!r} is above max_ttl {max_ttl!r}")
        self._query_timeout = float(query_timeout)
        self._min_ttl = float(min_ttl)
        self._max_ttl = float(max_ttl)
        self._resolver = _make_resolver(nameservers, nameserver_port)
        self._clock = clock
        self._backends: frozenset[Backend] | None = None
        self._expires_at = -math.inf
        self._lookups = 0

    @classmethod
    def host(
        cls,
        name: str,
        *,
        port: int,
        weight: int = 1,
        families: Sequence[str] = _FAMILIES,
        nameservers: Sequence[str] | None = None,
        nameserver_port: int = 53,
        query_timeout: float = DEFAULT_DNS_QUERY_TIMEOUT,
        min_ttl: float = DEFAULT_DNS_MIN_TTL,
        max_ttl: float = DEFAULT_DNS_MAX_TTL,
        clock: Callable[[], float] = trio.current_time,
    ) -> DnsDiscovery:
        """One backend on `port` with `weight` per A/AAAA address of the host `name`.

        E.g. `DnsDiscovery.host("api.internal", port=8080)`. See the class for the other arguments.
        """
        return cls(
            name,
            port=port,
            weight=weight,
            families=families,
            nameservers=nameservers,
            nameserver_port=nameserver_port,
            query_timeout=query_timeout,
            min_ttl=min_ttl,
            max_ttl=max_ttl,
            clock=clock,
        )

    @classmethod
    def srv(
        cls,
        name: str,
        *,
        families: Sequence[str] = _FAMILIES,
        nameservers: Sequence[str] | None = None,
        nameserver_port: int = 53,
        query_timeout: float = DEFAULT_DNS_QUERY_TIMEOUT,
        min_ttl: float = DEFAULT_DNS_MIN_TTL,
        max_ttl: float = DEFAULT_DNS_MAX_TTL,
        clock: Callable[[], float] = trio.current_time,
    ) -> DnsDiscovery:
        """Backends from the SRV records of the service `name` (RFC 2782, e.g. `"_http._tcp.api.internal"`).

        Ports and weights come from the records (a weight of 0 becomes 1); only the lowest priority value
        with an address is used. `families` says which addresses of the targets to use. See the class for
        the other arguments.
        """
        return cls(
            name,
            srv=True,
            families=families,
            nameservers=nameservers,
            nameserver_port=nameserver_port,
            query_timeout=query_timeout,
            min_ttl=min_ttl,
            max_ttl=max_ttl,
            clock=clock,
        )

    @property
    def name(self) -> str:
        """The name looked up, without the trailing dot."""
        return _text(self._name)

    @property
    def query(self) -> str:
        """The query, as `"<type> <name>"` (what errors name)."""
        kind = "SRV" if self._srv else "/".join(self._families)
        return f"{kind} {self.name}"

    @property
    def lookups(self) -> int:
        """How many times `discover` went to the network (successfully or not)."""
        return self._lookups

    async def discover(self) -> Discovered:
        """The backends the records give, from the cache while its TTL lasts.

        Raises:
            DnsDiscoveryError: a query failed or found no backend; the message names the query and the
                reason. The next call asks again.
        """
        backends = self._backends
        if backends is not None and self._clock() < self._expires_at:
            return backends, {}
        self._lookups += 1
        backends, ttl = await (self._lookup_srv() if self._srv else self._lookup_host())
        self._backends = backends
        self._expires_at = self._clock() + min(max(ttl, self._min_ttl), self._max_ttl)
        return backends, {}

    # -- lookups ---------------------------------------------------------------------------------------------

    async def _lookup_host(self) -> tuple[frozenset[Backend], float]:
        assert self._port is not None
        found = await self._addresses(self._name, context="")
        if isinstance(found, _Missing):
            reason = (
                found.value if found is _Missing.NXDOMAIN else f"no {' or '.join(self._families)} records"
            )
            raise DnsDiscoveryError(self.query, reason)
        addresses, ttl = found
        name = self.name
        backends = frozenset(
            Backend((address, self._port), self._weight, ext={"dns_name": name, "dns_records": (record,)})
            for address, record in addresses
        )
        return backends, ttl

    async def _lookup_srv(self) -> tuple[frozenset[Backend], float]:
        answer = await self._resolve(self._name, "SRV", context="")
        if isinstance(answer, _Missing):
            reason = answer.value if answer is _Missing.NXDOMAIN else "no SRV records"
            raise DnsDiscoveryError(self.query, reason)
        ttl = float(answer.chaining_result.minimum_ttl)
        rrset = answer.rrset
        assert rrset is not None  # resolve() raises NoAnswer rather than return an empty answer
        owner = rrset.name.to_text()
        # RFC 2782: a target of "." means "decidedly not available"; port 0 cannot be connected to.
        records = [
            rdata
            for rdata in rrset
            if isinstance(rdata, SRV) and rdata.target != dns.name.root and rdata.port
        ]
        if not records:
            raise DnsDiscoveryError(self.query, "the service is not offered (no SRV record with a target)")
        additional = _additional_addresses(answer.response, self._families)
        context = f" (a target of SRV {self.name})"
        for priority in sorted({record.priority for record in records}):
            # Sorted so equal answers in any order build the same backends (and the same `ext`).
            group = sorted((r for r in records if r.priority == priority), key=lambda r: (r.target, r.port))
            weights: dict[tuple[str, int], int] = {}
            ext: dict[tuple[str, int], tuple[str, tuple[str, ...]]] = {}
            for record in group:
                found = additional.get(record.target)
                if found is None:
                    resolved = await self._addresses(record.target, context=context)
                    if isinstance(resolved, _Missing):
                        continue  # an authoritative "no address": the target is left out
                    found = resolved
                addresses, target_ttl = found
                ttl = min(ttl, target_ttl)
                srv_text = f"{owner} SRV {record.to_text()}"
                for address, address_text in addresses:
                    key = (address, record.port)
                    weights[key] = weights.get(key, 0) + max(record.weight, 1)
                    _, texts = ext.get(key, ("", ()))
                    ext[key] = (_text(record.target), (*texts, srv_text, address_text))
            if weights:
                backends = frozenset(
                    Backend(key, weight, ext={"dns_name": ext[key][0], "dns_records": ext[key][1]})
                    for key, weight in weights.items()
                )
                return backends, ttl
        raise DnsDiscoveryError(self.query, "no SRV target has an address")

    async def _addresses(self, name: dns.name.Name, *, context: str) -> _Addresses | _Missing:
        """The addresses of `name` in each family; `_Missing` when no family has any."""
        addresses: list[tuple[str, str]] = []
        ttl = math.inf
        missing = _Missing.NXDOMAIN
        for family in self._families:
            answer = await self._resolve(name, family, context=context)
            if isinstance(answer, _Missing):
                if answer is _Missing.NO_RECORDS:
                    missing = answer
                continue
            rrset = answer.rrset
            assert rrset is not None  # resolve() raises NoAnswer rather than return an empty answer
            ttl = min(ttl, answer.chaining_result.minimum_ttl)
            owner = rrset.name.to_text()
            addresses.extend(
                (rdata.address, f"{owner} {family} {rdata.address}")
                for rdata in rrset
                if isinstance(rdata, _ADDRESS_RDATA[family])
            )
        if not addresses:
            return missing
        return addresses, ttl

    async def _resolve(
        self, name: dns.name.Name, rdtype: str, *, context: str
    ) -> dns.resolver.Answer | _Missing:
        """One query; dnspython's exceptions become `DnsDiscoveryError` here, where the I/O happens."""
        query = f"{rdtype} {_text(name)}{context}"
        timeout = self._query_timeout
        try:
            # trio's deadline bounds the query on trio's clock (dnspython measures its lifetime on the wall
            # clock, which virtual time in tests does not move).
            with trio.fail_after(timeout):
                return await self._resolver.resolve(name, rdtype, search=False, lifetime=timeout)
        except dns.resolver.NXDOMAIN:
            return _Missing.NXDOMAIN
        except dns.resolver.NoAnswer:
            return _Missing.NO_RECORDS
        except (trio.TooSlowError, dns.exception.Timeout) as exc:
            raise DnsDiscoveryError(query, f"no answer within {timeout:g} s") from exc
        except dns.resolver.NoNameservers as exc:
            raise DnsDiscoveryError(query, _nameserver_failures(exc)) from exc
        except dns.exception.DNSException as exc:
            raise DnsDiscoveryError(query, str(exc)) from exc

    def __repr__(self) -> str:
        backends = "?" if self._backends is None else len(self._backends)
        return f"<DnsDiscovery {self.query} backends={backends} lookups={self._lookups}>"


def _additional_addresses(
    response: dns.message.Message, families: Sequence[str]
) -> dict[dns.name.Name, _Addresses]:
    """The addresses the server put in the additional section, by owner name."""
    found: dict[dns.name.Name, _Addresses] = {}
    for family in families:
        rdtype = dns.rdatatype.from_text(family)
        for rrset in response.additional:
            if rrset.rdtype != rdtype or rrset.rdclass != dns.rdataclass.IN:
                continue
            owner = rrset.name.to_text()
            addresses, ttl = found.get(rrset.name, ([], math.inf))
            addresses = addresses + [
                (rdata.address, f"{owner} {family} {rdata.address}")
                for rdata in rrset
                if isinstance(rdata, _ADDRESS_RDATA[family])
            ]
            found[rrset.name] = (addresses, min(ttl, rrset.ttl))
    return {name: entry for name, entry in found.items() if entry[0]}


def _nameserver_failures(exc: dns.resolver.NoNameservers) -> str:
    errors = exc.kwargs.get("errors") or []
    answers = [f"{error[0]} answered {error[3]}" for error in errors]
    return "every nameserver failed: " + ("; ".join(answers) or "none to ask")


def _text(name: dns.name.Name) -> str:
    return name.to_text(omit_final_dot=True)


def _parse_name(name: str) -> dns.name.Name:
    if not isinstance(name, str) or not name.strip("."):
        raise ValueError(f"name: must be a DNS name, got {name!r}")
    try:
        return dns.name.from_text(name)
    except dns.exception.DNSException as exc:
        raise ValueError(f"name: {name!r} is not a valid DNS name: {exc}") from None


def _check_families(families: Sequence[str]) -> tuple[str, ...]:
    if isinstance(families, str):
        families = (families,)
    checked = tuple(dict.fromkeys(str(family).upper() for family in families))
    if not checked or any(family not in _FAMILIES for family in checked):
        raise ValueError(f"families: must be 'A' and/or 'AAAA', got {families!r}")
    return checked


def _check_port(port: object, where: str) -> None:
    if type(port) is not int or not 1 <= port <= 65535:
        raise ValueError(f"{where}: must be an int in [1, 65535], got {port!r}")


def _check_seconds(value: object, where: str, *, positive: bool) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{where}: must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{where}: must be {'> 0' if positive else '>= 0'} seconds, got {value!r}")


def _make_resolver(nameservers: Sequence[str] | None, port: int) -> dns.asyncresolver.Resolver:
    _check_port(port, "nameserver_port")
    if nameservers is None:
        try:
            resolver = dns.asyncresolver.Resolver()
        except dns.resolver.NoResolverConfiguration as exc:
            raise ValueError(f"nameservers: none given and no system resolver configuration: {exc}") from None
        if port != 53:
            resolver.port = port
        return resolver
    if isinstance(nameservers, str):
        raise ValueError(f"nameservers: must be a list of IP addresses, got the string {nameservers!r}")
    addresses = list(nameservers)
    if not addresses:
        raise ValueError("nameservers: empty; give at least one, or None for the system's")
    for index, address in enumerate(addresses):
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(f"nameservers[{index}]: {address!r} is not an IP address") from None
    resolver = dns.asyncresolver.Resolver(configure=False)
    resolver.nameservers = addresses
    resolver.port = port
    return resolver
