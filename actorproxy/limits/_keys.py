"""What a rate-limited request is counted by: its key, built from the sources a route names. Pure.

Rules:
- Sources: `client_ip`, `host` (as routing reads it), `route` (the route's own label: one counter for the
  whole route), `header:<name>` (the first field's value) and `query:<name>` (the first parameter's value,
  percent-decoded). A missing header or parameter counts as the empty value: requests without it share one
  counter rather than escaping the limit.
- `client_ip` is the connection's peer address. Only when that peer is a trusted proxy (`trusted_proxies`)
  is the forwarding header read (`X-Forwarded-For`, or `Forwarded` per RFC 7239, whichever the service
  names; never both): walking its addresses from the right, past every trusted one, the first other entry is
  the client. A header from an untrusted peer is ignored, so a client cannot pick its own key by sending
  one; a client behind a trusted proxy can only prepend entries, which the walk never reaches. An entry
  that is not an address (`unknown`, an obfuscated `_name`) is taken as it is.
- A key starts with the limit's label, so two routes never share counters by accident.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import parse_qsl

from actorproxy.config import parse_key_source, parse_trusted_proxy
from actorproxy.http import Headers, RequestHeader, request_host

__all__ = ["KeyFunction", "client_ip", "forwarded_for"]

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# Separates the parts of a key: a byte that no header value or decoded address holds in practice.
_SEPARATOR = "\x1f"


def _split_list(value: str) -> list[str]:
    """Items of a comma-separated field value, commas inside quoted strings kept (RFC 9110 §5.6.1)."""
    items: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            items.append("".join(current).strip())
            current = []
            continue
        current.append(char)
    items.append("".join(current).strip())
    return [item for item in items if item]


def _node(text: str) -> str:
    """A node as RFC 7239 §6 writes it (`"[2001:db8::1]:80"`, `192.0.2.1:8080`), without quotes or port."""
    text = text.strip().strip('"')
    if text.startswith("["):
        return text[1 : text.find("]")] if "]" in text else text
    if text.count(":") == 1:
        return text.partition(":")[0]
    return text


def forwarded_for(headers: Headers, header: str) -> list[str]:
    """The client addresses a forwarding header lists, leftmost (the original client) first.

    Args:
        headers: the request's headers.
        header: `x-forwarded-for`, or `forwarded` (its `for=` parameters).
    """
    hops: list[str] = []
    for value in headers.get_all(header):
        for element in _split_list(value):
            if header == "forwarded":
                for pair in element.split(";"):
                    name, _, node = pair.strip().partition("=")
                    if name.lower() == "for":
                        hops.append(_node(node))
            else:
                hops.append(_node(element))
    return hops


def _address(text: str) -> IpAddress | None:
    try:
        return ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None


def client_ip(
    client_addr: Any, headers: Headers, trusted: Sequence[IpNetwork], header: str = "x-forwarded-for"
) -> str:
    """The client's address as a key: the peer's, or, behind a trusted proxy, the forwarded one (see the
    module rules). A Unix-socket peer is `unix`, an unknown one the empty string."""
    if isinstance(client_addr, tuple) and client_addr:
        peer = str(client_addr[0])
    elif isinstance(client_addr, str):
        return "unix"
    else:
        return ""
    if not trusted:
        return peer
    address = _address(peer)
    if address is None or not _is_trusted(address, trusted):
        return peer
    hops = forwarded_for(headers, header)
    for hop in reversed(hops):
        hop_address = _address(hop)
        if hop_address is None:
            return hop
        if not _is_trusted(hop_address, trusted):
            return str(hop_address)
    return str(_address(hops[0]) or hops[0]) if hops else peer


def _is_trusted(address: IpAddress, trusted: Sequence[IpNetwork]) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted if network.version == address.version)


def _query_value(request: RequestHeader, name: str) -> str:
    query = request.query
    if not query:
        return ""
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key == name:
            return value
    return ""


Part = Callable[[Any, RequestHeader], str]


class KeyFunction:
    """Builds a request's key from the sources of a route's `rate_limit.key`.

    Args:
        sources: the sources, as the file spells them (`client_ip`, `header:x-api-key`, ...).
        label: what every key starts with (the route's label).
        trusted_proxies: addresses or networks of trusted proxies (CIDR strings).
        client_ip_header: the forwarding header they set: `x-forwarded-for` or `forwarded`.

    Raises:
        ValueError: a source or a network does not parse.
    """

    __slots__ = ("_parts", "label", "sources")

    def __init__(
        self,
        sources: Iterable[str],
        label: str,
        *,
        trusted_proxies: Iterable[str] = (),
        client_ip_header: str = "x-forwarded-for",
    ) -> None:
        self.sources = tuple(sources)
        self.label = label
        trusted = tuple(parse_trusted_proxy(text) for text in trusted_proxies)
        self._parts = tuple(
            self._part(parse_key_source(source), trusted, client_ip_header) for source in self.sources
        )

    @staticmethod
    def _part(source: tuple[str, str], trusted: tuple[IpNetwork, ...], header: str) -> Part:
        kind, name = source
        if kind == "client_ip":
            return lambda addr, request: client_ip(addr, request.headers, trusted, header)
        if kind == "host":
            return lambda addr, request: request_host(request) or ""
        if kind == "route":
            return lambda addr, request: ""
        if kind == "header":
            return lambda addr, request: request.headers.get(name) or ""
        return lambda addr, request: _query_value(request, name)

    def __repr__(self) -> str:
        return f"<KeyFunction {self.label} {list(self.sources)}>"

    def __call__(self, client_addr: Any, request: RequestHeader) -> str:
        """The key of `request`, received from `client_addr`."""
        parts = self._parts
        if len(parts) == 1:  # the usual key: one source
            return f"{self.label}{_SEPARATOR}{parts[0](client_addr, request)}"
        return _SEPARATOR.join([self.label, *(part(client_addr, request) for part in parts)])
