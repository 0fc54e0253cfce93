"""`Backend`: one upstream server a load balancer may pick (Pingora's `Backend`, names kept).

Rules:
- A backend is a frozen value: an address and a weight. Two backends are equal, hash alike and sort alike
  when their address and weight are equal; `ext`, the user's annotations, takes no part (as in Pingora,
  where `ext` is ignored by `Eq`, `Hash` and `Ord`).
- The address is normalized once, with the same rules as `HttpPeer` (one parser for both): a `(host, port)`
  tuple or an absolute Unix socket path. So `HttpPeer(backend)` and `HttpPeer(backend.addr)` both work.
- Order is TCP before Unix (Pingora's `SocketAddr::Inet` before `SocketAddr::Unix`); IP literals sort by
  version then numerically, host names after IP literals by name; then port; then weight. Selectors sort
  their backends once, so the same set always gives the same selection table.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import attrs

from actorproxy.proxy import Address, parse_address

__all__ = ["Backend"]

_OrderKey = tuple[Any, ...]


def _normalize_addr(value: object) -> Address:
    try:
        addr = parse_address(value)
    except ValueError as exc:
        raise ValueError(f"Backend address: {exc}") from None
    if isinstance(addr, str) and not addr.startswith("/"):
        # A relative path would be read back as "host:port" by HttpPeer, and depends on the working directory.
        raise ValueError(f"Backend address: {value!r}: a Unix socket path must be absolute")
    return addr


def _check_weight(instance: Backend, attribute: attrs.Attribute[int], value: int) -> None:
    if type(value) is not int or value < 1:
        # Pingora takes any usize, but a weight of 0 would be a backend that is never picked: remove it.
        raise ValueError(f"Backend weight: must be an int >= 1, got {value!r}")


def _order_key(backend: Backend) -> _OrderKey:
    addr = backend.addr
    if isinstance(addr, str):
        return (2, addr)
    host, port = addr
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return (1, host, port)
    # The host string breaks ties between IPv6 addresses that differ only in their zone ("%eth0").
    return (0, ip.version, ip.packed, host, port)


@attrs.frozen(eq=True, order=False, cache_hash=True)  # hashed several times a request: once is enough
class Backend:
    """A server to proxy to: where it is, how much traffic it gets, and free-form annotations.

    Args:
        addr: `"host:port"`, `"[v6]:port"`, a `(host, port)` tuple, or an absolute Unix socket path
            (`"/run/app.sock"` or `"unix:/run/app.sock"`); normalized to a `(host, port)` tuple or the path.
        weight: the relative share of traffic, >= 1.
        ext: annotations for the user's own code; ignored by equality, hashing and ordering.

    Raises:
        ValueError: the address or the weight is not valid; the message names the value.
    """

    addr: Address = attrs.field(converter=_normalize_addr)
    weight: int = attrs.field(default=1, validator=_check_weight)
    ext: dict[Any, Any] = attrs.field(factory=dict, eq=False, repr=False)
    # Computed once: selectors sort thousands of backends, and parsing IPs per comparison would dominate.
    _order: _OrderKey = attrs.field(
        init=False, eq=False, repr=False, default=attrs.Factory(_order_key, takes_self=True)
    )

    @classmethod
    def new(cls, addr: object) -> Backend:
        """A backend with weight 1 (Pingora's `Backend::new`)."""
        return cls(addr)

    @classmethod
    def new_with_weight(cls, addr: object, weight: int) -> Backend:
        """A backend with the given weight (Pingora's `Backend::new_with_weight`)."""
        return cls(addr, weight)

    @property
    def is_unix(self) -> bool:
        return isinstance(self.addr, str)

    @property
    def addr_str(self) -> str:
        """`host:port`, `[v6]:port` or `unix:/path`."""
        addr = self.addr
        if isinstance(addr, str):
            return f"unix:{addr}"
        host, port = addr
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def __str__(self) -> str:
        return self.addr_str

    def _key(self) -> tuple[_OrderKey, int]:
        return (self._order, self.weight)

    def __lt__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self._key() < other._key()

    def __le__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self._key() <= other._key()

    def __gt__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self._key() > other._key()

    def __ge__(self, other: object) -> bool:
        if not isinstance(other, Backend):
            return NotImplemented
        return self._key() >= other._key()
