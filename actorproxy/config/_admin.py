"""`AdminConf`: the admin service's listener and the token its write actions need.

The admin service serves the live supervision tree, the upstream clusters and the effective configuration,
and can disable a backend or reload the server: loopback by default, and a token is required wherever the
address is reachable from elsewhere.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator

import attrs

from ._address import parse_host_port
from ._checks import check_class, doc
from ._rules import LISTEN_ADDRESS

__all__ = ["DEFAULT_ADMIN_LISTEN", "MIN_ADMIN_TOKEN_LENGTH", "AdminConf", "is_loopback"]

#: Envoy's admin examples use 9901 and Traefik's dashboard 8080; ours sits beside the demo's 6188.
DEFAULT_ADMIN_LISTEN = "127.0.0.1:6193"
# 16 random characters are ~96 bits from a base64 alphabet: beyond guessing over the network.
MIN_ADMIN_TOKEN_LENGTH = 16


def is_loopback(address: str) -> bool:
    """Whether the host of `address` ("host:port") is a loopback address (or `localhost`)."""
    host, _port = parse_host_port(address, allow_port_zero=True)
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False


@attrs.frozen(kw_only=True)
class AdminConf:
    """Where the admin service listens, and the token its write actions need."""

    listen: str = attrs.field(
        default=DEFAULT_ADMIN_LISTEN,
        validator=LISTEN_ADDRESS,
        metadata=doc("host:port of the admin API and page; a non-loopback address needs a token."),
    )
    token: str | None = attrs.field(
        default=None,
        metadata=doc(
            "The token write actions send in the X-Admin-Token header (use ${secret:NAME}); required when"
            f" `listen` is not loopback, {MIN_ADMIN_TOKEN_LENGTH} characters at least; null: no token."
        ),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.token is not None and len(self.token) < MIN_ADMIN_TOKEN_LENGTH:
            yield "token", f"at least {MIN_ADMIN_TOKEN_LENGTH} characters, got {len(self.token)}"
        try:
            loopback = is_loopback(self.listen)
        except ValueError:
            return  # `listen` itself is reported by its validator
        if self.token is None and not loopback:
            yield "token", f"required when listen ({self.listen}) is not a loopback address"


attrs.resolve_types(AdminConf)
