"""What the proxy changes in or answers for a message it forwards: the connection's own fields, Via,
X-Forwarded-*, Max-Forwards, TRACE.

Rules:
- Pure: functions over heads and a `Forwarding` record (`actorproxy.config`, the service's settings); the
  engine applies them to the copy of the request that goes upstream (and to the response that goes back),
  before the user's filters, so a filter can still change what they did.
- Hop-by-hop fields (RFC 9110 §7.6.1) are the connection's own business, never forwarded, and neither are
  the fields the Connection field names, except the message's framing and its Host: `Connection:
  Content-Length` (or `Host`) would otherwise leave a body without its length, or a request without the
  authority it was routed by (the codec frames the first again on the next hop). Transfer-Encoding is not
  hop-by-hop here for the same reason. An upgrade request keeps `Connection: Upgrade` and its Upgrade field:
  the switch is asked of the next hop too.
- Via (RFC 9110 §7.6.3): a proxy MUST add itself to every message it forwards, as `<received-protocol>
  <pseudonym>` (the protocol name is omitted for HTTP): `1.1 actorproxy`. An existing Via is kept, the entry
  appended to its list (several Via fields are joined into one, as §5.3 allows). The pseudonym is
  configurable; None adds nothing.
- X-Forwarded-For / -Proto / -Host (the de-facto convention; RFC 7239 `Forwarded` is its standard form),
  off by default, on per service: the client's address is appended to an existing X-Forwarded-For (a proxy
  in front of us added the ones before it); Proto and Host are replaced, since only the proxy that received
  the request knows them.
- Max-Forwards (RFC 9110 §7.6.2) on TRACE and OPTIONS: 0 means the proxy answers as the final recipient and
  forwards nothing; a larger value is decremented on the way; an invalid value answers 400. Other methods
  carry it through untouched.
- TRACE (RFC 9110 §9.3.8) is refused with 405 by default: an echo of the request reflects credentials and
  cookies to whatever script can make the client send it (cross-site tracing), and no client needs it
  from a reverse proxy; `allow_trace=True` forwards it, and a TRACE that stops here (Max-Forwards: 0) is
  answered with the request as `message/http`, credentials and cookies left out.
- OPTIONS that stops here (Max-Forwards: 0) is answered 200 with an `Allow` list of the methods the proxy
  forwards, and no content.
"""

from __future__ import annotations

import re
from typing import Any, Final

from actorproxy.config import Forwarding

from ._error import Error, ErrorSource, ErrorType
from ._header import Headers, RequestHeader, ResponseHeader

__all__ = [
    "HOP_BY_HOP",
    "MAX_FORWARDS_METHODS",
    "allowed_methods",
    "answer_here",
    "forward_request",
    "forward_response",
    "has_body",
    "has_looped",
    "is_upgrade_request",
    "remove_hop_by_hop",
]

# RFC 9110 §7.6.1: the connection's own fields. Transfer-Encoding is left out: the codec frames the body by
# it again on the next hop.
HOP_BY_HOP: Final = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})
# Fields a Connection option cannot remove: the message's framing and its Host (see the module's rules).
_KEPT_ON_THE_WAY: Final = frozenset({"transfer-encoding", "content-length", "host"})
# What an upgrade keeps of the connection's own fields.
_UPGRADE_FIELDS: Final = frozenset({"connection", "upgrade"})
# The methods a stopped OPTIONS lists in Allow: the ones RFC 9110 §9 defines and the proxy forwards.
_ALLOWED: Final = ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH")
# RFC 9110 §9.3.8: "The final recipient ... SHOULD exclude any request fields that are likely to contain
# sensitive data when that recipient generates the response content."
_SENSITIVE: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
#: RFC 9110 §7.6.2: the methods whose Max-Forwards an intermediary checks and decrements.
MAX_FORWARDS_METHODS: Final = frozenset({"TRACE", "OPTIONS"})


def allowed_methods(forwarding: Forwarding, *, connect: bool = False) -> str:
    """The `Allow` list the proxy answers with (a 405 to TRACE or CONNECT, a stopped OPTIONS): the methods
    it forwards, CONNECT when `connect` (the service proxies it) and TRACE when the service forwards it."""
    methods = [*_ALLOWED, "CONNECT"] if connect else list(_ALLOWED)
    if forwarding.allow_trace:
        methods.append("TRACE")
    return ", ".join(methods)


def answer_here(
    forwarding: Forwarding, request: RequestHeader, *, connect: bool = False
) -> tuple[ResponseHeader, bytes] | None:
    """The proxy's own answer to a TRACE or OPTIONS that must not go upstream, or None to forward it.

    `connect` says whether the service proxies CONNECT (for the `Allow` lists).

    Raises:
        Error: `HTTPStatus(400)` for an invalid Max-Forwards.
    """
    method = request.method
    if method == "TRACE" and not forwarding.allow_trace:
        return trace_refused(forwarding, connect=connect), b""
    if method not in MAX_FORWARDS_METHODS or max_forwards(request) != 0:
        return None
    return trace_echo(request) if method == "TRACE" else (options_response(forwarding, connect=connect), b"")


def has_looped(forwarding: Forwarding, request: RequestHeader) -> bool:
    """Whether the request's Via already names this proxy's pseudonym: it came back to the proxy (a route
    that points at the proxy itself), and forwarding it again would loop until connections run out. A
    proxy that adds no Via cannot tell."""
    pseudonym = forwarding.via
    headers = request.headers
    if pseudonym is None or "via" not in headers._lower:
        return False
    for value in headers._values("via"):
        for entry in value.split(","):
            # received-protocol SP received-by [ SP comment ] (RFC 9110 §7.6.3)
            parts = entry.split()
            if len(parts) >= 2 and parts[1] == pseudonym:
                return True
    return False


def forward_request(
    forwarding: Forwarding, received: RequestHeader, upstream: RequestHeader, client_addr: Any, scheme: str
) -> None:
    """Add to `upstream`, the copy of `received` that goes upstream: Via, X-Forwarded-* (when on), and
    Max-Forwards less one on a TRACE or OPTIONS.

    Args:
        forwarding: the service's rules.
        received: the request as the client sent it.
        upstream: what goes upstream; changed in place.
        client_addr: the client's address (an `(ip, port)` tuple, or a Unix socket path).
        scheme: ``"http"`` or ``"https"``, as the client spoke to the proxy.
    """
    if forwarding.via is not None:
        add_via(upstream.headers, received.version, forwarding.via)
    if forwarding.x_forwarded:
        add_x_forwarded(upstream.headers, client_addr, scheme, received.headers.get("host"))
    if received.method in MAX_FORWARDS_METHODS:
        decrement_max_forwards(upstream)


def forward_response(forwarding: Forwarding, response: ResponseHeader) -> None:
    """Add to a response on its way to the client: Via."""
    if forwarding.via is not None:
        add_via(response.headers, response.version, forwarding.via)


def remove_hop_by_hop(header: RequestHeader | ResponseHeader, *, upgrade: bool = False) -> None:
    """Drop the connection's own fields, and those the Connection field names, in one pass.

    With `upgrade`, `Connection: Upgrade` and the Upgrade field stay; the other fields Connection names
    still go.
    """
    headers = header.headers
    lower = headers._lower
    names = HOP_BY_HOP
    if "connection" in lower:
        pairs = headers._pairs
        # The usual upstream answer, one `Connection: keep-alive`, names nothing beyond HOP_BY_HOP.
        if lower.count("connection") > 1 or pairs[lower.index("connection")][1] != "keep-alive":
            values = headers._values("connection")
            named = {token.strip().lower() for value in values for token in value.split(",")}
            names = names | (named - _KEPT_ON_THE_WAY)
    elif not upgrade and names.isdisjoint(lower):
        return  # the usual request: none of them
    if not upgrade:
        headers.remove_all(names)
        return
    headers.remove_all(names - _UPGRADE_FIELDS)
    headers.set("Connection", "Upgrade")


def has_body(request: RequestHeader) -> bool:
    """Whether the request's head announces content (chunked, or a Content-Length above 0)."""
    headers = request.headers
    lower = headers._lower
    if "transfer-encoding" in lower:
        return True
    if "content-length" not in lower:
        return False
    return headers._pairs[lower.index("content-length")][1].strip() not in ("", "0")


def is_upgrade_request(request: RequestHeader) -> bool:
    """Whether the client asks to switch protocols: its first Connection field lists `upgrade` (in any case,
    as a substring) and it has an Upgrade field (Pingora's `is_upgrade_req`)."""
    headers = request.headers
    lower = headers._lower
    if "connection" not in lower or "upgrade" not in lower:
        return False
    return "upgrade" in headers._pairs[lower.index("connection")][1].lower()


def add_via(headers: Headers, version: str, pseudonym: str) -> None:
    """Append `<version> <pseudonym>` to the Via list of `headers` (one field, where the first Via was)."""
    entry = f"{version} {pseudonym}"
    # An entry of a version and a pseudonym that are valid field text keeps a parsed head trusted (the
    # codecs then write it unchecked); any other goes through the public calls, and is checked when written.
    valid = version in _VERSIONS and (_VISIBLE.get(pseudonym) or _visible(pseudonym))
    if "via" not in headers._lower:
        if valid:
            headers._add_trusted("Via", entry)
        else:
            headers.add("Via", entry)
        return
    joined = ", ".join([*headers._values("via"), entry])
    if valid:
        headers.set_valid("Via", joined)
    else:
        headers.set("Via", joined)


# HTTP versions as a start line carries them (digit.digit), and HTTP/2's and HTTP/3's: valid as field text.
_VERSIONS: Final = frozenset(f"{major}.{minor}" for major in range(10) for minor in range(10)) | {"2", "3"}
_VISIBLE_RE: Final = re.compile("[\x21-\x7e\x80-\xff]+")
# Pseudonyms found valid as field text (a service has one; the cache spares a match per message).
_VISIBLE: dict[str, bool] = {}


def _visible(text: str) -> bool:
    """Whether `text` is one or more visible latin-1 characters (VCHAR or obs-text, RFC 9110 §5.5)."""
    known = _VISIBLE.get(text)
    if known is None:
        known = _VISIBLE_RE.fullmatch(text) is not None
        if len(_VISIBLE) < 64:
            _VISIBLE[text] = known
    return known


def add_x_forwarded(headers: Headers, client_addr: Any, scheme: str, host: str | None) -> None:
    """Append the client's IP address to X-Forwarded-For; set X-Forwarded-Proto and X-Forwarded-Host.

    A client address that is not an IP one (a Unix socket) adds nothing to X-Forwarded-For.
    """
    if isinstance(client_addr, tuple) and client_addr:
        address = str(client_addr[0])
        previous = headers.get_all("x-forwarded-for")
        headers.set("X-Forwarded-For", ", ".join([*previous, address]) if previous else address)
    headers.set("X-Forwarded-Proto", scheme)
    if host is not None:
        headers.set("X-Forwarded-Host", host)


def max_forwards(header: RequestHeader) -> int | None:
    """The request's Max-Forwards (RFC 9110 §7.6.2), or None without one.

    Raises:
        Error: `HTTPStatus(400)` for a value that is not one number (several different ones, or not digits).
    """
    values = {value.strip() for value in header.headers.get_all("max-forwards")}
    if not values:
        return None
    value = values.pop()
    if values or not (value.isascii() and value.isdigit()):
        raise Error.explain(
            ErrorType.http_status(400), f"invalid Max-Forwards {value!r}", ErrorSource.DOWNSTREAM
        )
    return int(value)


def decrement_max_forwards(header: RequestHeader) -> None:
    """Lower a TRACE's or OPTIONS's Max-Forwards by one on the way upstream (it is above 0 here)."""
    value = max_forwards(header)
    if value is not None and value > 0:
        header.insert_header("Max-Forwards", str(value - 1))


def options_response(forwarding: Forwarding, *, connect: bool = False) -> ResponseHeader:
    """The answer to an OPTIONS that stops at the proxy: 200, the methods it forwards, no content."""
    return ResponseHeader(
        200, [("Allow", allowed_methods(forwarding, connect=connect)), ("Content-Length", "0")]
    )


def trace_refused(forwarding: Forwarding, *, connect: bool = False) -> ResponseHeader:
    """The answer to a TRACE when TRACE is not allowed: 405 with the `Allow` list (RFC 9110 §15.5.6)."""
    return ResponseHeader(
        405, [("Allow", allowed_methods(forwarding, connect=connect)), ("Content-Length", "0")]
    )


def trace_echo(header: RequestHeader) -> tuple[ResponseHeader, bytes]:
    """The answer to a TRACE that stops at the proxy: the request head as `message/http` (RFC 9110 §9.3.8),
    without the fields that carry credentials or cookies."""
    lines = [f"{header.method} {header.uri} HTTP/{header.version}"]
    lines += [f"{name}: {value}" for name, value in header.headers if name.lower() not in _SENSITIVE]
    body = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    response = ResponseHeader(200, [("Content-Type", "message/http"), ("Content-Length", str(len(body)))])
    return response, body
