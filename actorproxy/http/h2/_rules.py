"""HTTP/2 fields: RFC 9113 §8.2-8.3's checks on what a peer sends, and the translation to and from the heads
the phases see (RFC 9113 §8.2.2, §8.3.1).

Rules:
- A request from a client passes every check before any phase sees it; a violation is a `MalformedStream`
  (the stream is reset with PROTOCOL_ERROR, RFC 9113 §8.1.1; its siblings go on). The checks: field names
  are lowercase tokens; no value holds CR, LF or NUL, nor starts or ends with a space or tab, nor any
  other control character; pseudo-header fields are the request's four, each once, all before the
  regular fields; no connection-specific field (Connection, Keep-Alive, Proxy-Connection,
  Transfer-Encoding, Upgrade) and TE only as "trailers"; `:method` always, `:scheme` and a non-empty
  `:path` (starting with / or `*` for OPTIONS) unless CONNECT (which has `:authority` and neither of
  them); `:method` a token; `:authority` and Host name the
  same origin when both are there. Those rules are what closes request smuggling on an h2 -> h1
  downgrade: nothing that frames or ends an HTTP/1.1 message can reach an upstream through a field.
- A request becomes an HTTP/1.1-shaped `RequestHeader` of version "2": Host from `:authority` (first,
  when the request had none), the target from `:path`, the Cookie fields joined with "; " (RFC 9113
  §8.2.3), and `Transfer-Encoding: chunked` when it has a body without Content-Length, so that an
  HTTP/1.1 upstream gets it framed (the phases see that field; it is the message's framing in the
  HTTP/1.1 model they are written for). Fields that pass these checks are valid to write unchecked
  (`Headers._from_parsed`).
- What goes out as HTTP/2 (a response to a client, a request to an upstream) loses the connection-specific
  fields and those its Connection field names, gets its names lowercased, and is checked field by field
  unless its head is trusted; a value that cannot be sent is an `INTERNAL` error before anything is sent.
  A request to an h2 upstream says `te: trailers`: the proxy accepts trailers on every stream (it forwards
  them), and gRPC servers refuse a request without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader

__all__ = [
    "CONNECTION_SPECIFIC",
    "MalformedStream",
    "request_from_h2",
    "request_to_h2",
    "response_from_h2",
    "response_to_h2",
    "trailers_from_h2",
    "trailers_to_h2",
]

#: RFC 9113 §8.2.2: fields that mean something only to one HTTP/1.1 connection.
CONNECTION_SPECIFIC = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
_REQUEST_PSEUDO = frozenset({b":method", b":scheme", b":authority", b":path"})
# RFC 9110 §5.1 (token) and §5.5 (field-value), in bytes; names lowercase (RFC 9113 §8.2.1).
_NAME = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_VALUE = re.compile(rb"(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")
_METHOD = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NAME_TEXT = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_VALUE_TEXT = re.compile(r"(?:[\x21-\x7e\x80-\xff](?:[\t \x21-\x7e\x80-\xff]*[\x21-\x7e\x80-\xff])?)?")


class MalformedStream(Exception):
    """A peer's message breaks RFC 9113 §8: the stream is reset with PROTOCOL_ERROR."""


def _field(name: bytes, value: bytes) -> None:
    if _NAME.fullmatch(name) is None:
        raise MalformedStream(f"field name {name[:40]!r}: not a lowercase token")
    if _VALUE.fullmatch(value) is None:
        raise MalformedStream(f"field {name.decode('latin-1')}: a control character or surrounding space")


def request_from_h2(fields: Iterable[tuple[bytes, bytes]], *, end_stream: bool) -> RequestHeader:
    """The request a client's HEADERS carry, checked (see the module rules).

    Args:
        fields: the decoded header list, in order.
        end_stream: the HEADERS frame ended the stream (no body).

    Raises:
        MalformedStream: a rule was broken.
    """
    pseudo: dict[bytes, bytes] = {}
    pairs: list[tuple[str, str]] = []
    lower: list[str] = []
    cookies: list[str] = []
    regular = False
    host: str | None = None
    length: str | None = None
    for name, value in fields:
        if name[:1] == b":":
            _pseudo_field(pseudo, name, value, after_regular=regular)
            continue
        regular = True
        _field(name, value)
        text = name.decode("latin-1")
        if text in CONNECTION_SPECIFIC:
            raise MalformedStream(f"connection-specific field {text!r}")
        value_text = value.decode("latin-1")
        if text == "te":
            if value_text.lower() != "trailers":
                raise MalformedStream("TE other than trailers")
        elif text == "cookie":
            cookies.append(value_text)
            continue
        elif text == "host":
            if host is not None:
                raise MalformedStream("Host twice")
            host = value_text
        elif text == "content-length":
            if not value_text.isdigit() or (length is not None and length != value_text):
                raise MalformedStream("an invalid Content-Length")
            length = value_text
        pairs.append((text, value_text))
        lower.append(text)
    method, target = _request_target(pseudo)
    authority = pseudo.get(b":authority")
    if authority is not None:
        authority_text = authority.decode("latin-1")
        if host is None:
            pairs.insert(0, ("host", authority_text))
            lower.insert(0, "host")
        elif host.lower().rstrip(".") != authority_text.lower().rstrip("."):
            raise MalformedStream(":authority and Host differ")
    if cookies:
        pairs.append(("cookie", "; ".join(cookies)))
        lower.append("cookie")
    if not end_stream and length is None:
        pairs.append(("transfer-encoding", "chunked"))
        lower.append("transfer-encoding")
    return RequestHeader(method.decode("latin-1"), target, Headers._from_parsed(pairs, lower), "2")


def _pseudo_field(pseudo: dict[bytes, bytes], name: bytes, value: bytes, *, after_regular: bool) -> None:
    if after_regular:
        raise MalformedStream(f"pseudo-header {name!r} after a regular field")
    if name not in _REQUEST_PSEUDO:
        raise MalformedStream(f"pseudo-header {name!r} is not a request's")
    if name in pseudo:
        raise MalformedStream(f"pseudo-header {name!r} twice")
    if b"\r" in value or b"\n" in value or b"\0" in value:
        raise MalformedStream(f"pseudo-header {name!r}: a control character")
    pseudo[name] = value


def _request_target(pseudo: dict[bytes, bytes]) -> tuple[bytes, str]:
    """The method and the request target the pseudo-header fields name (RFC 9113 §8.3.1)."""
    method = pseudo.get(b":method")
    if not method or _METHOD.fullmatch(method) is None:
        raise MalformedStream("no :method, or one that is not a token")
    authority = pseudo.get(b":authority")
    if method == b"CONNECT":
        if b":scheme" in pseudo or b":path" in pseudo or not authority:
            raise MalformedStream("CONNECT takes :authority alone")
        return method, authority.decode("latin-1")
    path = pseudo.get(b":path")
    if b":scheme" not in pseudo or not path:
        raise MalformedStream("no :scheme or :path")
    if path == b"*":
        if method != b"OPTIONS":
            raise MalformedStream(":path * is for OPTIONS only")
    elif path[:1] != b"/" and pseudo[b":scheme"] in (b"http", b"https"):
        raise MalformedStream(":path neither starts with / nor is *")
    return method, path.decode("latin-1")


def _regular(fields: Iterable[tuple[bytes, bytes]], what: str) -> tuple[list[tuple[str, str]], list[str]]:
    pairs: list[tuple[str, str]] = []
    lower: list[str] = []
    for name, value in fields:
        if name[:1] == b":":
            raise MalformedStream(f"pseudo-header {name!r} in {what}")
        _field(name, value)
        text = name.decode("latin-1")
        if text in CONNECTION_SPECIFIC:
            raise MalformedStream(f"connection-specific field {text!r} in {what}")
        pairs.append((text, value.decode("latin-1")))
        lower.append(text)
    return pairs, lower


def response_from_h2(fields: list[tuple[bytes, bytes]]) -> ResponseHeader:
    """The response an upstream's HEADERS carry, checked like a request's.

    Raises:
        MalformedStream: no valid `:status` first, or a field breaks a rule.
    """
    if not fields or fields[0][0] != b":status":
        raise MalformedStream("no :status first")
    status = fields[0][1]
    if len(status) != 3 or not status.isdigit():
        raise MalformedStream(f":status {status!r}")
    pairs, lower = _regular(fields[1:], "a response")
    return ResponseHeader(int(status), Headers._from_parsed(pairs, lower), version="2")


def trailers_from_h2(fields: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Trailer fields, checked (no pseudo-header, nothing connection-specific)."""
    pairs, lower = _regular(fields, "trailers")
    return Headers._from_parsed(pairs, lower)


def _outgoing(headers: Headers, skip: frozenset[str], out: list[tuple[bytes, bytes]]) -> None:
    """Append `headers` to `out` as HTTP/2 fields, without the connection-specific ones and `skip`."""
    pairs, names, trusted = headers._fields()
    named: set[str] = set()
    if "connection" in names:
        for value in headers._values("connection"):
            named.update(token.strip().lower() for token in value.split(","))
    for (name, value), low in zip(pairs, names, strict=True):
        if low in CONNECTION_SPECIFIC or low in skip or low in named:
            continue
        if low == "te" and value.strip().lower() != "trailers":
            continue
        if not trusted and (_NAME_TEXT.fullmatch(name) is None or _VALUE_TEXT.fullmatch(value) is None):
            raise Error.explain(
                ErrorType.INVALID_HTTP_HEADER, f"field {name!r}: not valid in HTTP/2", ErrorSource.INTERNAL
            )
        try:
            out.append((low.encode("latin-1"), value.encode("latin-1")))
        except UnicodeEncodeError as exc:
            raise Error.because(
                ErrorType.INVALID_HTTP_HEADER, f"field {name!r}: not latin-1", exc, ErrorSource.INTERNAL
            ) from exc


_NONE: frozenset[str] = frozenset()
# The TE a request may carry was the client's, to its hop, and went with the hop-by-hop fields; what goes
# upstream says what the proxy accepts: trailers, always (it forwards them). gRPC servers require it.
_REQUEST_SKIP = frozenset({"host", "te"})
_TE_TRAILERS = (b"te", b"trailers")


def response_to_h2(header: ResponseHeader) -> list[tuple[bytes, bytes]]:
    """A response head as HTTP/2 fields (`:status` first).

    Raises:
        Error: `INTERNAL` for a field that cannot be sent.
    """
    out = [(b":status", str(header.status).encode("ascii"))]
    _outgoing(header.headers, _NONE, out)
    return out


def request_to_h2(header: RequestHeader, scheme: str) -> list[tuple[bytes, bytes]]:
    """A request head as HTTP/2 fields: `:authority` from its Host (or absolute target), `:path` from its
    target.

    Raises:
        Error: `INTERNAL` for a field that cannot be sent.
    """
    target = header.uri
    authority = header.headers.get("host")
    if target[:1] not in ("/", "*"):
        parts = urlsplit(target)
        authority = authority or parts.netloc
        target = parts.path or "/"
        if parts.query:
            target += "?" + parts.query
    out = [
        (b":method", header.method.encode("latin-1")),
        (b":scheme", scheme.encode("ascii")),
        (b":authority", (authority or "").encode("latin-1")),
        (b":path", target.encode("latin-1")),
    ]
    if not authority:
        del out[2]
    _outgoing(header.headers, _REQUEST_SKIP, out)
    out.append(_TE_TRAILERS)
    return out


def trailers_to_h2(trailers: Headers) -> list[tuple[bytes, bytes]]:
    """Trailer fields as HTTP/2 fields."""
    out: list[tuple[bytes, bytes]] = []
    _outgoing(trailers, _NONE, out)
    return out
