"""Parsing the addresses a configuration names: `host:port`, `[v6]:port`, Unix socket paths, IP literals.

Each parser returns the parsed value or raises `ValueError` whose message is the reason alone (the caller
knows the key path).
"""

from __future__ import annotations

import ipaddress
import re

__all__ = ["parse_host_port", "parse_ip", "parse_ip_port", "parse_unix_path"]

# RFC 1123 host names (letters, digits, hyphens between dots), plus `_`, which service names use in practice.
_HOST_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*\.?")
_MAX_PORT = 65535


def _split(text: str) -> tuple[str, str, bool]:
    """Split `host:port` / `[v6]:port` into (host, port text, bracketed)."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            raise ValueError("not host:port ('[' without ']:port')")
        return text[1:end], text[end + 2 :], True
    host, sep, port = text.rpartition(":")
    if not sep:
        raise ValueError("not host:port (no port)")
    if ":" in host:
        raise ValueError("not host:port (write an IPv6 address in brackets: [::1]:8080)")
    return host, port, False


def _port(text: str, lowest: int) -> int:
    if not text.isdigit() or not text.isascii():
        raise ValueError(f"not host:port (port {text!r} is not a number)")
    port = int(text)
    if not lowest <= port <= _MAX_PORT:
        raise ValueError(f"not host:port (port {port} is out of {lowest}..{_MAX_PORT})")
    return port


def parse_host_port(text: str, *, allow_port_zero: bool = False) -> tuple[str, int]:
    """Parse `host:port` or `[v6]:port`; the host is a name or an IP literal.

    Args:
        text: the address.
        allow_port_zero: accept port 0 (a listener asking the OS for a free port).

    Raises:
        ValueError: the reason, starting with `not host:port`.
    """
    host, port_text, bracketed = _split(text)
    if not host:
        raise ValueError("not host:port (empty host)")
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"not host:port ({host!r} in brackets is not an IPv6 address)") from None
    elif not _HOST_NAME.fullmatch(host):
        raise ValueError(f"not host:port (bad host {host!r})")
    return host, _port(port_text, 0 if allow_port_zero else 1)


def parse_ip(text: str, version: int | None = None) -> str:
    """Parse an IP literal (of the given version, if any) into its normal form.

    Raises:
        ValueError: the reason.
    """
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        kind = f"an IPv{version}" if version else "an IP"
        raise ValueError(f"not {kind} address") from None
    if version is not None and ip.version != version:
        raise ValueError(f"not an IPv{version} address (it is IPv{ip.version})")
    return str(ip)


def parse_ip_port(text: str, default_port: int) -> tuple[str, int]:
    """Parse `ip`, `ip:port` or `[v6]:port` (a name server); a bare IP gets `default_port`.

    Raises:
        ValueError: the reason.
    """
    try:
        return parse_ip(text), default_port
    except ValueError:
        pass
    try:
        host, port_text, _ = _split(text)
    except ValueError:
        raise ValueError("not an IP address or ip:port") from None
    try:
        ip = parse_ip(host)
    except ValueError:
        raise ValueError(f"not ip:port ({host!r} is not an IP address)") from None
    return ip, _port(port_text, 1)


def parse_unix_path(text: str) -> str:
    """Parse `unix:/path` or an absolute `/path` into the path.

    Raises:
        ValueError: the reason.
    """
    path = text.removeprefix("unix:")
    if not path.startswith("/"):
        raise ValueError("not a Unix socket path (write unix:/absolute/path)")
    return path
