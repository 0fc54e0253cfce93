"""How a proxy service serves: its request limits, what it adds to what it forwards, and its whole settings.

Rules:
- One record per concern, frozen, used as it is by the YAML file (a service's `limits:` and `forwarding:`
  sections structure into `HttpLimits` and `Forwarding`) and by Python (`HttpLimits(max_body_size=...)`).
- `ProxySettings` is everything one proxy service reads while it serves: its connections and its engine get
  the record, never the configuration file or the service object. It is built once, from the server's
  configuration and the service's own keys (`ServerConf.proxy_settings`), and replaced whole to change.
- Every default comes from `_defaults`.
"""

from __future__ import annotations

import attrs

from ._accesslog import DEFAULT_REQUEST_ID_HEADER, AccessLogConf
from ._checks import at_least, doc, parsed_by
from ._defaults import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_REQUEST_HEADER_TIMEOUT,
    DEFAULT_VIA_PSEUDONYM,
)
from ._http2 import Http2Settings
from ._rules import HEADER_NAME, NON_NEGATIVE, POSITIVE

__all__ = ["DEFAULT_LIMITS", "Forwarding", "HttpLimits", "ProxySettings"]

_BYTES = at_least(1)


@attrs.frozen(kw_only=True)
class HttpLimits:
    """How large a request from a client may be; past a limit the proxy answers and closes the connection.

    Attributes:
        max_request_line: bytes in the request line, without its CRLF; longer answers 414. 8 KiB, as
            nginx (`large_client_header_buffers`) and Apache (`LimitRequestLine` 8190): long enough for the
            URLs browsers and APIs produce, short enough to refuse a probe early.
        max_header_bytes: bytes in the whole head (request line, fields, the empty line); larger answers
            431. 32 KiB: nginx's default buffers hold at most 4 x 8 KiB, Node.js allows 16 KiB, Envoy
            60 KiB; large cookies and tokens fit, and the bound on memory per connection stays small.
        max_header_count: field lines in the head (and in trailers); more answers 431. 100, Apache's
            `LimitRequestFields`; Pingora allows 256, real clients send fewer than 30.
        max_body_size: bytes of request content (Content-Length, or the chunk sizes added up); more answers
            413. None (no limit) by default, as in Pingora: the body streams through without being buffered
            (only the first 64 KiB are kept for a retry), so its size costs no memory here, and the upstream
            application knows what it accepts; set it to shield upstreams that do not. 0 refuses every body.
        max_chunk_line: bytes in one chunk-size line of a chunked request body, without its CRLF; longer
            answers 400. 4 KiB: the size takes at most 20 hex digits, and chunk extensions are practically
            never sent (RFC 9112 §7.1.1); llhttp bounds them for the same reason (CVE-2024-22019).
    """

    max_request_line: int = attrs.field(
        default=8192, validator=_BYTES, metadata=doc("Bytes of the request line (414).")
    )
    max_header_bytes: int = attrs.field(
        default=32768, validator=_BYTES, metadata=doc("Bytes of the whole request head (431).")
    )
    max_header_count: int = attrs.field(default=100, validator=_BYTES, metadata=doc("Header fields (431)."))
    max_body_size: int | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc("Bytes of a request body, chunked or not (413); null: no limit."),
    )
    max_chunk_line: int = attrs.field(
        default=4096, validator=_BYTES, metadata=doc("Bytes of a chunk-size line of a chunked body (400).")
    )


#: The limits a service has unless told otherwise.
DEFAULT_LIMITS = HttpLimits()


def _pseudonym(value: object) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in " \t\r\n,;()\x00"):
        raise ValueError(f"not a pseudonym (one token, no spaces or separators): {value!r}")
    return value


@attrs.frozen(kw_only=True)
class Forwarding:
    """What the proxy adds to the requests it forwards, and which it answers itself.

    The rules that apply it are in `actorproxy.http` (`forward_request`, `forward_response`, `answer_here`).

    Attributes:
        via: the pseudonym in the Via entry the proxy adds to requests and responses it forwards (RFC 9110
            §7.6.3); None adds none.
        x_forwarded: add X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host (replaced).
            Off by default: only a proxy at the edge knows them, and an upstream must not trust them from
            anyone else.
        allow_trace: forward TRACE (and answer one whose Max-Forwards is 0 with the echo); off by default,
            TRACE is answered 405.
    """

    via: str | None = attrs.field(
        default=DEFAULT_VIA_PSEUDONYM,
        validator=parsed_by(_pseudonym, "a token"),
        metadata=doc("The pseudonym in the Via field added to requests and responses; null: no Via."),
    )
    x_forwarded: bool = attrs.field(
        default=False,
        metadata=doc("Add X-Forwarded-For (appended), X-Forwarded-Proto and X-Forwarded-Host."),
    )
    allow_trace: bool = attrs.field(
        default=False, metadata=doc("Forward TRACE requests instead of answering 405.")
    )


@attrs.frozen(kw_only=True)
class ProxySettings:
    """Everything one proxy service reads while it serves, in one frozen record.

    Attributes:
        keepalive_timeout: seconds an idle keep-alive connection waits for its next request; None: no
            limit.
        request_header_timeout: seconds a client has to send a whole first request head (408); None: no
            limit. The keep-alive timeout bounds the heads after the first.
        request_body_timeout: seconds a client may leave between two pieces of a request body (408); None:
            no limit.
        request_timeout: seconds from a request's head to the end of its response (408 or 504 while no
            response has started, then the connection is cut); None: no total deadline.
        limits: how large a request may be (`HttpLimits`).
        forwarding: Via and X-Forwarded-* on what is forwarded, TRACE (`Forwarding`).
        max_retries: tries of one request in all, the first included, while its failures are retry-able
            (Pingora's `max_retries`; 0 still makes one).
        upstream_keepalive_pool_size: idle upstream connections kept for reuse, in all.
        grace_period: seconds a request in flight may take to finish once the service drains (Pingora's
            `grace_period_seconds`); then its connection is cancelled.
        ca_file: the CA bundle upstream certificates are checked against, for peers that set none.
        client_bind_to_ipv4: source addresses for IPv4 peers that set none, one picked per connection.
        client_bind_to_ipv6: the same for IPv6 peers.
        codec: the HTTP/1.1 codec by name ("h11", "httptools"); None: `$ACTORPROXY_CODEC`, else the fastest.
        allow_connect_method_proxying: hand CONNECT requests to the phases and forward them (Pingora's
            `HttpServerOptions` switch); off, a CONNECT is answered 405 before any phase sees it.
        access_log: where and how each request is logged; None: no access log.
        request_id_header: the header a request's id comes in and goes out with (upstream and to the
            client); None: no request ids.
        opentelemetry: record a span per request with its phases as events (needs opentelemetry-api).
        http2: how the service speaks HTTP/2, downstream and upstream (`Http2Settings`).
    """

    keepalive_timeout: float | None = attrs.field(default=DEFAULT_KEEPALIVE_TIMEOUT, validator=POSITIVE)
    request_header_timeout: float | None = attrs.field(
        default=DEFAULT_REQUEST_HEADER_TIMEOUT, validator=POSITIVE
    )
    request_body_timeout: float | None = attrs.field(default=DEFAULT_REQUEST_BODY_TIMEOUT, validator=POSITIVE)
    request_timeout: float | None = attrs.field(default=None, validator=POSITIVE)
    limits: HttpLimits = DEFAULT_LIMITS
    forwarding: Forwarding = Forwarding()
    max_retries: int = attrs.field(default=DEFAULT_MAX_RETRIES, validator=NON_NEGATIVE)
    upstream_keepalive_pool_size: int = attrs.field(default=DEFAULT_POOL_SIZE, validator=NON_NEGATIVE)
    grace_period: float = attrs.field(default=DEFAULT_GRACE_PERIOD, validator=NON_NEGATIVE)
    ca_file: str | None = None
    client_bind_to_ipv4: tuple[str, ...] = ()
    client_bind_to_ipv6: tuple[str, ...] = ()
    codec: str | None = None
    allow_connect_method_proxying: bool = False
    access_log: AccessLogConf | None = None
    request_id_header: str | None = attrs.field(default=DEFAULT_REQUEST_ID_HEADER, validator=HEADER_NAME)
    opentelemetry: bool = False
    http2: Http2Settings = attrs.field(factory=Http2Settings)
