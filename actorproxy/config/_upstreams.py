"""The declarative proxy's back half: upstream clusters, how their backends are found, chosen and checked.

Defaults follow the load balancer's: Pingora's for selection and active health checks, Envoy's outlier
detection for passive health (the same values `actorproxy.lb` uses; a test keeps them equal).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import attrs

from ._address import parse_ip_port
from ._checks import at_least, between, check_class, doc, each, non_empty, parsed_by
from ._defaults import (
    DEFAULT_BASE_EJECTION_TIME,
    DEFAULT_CONSECUTIVE_FAILURES,
    DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT,
    DEFAULT_HEALTH_CHECK_FREQUENCY,
    DEFAULT_HEALTH_CHECK_READ_TIMEOUT,
    DEFAULT_MAX_EJECTION_PERCENT,
    DEFAULT_MAX_EJECTION_TIME,
)
from ._rules import BACKEND_ADDRESS, NAME, PATH, PORT, POSITIVE, choice

__all__ = [
    "Algorithm",
    "DiscoveryConf",
    "DnsDiscoveryConf",
    "DnsRecord",
    "FileDiscoveryConf",
    "HealthCheckConf",
    "HttpHealthCheckConf",
    "PassiveHealthConf",
    "StaticBackendConf",
    "TcpHealthCheckConf",
    "UpstreamAlpn",
    "UpstreamConf",
]

#: How a cluster picks a backend for a request (the selection algorithms of `actorproxy.lb`).
Algorithm = Literal[
    "round_robin", "random", "fnv_hash", "consistent", "least_connections", "power_of_two_choices"
]
#: The HTTP versions spoken to a cluster's backends (Pingora's `ALPN`): HTTP/1.1, HTTP/2 (h2c with prior
#: knowledge in cleartext), or HTTP/2 when the backend's TLS ALPN picks it.
UpstreamAlpn = Literal["h1", "h2", "h2h1"]
#: The DNS record a cluster's backends are read from.
DnsRecord = Literal["A", "AAAA", "SRV"]

# RFC 1035 section 4.2: DNS servers listen on port 53.
DNS_PORT = 53


def _nameserver(value: str) -> None:
    parse_ip_port(value, DNS_PORT)


def _host(value: str) -> None:
    if not value or any(char.isspace() for char in value):
        raise ValueError(f"expected a host name, got {value!r}")


def _request_path(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"a request path starts with '/', got {value!r}")


HOST = parsed_by(_host, pattern="^\\S+$")
THRESHOLD = at_least(1)


@attrs.frozen(kw_only=True)
class StaticBackendConf:
    """A backend named in the file: `{addr, weight}`, or just the address as a string."""

    # A bare string in the file is this field.
    __shorthand__: ClassVar[str] = "addr"

    addr: str = attrs.field(
        validator=BACKEND_ADDRESS, metadata=doc("host:port, [v6]:port, or a Unix socket as unix:/path.")
    )
    weight: int = attrs.field(
        default=1, validator=at_least(1), metadata=doc("Relative share of the traffic.")
    )


@attrs.frozen(kw_only=True)
class DnsDiscoveryConf:
    """Backends are the addresses a DNS name resolves to, re-resolved every `update_frequency`."""

    name: str = attrs.field(validator=HOST, metadata=doc("The DNS name to resolve."))
    port: int | None = attrs.field(
        default=None, validator=PORT, metadata=doc("The backends' port; required for A and AAAA records.")
    )
    record: DnsRecord = attrs.field(
        default="A",
        validator=choice(DnsRecord),
        metadata=doc("A, AAAA, or SRV (whose records carry the ports)."),
    )
    nameservers: tuple[str, ...] = attrs.field(
        default=(),
        validator=each(parsed_by(_nameserver, "ip or ip:port")),
        metadata=doc("Name servers to ask, ip or ip:port; empty: the system's resolver."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.record == "SRV" and self.port is not None:
            yield "port", "not used with SRV records, which carry their own ports"
        elif self.record != "SRV" and self.port is None:
            yield "port", f"required with {self.record} records"


@attrs.frozen(kw_only=True)
class FileDiscoveryConf:
    """Backends listed in a YAML or JSON file, re-read when it changes (see `actorproxy.lb.FileDiscovery`)."""

    path: str = attrs.field(validator=PATH, metadata=doc("The file."))


@attrs.frozen(kw_only=True)
class DiscoveryConf:
    """Where a cluster's backends come from: exactly one of `static`, `dns` and `file`."""

    __one_of__: ClassVar[tuple[str, ...]] = ("static", "dns", "file")

    static: tuple[StaticBackendConf, ...] | None = attrs.field(
        default=None,
        validator=non_empty("backend"),
        metadata=doc("A fixed list of backends."),
    )
    dns: DnsDiscoveryConf | None = attrs.field(default=None, metadata=doc("Resolve a DNS name."))
    file: FileDiscoveryConf | None = attrs.field(default=None, metadata=doc("Read a file of backends."))

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        seen: dict[tuple[str, int], int] = {}
        for index, backend in enumerate(self.static or ()):
            key = (backend.addr.removeprefix("unix:"), backend.weight)
            if key in seen:
                yield f"static[{index}]", f"duplicate of static[{seen[key]}] ({backend.addr})"
            seen.setdefault(key, index)

    @property
    def kind(self) -> Literal["static", "dns", "file"]:
        """Which of the three ways is used."""
        return "static" if self.static is not None else "dns" if self.dns is not None else "file"


@attrs.frozen(kw_only=True)
class TcpHealthCheckConf:
    """A backend is healthy when a connection to it opens in time (Pingora's `TcpHealthCheck`)."""

    connect_timeout: float = attrs.field(
        default=DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds to connect (and, with tls, to finish the handshake)."),
    )
    tls: bool = attrs.field(default=False, metadata=doc("Finish a TLS handshake too."))
    sni: str = attrs.field(default="", metadata=doc("The TLS server name."))
    consecutive_success: int = attrs.field(
        default=1,
        validator=THRESHOLD,
        metadata=doc("Passes in a row that make an unhealthy backend healthy."),
    )
    consecutive_failure: int = attrs.field(
        default=1,
        validator=THRESHOLD,
        metadata=doc("Failures in a row that make a healthy backend unhealthy."),
    )


@attrs.frozen(kw_only=True)
class HttpHealthCheckConf:
    """A backend is healthy when `GET path` answers `expected_status` in time (Pingora's HttpHealthCheck)."""

    host: str = attrs.field(
        validator=HOST, metadata=doc("The Host header (and TLS server name unless sni is set).")
    )
    path: str = attrs.field(
        default="/", validator=parsed_by(_request_path, pattern="^/"), metadata=doc("The request target.")
    )
    expected_status: int = attrs.field(
        default=200, validator=between(100, 599), metadata=doc("The status a healthy backend answers.")
    )
    tls: bool = attrs.field(default=False, metadata=doc("Speak https."))
    sni: str = attrs.field(default="", metadata=doc("The TLS server name; empty: host."))
    connect_timeout: float = attrs.field(
        default=DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds to connect (and, with tls, to finish the handshake)."),
    )
    read_timeout: float = attrs.field(
        default=DEFAULT_HEALTH_CHECK_READ_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds each read of the response (and write of the request) may take."),
    )
    reuse_connection: bool = attrs.field(
        default=False, metadata=doc("Keep the connection for the next check of the same backend.")
    )
    port_override: int | None = attrs.field(
        default=None, validator=PORT, metadata=doc("Probe this port instead of the backend's.")
    )
    consecutive_success: int = attrs.field(
        default=1,
        validator=THRESHOLD,
        metadata=doc("Passes in a row that make an unhealthy backend healthy."),
    )
    consecutive_failure: int = attrs.field(
        default=1,
        validator=THRESHOLD,
        metadata=doc("Failures in a row that make a healthy backend unhealthy."),
    )


@attrs.frozen(kw_only=True)
class HealthCheckConf:
    """Active health checks: exactly one of `tcp` and `http`, run every `frequency` seconds."""

    __one_of__: ClassVar[tuple[str, ...]] = ("tcp", "http")

    tcp: TcpHealthCheckConf | None = attrs.field(
        default=None, metadata=doc("Check by opening a connection; `tcp:` alone takes the defaults.")
    )
    http: HttpHealthCheckConf | None = attrs.field(default=None, metadata=doc("Check with an HTTP request."))
    frequency: float | None = attrs.field(
        default=DEFAULT_HEALTH_CHECK_FREQUENCY,
        validator=POSITIVE,
        metadata=doc("Seconds between rounds of checks; null: one round at start only."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)


@attrs.frozen(kw_only=True)
class PassiveHealthConf:
    """Outlier detection: failures seen by real traffic take a backend out for a while."""

    consecutive_failures: int = attrs.field(
        default=DEFAULT_CONSECUTIVE_FAILURES,
        validator=THRESHOLD,
        metadata=doc("Failures in a row that eject."),
    )
    count_server_errors: bool = attrs.field(
        default=True, metadata=doc("Whether a 5xx answer counts as a failure.")
    )
    base_ejection_time: float = attrs.field(
        default=DEFAULT_BASE_EJECTION_TIME,
        validator=POSITIVE,
        metadata=doc("Seconds out after the first ejection; the n-th lasts n times as long."),
    )
    max_ejection_time: float = attrs.field(
        default=DEFAULT_MAX_EJECTION_TIME,
        validator=POSITIVE,
        metadata=doc("The longest an ejection lasts, seconds."),
    )
    max_ejection_percent: float = attrs.field(
        default=DEFAULT_MAX_EJECTION_PERCENT,
        validator=between(0, 100),
        metadata=doc("Share of the cluster that may be out at once (at least one backend, never all)."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.max_ejection_time < self.base_ejection_time:
            yield (
                "max_ejection_time",
                f"expected at least base_ejection_time ({self.base_ejection_time:g}),"
                f" got {self.max_ejection_time:g}",
            )


@attrs.frozen(kw_only=True)
class UpstreamConf:
    """An upstream cluster: a named, load-balanced set of backends."""

    name: str = attrs.field(validator=NAME, metadata=doc("The cluster's name, unique among upstreams."))
    discovery: DiscoveryConf = attrs.field(metadata=doc("Where the backends come from."))
    algorithm: Algorithm = attrs.field(
        default="round_robin",
        validator=choice(Algorithm),
        metadata=doc("How a backend is picked per request."),
    )
    health_check: HealthCheckConf | None = attrs.field(
        default=None, metadata=doc("Active health checks; null: every backend counts as healthy.")
    )
    update_frequency: float | None = attrs.field(
        default=None, validator=POSITIVE, metadata=doc("Seconds between discoveries; null: once, at start.")
    )
    passive_health: PassiveHealthConf | None = attrs.field(
        default=None, metadata=doc("Outlier detection on real traffic; null: off.")
    )
    alpn: UpstreamAlpn = attrs.field(
        default="h1",
        validator=choice(UpstreamAlpn),
        metadata=doc(
            "The HTTP version spoken to the backends: h1 (HTTP/1.1, as Pingora's default), h2 (HTTP/2;"
            " h2c with prior knowledge in cleartext) or h2h1 (HTTP/2 if the backend's TLS ALPN picks it,"
            " else HTTP/1.1; HTTP/1.1 in cleartext)."
        ),
    )
    max_h2_streams: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc(
            "Requests carried at once on one HTTP/2 connection to a backend (also capped by the backend's"
            " SETTINGS_MAX_CONCURRENT_STREAMS); null: the service's http2.max_h2_streams."
        ),
    )


for _cls in (
    StaticBackendConf,
    DnsDiscoveryConf,
    FileDiscoveryConf,
    DiscoveryConf,
    TcpHealthCheckConf,
    HttpHealthCheckConf,
    HealthCheckConf,
    PassiveHealthConf,
    UpstreamConf,
):
    attrs.resolve_types(_cls)
