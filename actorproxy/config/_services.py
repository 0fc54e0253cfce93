"""The declarative proxy's front half: services, the addresses they listen on, and their routes.

A service is what a proxy process runs: listeners accept connections, and each request goes to the first
route whose conditions all hold (a route without conditions matches everything). The records only describe;
building the running services from them happens outside this package.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import attrs

from ._accesslog import DEFAULT_REQUEST_ID_HEADER, AccessLogConf
from ._cache import CacheConf
from ._checks import (
    DOC,
    DUMP,
    Check,
    Where,
    at_least,
    between,
    check_class,
    doc,
    each,
    each_item,
    non_empty,
    parsed_by,
)
from ._defaults import (
    DEFAULT_COMPRESS_MIN_SIZE,
    DEFAULT_COMPRESSIBLE_TYPES,
    DEFAULT_COMPRESSION_LEVELS,
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_REQUEST_HEADER_TIMEOUT,
    DEFAULT_TOTAL_CONNECTION_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
)
from ._frozen import EMPTY, freeze_mapping
from ._http2 import ALPN_CHOICES, Http2Settings
from ._limits import ClientIpHeader, RateLimitConf, trusted_proxies_check
from ._proxy import Forwarding, HttpLimits
from ._rules import HEADER_NAME, HEADER_VALUE, LISTEN_ADDRESS, NAME, NON_NEGATIVE, PATH, POSITIVE, choice

__all__ = [
    "CompressionConf",
    "HeaderEditsConf",
    "ListenerConf",
    "RouteConf",
    "ServiceConf",
    "TlsConf",
]

# A route's host: a name, or `*.` and a name for its subdomains; no port (the Host header's port is ignored).
_ROUTE_HOST = re.compile(r"(\*\.)?[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*\.?")
# The largest Unix file mode with no special bits: rwxrwxrwx.
_MAX_MODE = 0o777


def _route_host(value: str) -> None:
    if not _ROUTE_HOST.fullmatch(value):
        raise ValueError(f"not a host name (or *.name): {value!r}")


def _path_prefix(value: str) -> None:
    if not value.startswith("/"):
        raise ValueError(f"a path prefix starts with '/', got {value!r}")


# A media range in `content_types`: type/subtype or type/* (RFC 9110 §8.3.1), no parameters.
_MEDIA_RANGE = re.compile(r"[A-Za-z0-9!#$&^_.+-]+/(\*|[A-Za-z0-9!#$&^_.+-]+)")


def _media_range(value: str) -> None:
    if not _MEDIA_RANGE.fullmatch(value):
        raise ValueError(f"expected type/subtype or type/*, got {value!r}")


def _octal(value: Any) -> Any:
    # PyYAML reads YAML 1.1, where 0660 is octal but 0o660 (YAML 1.2's spelling) is a string.
    if isinstance(value, str) and re.fullmatch(r"0o?[0-7]{1,4}", value):
        return int(value.removeprefix("0o"), 8)
    return value


def _mode_rule(value: int) -> Iterator[tuple[Where, str]]:
    if not 0 <= value <= _MAX_MODE:
        yield None, f"expected a file mode in 0..0o777, got {value:#o}" if value >= 0 else ""


def _dump_mode(value: int | None) -> str | None:
    return None if value is None else f"{value:#o}"


PERMISSIONS = Check(
    "in 0..0o777",
    _mode_rule,
    {"minimum": 0, "maximum": _MAX_MODE},
    alternative_schema={"type": "string", "pattern": "^0o?[0-7]{1,4}$"},
    coerce=_octal,
)


@attrs.frozen(kw_only=True)
class TlsConf:
    """The certificate a TCP listener terminates TLS with."""

    cert: str = attrs.field(validator=PATH, metadata=doc("Path of the certificate chain, PEM."))
    key: str = attrs.field(validator=PATH, metadata=doc("Path of the private key, PEM."))


def _alpn_protocol(value: object) -> None:
    if value not in ALPN_CHOICES:
        raise ValueError(f"expected one of {', '.join(ALPN_CHOICES)}, got {value!r}")


@attrs.frozen(kw_only=True)
class ListenerConf:
    """One address a service accepts connections on: TCP (`address`, maybe with `tls`) or a Unix socket."""

    __one_of__: ClassVar[tuple[str, ...]] = ("address", "path")

    address: str | None = attrs.field(
        default=None,
        validator=LISTEN_ADDRESS,
        metadata=doc("TCP address to listen on: host:port, [v6]:port; port 0 lets the OS pick."),
    )
    path: str | None = attrs.field(
        default=None, validator=PATH, metadata=doc("Unix socket path to listen on.")
    )
    permissions: int | None = attrs.field(
        default=None,
        validator=PERMISSIONS,
        metadata={
            DOC: "File mode of the Unix socket, as 0o660 or 0660; null: as the umask leaves it.",
            DUMP: _dump_mode,
        },
    )
    tls: TlsConf | None = attrs.field(
        default=None, metadata=doc("Terminate TLS on this TCP listener with this certificate and key.")
    )
    max_connections: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc(
            "Connections open at once; at the limit the listener stops accepting until one closes (new"
            " ones wait in the kernel's backlog); null: no limit."
        ),
    )
    max_connections_per_client: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Connections open at once from one client address; one more gets 503; null: no limit."),
    )
    alpn: tuple[str, ...] = attrs.field(
        default=ALPN_CHOICES,
        converter=tuple,
        validator=each(parsed_by(_alpn_protocol, "h2 or http/1.1")),
        metadata=doc(
            "With tls: the protocols offered by ALPN, preferred first (h2, http/1.1); [http/1.1] turns"
            " HTTP/2 off."
        ),
    )
    h2c: bool = attrs.field(
        default=False,
        metadata=doc("Without tls: also accept HTTP/2 in cleartext, with prior knowledge (RFC 9113 §3.3)."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.tls is not None and self.address is None:
            yield "tls", "only a TCP listener (with an address) takes tls"
        if self.permissions is not None and self.path is None:
            yield "permissions", "only a Unix socket listener (with a path) takes permissions"
        if self.h2c and self.tls is not None:
            yield "h2c", "a TLS listener negotiates HTTP/2 by alpn; h2c is for cleartext listeners"
        if not self.alpn:
            yield "alpn", "expected at least one protocol"


@attrs.frozen(kw_only=True)
class HeaderEditsConf:
    """Header changes applied to a message on its way through the proxy: removals first, then sets."""

    set: Mapping[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_mapping,
        hash=False,
        validator=each_item(HEADER_NAME, HEADER_VALUE),
        metadata=doc("Headers to set, each replacing every header of that name."),
    )
    remove: tuple[str, ...] = attrs.field(
        default=(), validator=each(HEADER_NAME), metadata=doc("Names of headers to remove.")
    )


@attrs.frozen(kw_only=True)
class CompressionConf:
    """Response compression on a route (Pingora's `ResponseCompression`), negotiated by `Accept-Encoding`."""

    gzip: int = attrs.field(
        default=DEFAULT_COMPRESSION_LEVELS["gzip"],
        validator=between(0, 9),
        metadata=doc("gzip level, 1 (fastest) to 9 (smallest); 0: never gzip."),
    )
    br: int = attrs.field(
        default=DEFAULT_COMPRESSION_LEVELS["br"],
        validator=between(0, 11),
        metadata=doc("Brotli quality, 1 to 11; 0: never brotli."),
    )
    zstd: int = attrs.field(
        default=DEFAULT_COMPRESSION_LEVELS["zstd"],
        validator=between(0, 22),
        metadata=doc("zstd level, 1 to 22; 0: never zstd."),
    )
    min_size: int = attrs.field(
        default=DEFAULT_COMPRESS_MIN_SIZE,
        validator=NON_NEGATIVE,
        metadata=doc("Bytes below which a response with a Content-Length is sent as it is."),
    )
    content_types: tuple[str, ...] = attrs.field(
        default=DEFAULT_COMPRESSIBLE_TYPES,
        validator=each(parsed_by(_media_range, "type/subtype or type/*", pattern=_MEDIA_RANGE.pattern)),
        metadata=doc("Content types to compress, as type/subtype or type/*."),
    )
    decompress: bool = attrs.field(
        default=False,
        metadata=doc(
            "Decode an upstream's gzip, br or zstd body for a client that does not accept that coding."
        ),
    )
    preserve_etag: bool = attrs.field(
        default=False,
        metadata=doc("Keep a strong ETag on a (de)compressed response; false: it becomes weak (W/)."),
    )


@attrs.frozen(kw_only=True)
class RouteConf:
    """Which requests go to which upstream cluster, and how they are handled on the way."""

    host: str | None = attrs.field(
        default=None,
        validator=parsed_by(_route_host, pattern=_ROUTE_HOST.pattern),
        metadata=doc("Match this Host (port ignored, any case); *.example.com matches its subdomains."),
    )
    path_prefix: str | None = attrs.field(
        default=None,
        validator=parsed_by(_path_prefix, pattern="^/"),
        metadata=doc("Match request paths starting with this prefix."),
    )
    header: Mapping[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_mapping,
        hash=False,
        validator=each_item(HEADER_NAME, HEADER_VALUE),
        metadata=doc("Match requests carrying each of these headers with exactly this value."),
    )
    upstream: str = attrs.field(validator=NAME, metadata=doc("Name of the upstream cluster to send to."))
    request_headers: HeaderEditsConf = attrs.field(
        factory=HeaderEditsConf, metadata=doc("Edits of the request before it goes upstream.")
    )
    response_headers: HeaderEditsConf = attrs.field(
        factory=HeaderEditsConf, metadata=doc("Edits of the response before it goes back downstream.")
    )
    compression: CompressionConf | None = attrs.field(
        default=None,
        metadata=doc("Compress responses for clients that accept it; null: responses pass as they are."),
    )
    retries: int | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc("Retries of a retry-able failure; null: up to the server's max_retries."),
    )
    connect_timeout: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc(f"Seconds to open the upstream connection; null: {DEFAULT_CONNECTION_TIMEOUT:g}."),
    )
    read_timeout: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc(f"Seconds each read from the upstream may wait; null: {DEFAULT_READ_TIMEOUT:g}."),
    )
    write_timeout: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc(f"Seconds each write to the upstream may take; null: {DEFAULT_WRITE_TIMEOUT:g}."),
    )
    total_timeout: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc(
            "Seconds to open the upstream connection including the TLS handshake (Pingora's"
            f" total_connection_timeout); null: {DEFAULT_TOTAL_CONNECTION_TIMEOUT:g}."
        ),
    )
    rate_limit: RateLimitConf | None = attrs.field(
        default=None,
        metadata=doc(
            "Requests over this limit are answered with its status (429), Retry-After and RateLimit"
            " headers (docs/rate-limiting.md); null: no limit."
        ),
    )
    cache: CacheConf | None = attrs.field(
        default=None,
        metadata=doc(
            "Answer from an HTTP cache (RFC 9111) on the server's store what it may (docs/cache.md);"
            " null: no cache."
        ),
    )


@attrs.frozen(kw_only=True)
class ServiceConf:
    """A proxy service: where it listens and how it routes."""

    name: str = attrs.field(validator=NAME, metadata=doc("The service's name, unique among services."))
    listeners: tuple[ListenerConf, ...] = attrs.field(
        validator=non_empty("listener"), metadata=doc("Where the service accepts connections.")
    )
    routes: tuple[RouteConf, ...] = attrs.field(
        validator=non_empty("route"), metadata=doc("Routes tried in order; the first that matches is taken.")
    )
    request_header_timeout: float | None = attrs.field(
        default=DEFAULT_REQUEST_HEADER_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds a client has to send a whole first request head (408); null: no limit."),
    )
    request_body_timeout: float | None = attrs.field(
        default=DEFAULT_REQUEST_BODY_TIMEOUT,
        validator=POSITIVE,
        metadata=doc(
            "Seconds a client may leave between two pieces of a request body (408); null: no limit."
        ),
    )
    keepalive_timeout: float | None = attrs.field(
        default=DEFAULT_KEEPALIVE_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds an idle keep-alive connection waits for its next request; null: no limit."),
    )
    request_timeout: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc(
            "Seconds from a request's head to the end of its response (408 or 504); null: no limit."
        ),
    )
    limits: HttpLimits = attrs.field(factory=HttpLimits, metadata=doc("How large a request may be."))
    http2: Http2Settings = attrs.field(
        factory=Http2Settings,
        metadata=doc(
            "HTTP/2 on both sides: SETTINGS, windows, flood limits, streams per upstream connection."
        ),
    )
    allow_connect_method_proxying: bool = attrs.field(
        default=False,
        metadata=doc("Forward CONNECT requests (as Pingora's switch does); false: they are answered 405."),
    )
    forwarding: Forwarding = attrs.field(
        factory=Forwarding, metadata=doc("Via and X-Forwarded-* on what is forwarded.")
    )
    access_log: AccessLogConf | None = attrs.field(
        default=None,
        metadata=doc("One line per request: {path, format: combined | json | template}; null: none."),
    )
    request_id_header: str | None = attrs.field(
        default=DEFAULT_REQUEST_ID_HEADER,
        validator=HEADER_NAME,
        metadata=doc(
            "The header a request's id comes in with (kept when well formed, else made) and goes upstream"
            " and back to the client with; null: no request ids."
        ),
    )
    opentelemetry: bool = attrs.field(
        default=False,
        metadata=doc(
            "A span per request with its phases as events, through OpenTelemetry's configured tracer"
            " provider (pip install 'actorproxy[otel]')."
        ),
    )
    trusted_proxies: tuple[str, ...] = attrs.field(
        default=(),
        validator=trusted_proxies_check(),
        metadata=doc(
            "Addresses or networks (CIDR) of the load balancers in front: a rate limit keyed by client_ip"
            " reads X-Forwarded-For or Forwarded only on connections from them."
        ),
    )
    client_ip_header: ClientIpHeader = attrs.field(
        default="x-forwarded-for",
        validator=choice(ClientIpHeader),
        metadata=doc(
            "The header those load balancers add the client's address to: x-forwarded-for or forwarded"
            " (RFC 7239); the other one is never read."
        ),
    )


for _cls in (
    TlsConf,
    ListenerConf,
    HeaderEditsConf,
    CompressionConf,
    RouteConf,
    HttpLimits,
    Forwarding,
    ServiceConf,
):
    attrs.resolve_types(_cls)
