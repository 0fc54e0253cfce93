"""`HttpPeer` and `PeerOptions`: which upstream to connect to, and how (Pingora's peer, names kept).

Rules:
- An address is normalized once, when the peer is built: a `(host, port)` tuple (IPv6 without brackets, IP
  literals in their compressed form, host names lower-cased) or a Unix socket path. A bad address raises
  `ValueError` naming the value and what is wrong with it.
- Host names are accepted and resolved when connecting; Pingora peers hold an IP, so `upstream_peer` should
  prefer one where the name's resolution matters for pooling (the pool keys on what was given here).
- Two peers share pooled connections if and only if their `reuse_key()`s are equal. The key holds exactly the
  attributes of Pingora's "Same Peer" list that we support: address, scheme, SNI, client certificate, verify
  cert, verify hostname and alternative CN (CONNECT proxies are not supported). Timeouts, `ca`, `bind_to` and
  keepalive settings are not part of it, as in Pingora.
- `PeerOptions` is mutable (users write `peer.options.connection_timeout = 2.0`), and validated on every
  assignment; durations are float seconds, None meaning "no limit" (or, for `idle_timeout`, the pool's
  default) and 0 for `idle_timeout` meaning "never reuse". Unlike Pingora's, the connect, read and write
  timeouts have finite defaults, so a silent upstream never holds a request forever.
"""

from __future__ import annotations

import enum
import ipaddress
import os
import re
from collections.abc import Hashable
from typing import Any

import attrs

from actorproxy.config import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TOTAL_CONNECTION_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
)

__all__ = ["ALPN", "Address", "HttpPeer", "PeerOptions", "TcpKeepalive", "parse_address", "parse_bind_to"]

# RFC 1123 host names (letters, digits, hyphens per label), plus "_" which service discovery names use.
_HOSTNAME = re.compile(r"(?!-)[a-z0-9_-]{1,63}(?<!-)(\.(?!-)[a-z0-9_-]{1,63}(?<!-))*\.?", re.ASCII)
# An `.addr` may point at another object with an `.addr`; this many hops is plenty and stops cycles.
_MAX_ADDR_INDIRECTION = 4

Address = tuple[str, int] | str


def _non_negative(instance: object, attribute: attrs.Attribute[Any], value: float | None) -> None:
    if value is not None and not value >= 0:  # also rejects NaN
        raise ValueError(f"{attribute.name}: must be >= 0 seconds or None, got {value!r}")


def _positive(instance: object, attribute: attrs.Attribute[Any], value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: must be > 0, got {value!r}")


@attrs.frozen(kw_only=False)
class TcpKeepalive:
    """TCP keepalive probes: the first after `idle` s of silence, then every `interval` s, `count` times.

    Applied with SO_KEEPALIVE, TCP_KEEPIDLE (TCP_KEEPALIVE on macOS), TCP_KEEPINTVL and TCP_KEEPCNT where the
    platform has them; the kernel counts whole seconds, so fractions are rounded up.
    """

    idle: float = attrs.field(validator=_positive)
    interval: float = attrs.field(validator=_positive)
    count: int = attrs.field(validator=_positive)


def _check_bind_to(instance: object, attribute: attrs.Attribute[Any], value: str | None) -> None:
    if value is not None:
        parse_bind_to(value)


def _check_client_cert(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is None:
        return
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(isinstance(part, str) and part for part in value)
    ):
        raise ValueError(f"client_cert: must be a (cert path, key path) tuple or None, got {value!r}")


def _check_ca(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, (str, bytes)) and value):
        raise ValueError(f"ca: must be a CA bundle path, PEM text, DER bytes or None, got {value!r}")


def _check_alternative_cn(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and not (isinstance(value, str) and value):
        raise ValueError(f"alternative_cn: must be a non-empty string or None, got {value!r}")


class ALPN(enum.Enum):
    """Which HTTP versions to speak to a peer (Pingora's `ALPN`): offered by ALPN over TLS; in cleartext,
    `H2` speaks h2c with prior knowledge and the others HTTP/1.1."""

    H1 = "h1"
    H2 = "h2"
    H2H1 = "h2h1"

    @property
    def protocols(self) -> tuple[str, ...]:
        """The ALPN protocol ids offered, preferred first."""
        return _ALPN_IDS[self]


_ALPN_IDS = {ALPN.H1: ("http/1.1",), ALPN.H2: ("h2",), ALPN.H2H1: ("h2", "http/1.1")}
# The default, for `reuse_key` on the request path: a module global, where `ALPN.H1` goes through the enum's
# metaclass (about 70 ns a look-up).
_H1 = ALPN.H1


def _check_max_streams(instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"max_h2_streams: must be an int >= 1 or None, got {value!r}")


@attrs.define(kw_only=True)
class PeerOptions:
    """How to connect to an upstream (Pingora's `PeerOptions`); attributes are validated on assignment."""

    #: Local address to connect from: an IP literal, `"ip:port"` or `"[v6]:port"`.
    bind_to: str | None = attrs.field(default=None, validator=_check_bind_to)
    #: Seconds to establish the TCP (or Unix socket) connection; None: no limit.
    connection_timeout: float | None = attrs.field(
        default=DEFAULT_CONNECTION_TIMEOUT, validator=_non_negative
    )
    #: Seconds to establish the connection including the TLS handshake; None: no limit.
    total_connection_timeout: float | None = attrs.field(
        default=DEFAULT_TOTAL_CONNECTION_TIMEOUT, validator=_non_negative
    )
    #: Seconds each read from the upstream may wait (reset after every read); None: no limit.
    read_timeout: float | None = attrs.field(default=DEFAULT_READ_TIMEOUT, validator=_non_negative)
    #: Seconds a write to the upstream may take; None: no limit.
    write_timeout: float | None = attrs.field(default=DEFAULT_WRITE_TIMEOUT, validator=_non_negative)
    #: Seconds an idle connection waits in the pool for reuse; None: the pool's default; 0: never reuse.
    idle_timeout: float | None = attrs.field(default=None, validator=_non_negative)
    #: Check that the upstream's certificate chains to a trusted CA.
    verify_cert: bool = True
    #: Check that the certificate names the SNI (or host); only meaningful with `verify_cert`.
    verify_hostname: bool = True
    #: Also accept a certificate whose subject CN or SAN is this name.
    alternative_cn: str | None = attrs.field(default=None, validator=_check_alternative_cn)
    #: Root CAs to trust instead of the system's: a file path, PEM text (str) or DER bytes.
    ca: str | bytes | None = attrs.field(default=None, validator=_check_ca)
    #: Client certificate for mTLS: (certificate chain path, private key path).
    client_cert: tuple[str, str] | None = attrs.field(default=None, validator=_check_client_cert)
    #: TCP keepalive probes; None leaves the OS default (off).
    tcp_keepalive: TcpKeepalive | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.instance_of(TcpKeepalive))
    )
    #: The HTTP versions to speak (Pingora's `alpn`): H1 (the default, as Pingora's), H2, or H2H1 (h2
    #: when the peer's ALPN picks it).
    alpn: ALPN = attrs.field(default=ALPN.H1, validator=attrs.validators.instance_of(ALPN))
    #: Requests carried at once on one h2 connection (capped by the peer's SETTINGS); None: the service's
    #: `http2.max_h2_streams`.
    max_h2_streams: int | None = attrs.field(default=None, validator=_check_max_streams)


def parse_bind_to(value: str) -> tuple[str, int]:
    """Parse a `bind_to` value into `(ip, port)`; a bare IP means port 0 (the OS picks).

    Raises:
        ValueError: not an IP literal, `ip:port` or `[v6]:port`.
    """
    if not isinstance(value, str):
        raise ValueError(f"bind_to: must be a string, got {value!r}")
    try:
        return (str(ipaddress.ip_address(value)), 0)
    except ValueError:
        pass
    try:
        host, port = _split_host_port(value)
        return (str(ipaddress.ip_address(host)), port)
    except ValueError as exc:
        raise ValueError(
            f"bind_to: {value!r} is not an IP address, 'ip:port' or '[v6]:port' ({exc})"
        ) from None


def _parse_port(text: str, original: object) -> int:
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{original!r}: port {text!r} is not a number")
    return _check_port(int(text), original)


def _check_port(port: int, original: object) -> int:
    if not 0 < port < 65536:
        raise ValueError(f"{original!r}: port {port} is out of range 1..65535")
    return port


def _normalize_host(host: str, original: object) -> str:
    if not host:
        raise ValueError(f"{original!r}: the host is empty")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    lowered = host.lower()
    if not _HOSTNAME.fullmatch(lowered) or len(lowered) > 254:
        raise ValueError(f"{original!r}: {host!r} is neither an IP address nor a host name")
    return lowered


def _split_host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        close = text.find("]")
        if close < 0 or text[close + 1 : close + 2] != ":":
            raise ValueError(f"{text!r}: expected '[ipv6]:port'")
        host = text[1:close]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host!r} in brackets is not an IPv6 address") from None
        return host, _parse_port(text[close + 2 :], text)
    host, colon, port = text.rpartition(":")
    if not colon:
        raise ValueError(f"{text!r}: expected 'host:port', '[ipv6]:port' or a Unix socket path")
    if ":" in host:
        raise ValueError(f"{text!r}: an IPv6 address needs brackets, as in '[::1]:8080'")
    return host, _parse_port(port, text)


def parse_address(address: object, depth: int = 0) -> Address:
    """Normalize any accepted address form; see `HttpPeer`."""
    if isinstance(address, str):
        if address.startswith("unix:"):
            path = address[len("unix:") :]
            if not path:
                raise ValueError(f"{address!r}: the Unix socket path is empty")
            return path
        if address.startswith("/"):
            return address
        host, port = _split_host_port(address)
        return (_normalize_host(host, address), port)
    if isinstance(address, tuple):
        if len(address) < 2 or not isinstance(address[0], str) or type(address[1]) is not int:
            raise ValueError(f"{address!r}: expected a (host: str, port: int) tuple")
        # Extra items (IPv6 flowinfo and scope id from getaddrinfo) are dropped; put a zone in the host.
        return (_normalize_host(address[0], address), _check_port(address[1], address))
    if isinstance(address, os.PathLike):
        path = os.fspath(address)
        if not isinstance(path, str) or not path:
            raise ValueError(f"{address!r}: not a usable Unix socket path")
        return path
    if depth < _MAX_ADDR_INDIRECTION:
        addr = getattr(address, "addr", None)
        if addr is not None and addr is not address:
            return parse_address(addr, depth + 1)
        attr_host = getattr(address, "host", None)
        attr_port = getattr(address, "port", None)
        if attr_host is not None and attr_port is not None:
            return parse_address((attr_host, attr_port), depth + 1)
    raise ValueError(
        f"{address!r}: expected 'host:port', '[ipv6]:port', a (host, port) tuple, a Unix socket path "
        "('/path' or 'unix:path'), or an object with .addr or .host/.port"
    )


class HttpPeer:
    """Which upstream to connect to and how (Pingora's `HttpPeer`).

    Args:
        address: `"host:port"`, `"[v6]:port"`, a `(host, port)` tuple, a Unix socket path (`"/run/app.sock"`,
            `"unix:/run/app.sock"` or a `pathlib.Path`), or an object with an `.addr` in one of these forms
            (a `Backend`) or with `.host` and `.port` attributes.
        tls: connect with TLS (scheme https).
        sni: the TLS server name; empty means "the host" when verifying hostnames, else none.
        options: connection settings; a fresh `PeerOptions()` when omitted.

    Raises:
        ValueError: the address is not one of the accepted forms.
    """

    __slots__ = ("address", "options", "sni", "tls")

    def __init__(
        self, address: object, tls: bool = False, sni: str = "", options: PeerOptions | None = None
    ) -> None:
        if not isinstance(sni, str):
            raise ValueError(f"sni: must be a string, got {sni!r}")
        self.address: Address = parse_address(address)
        self.tls = bool(tls)
        self.sni = sni
        self.options = PeerOptions() if options is None else options

    def with_options(self, options: PeerOptions) -> HttpPeer:
        """The same peer with other options (a copy: this one is left as it is)."""
        peer = HttpPeer.__new__(HttpPeer)
        peer.address, peer.tls, peer.sni, peer.options = self.address, self.tls, self.sni, options
        return peer

    @classmethod
    def new_uds(cls, path: str | os.PathLike[str], tls: bool = False, sni: str = "") -> HttpPeer:
        """A peer on a Unix socket (Pingora's `HttpPeer::new_uds`)."""
        path = os.fspath(path)
        if not path:
            raise ValueError("the Unix socket path is empty")
        return cls(path if path.startswith("/") else f"unix:{path}", tls, sni)

    @property
    def is_unix(self) -> bool:
        return isinstance(self.address, str)

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def host(self) -> str | None:
        """The host to connect to, or None for a Unix socket."""
        return None if isinstance(self.address, str) else self.address[0]

    @property
    def port(self) -> int | None:
        return None if isinstance(self.address, str) else self.address[1]

    @property
    def client_cert(self) -> tuple[str, str] | None:
        """The mTLS client certificate; stored in `options.client_cert`."""
        return self.options.client_cert

    @client_cert.setter
    def client_cert(self, value: tuple[str, str] | None) -> None:
        self.options.client_cert = value

    def reuse_key(self) -> Hashable:
        """The pool key: equal keys may share idle connections (see the module rules for what it holds)."""
        options = self.options
        key = (
            self.address,
            self.tls,
            self.sni,
            options.client_cert,
            options.verify_cert,
            options.verify_hostname,
            options.alternative_cn,
        )
        # The versions offered decide what a connection speaks, so they are part of the key; the default's
        # key is the one it always was.
        return key if options.alpn is _H1 else (*key, options.alpn)

    def label(self) -> str:
        """`host:port`, `[v6]:port` or `unix:/path`, for errors and logs."""
        address = self.address
        if isinstance(address, str):
            return f"unix:{address}"
        host, port = address
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def __repr__(self) -> str:
        sni = f" sni={self.sni!r}" if self.sni else ""
        return f"<HttpPeer {self.scheme}://{self.label()}{sni}>"
