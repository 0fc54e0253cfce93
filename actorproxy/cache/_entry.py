"""`StoredResponse`: what the cache keeps of a response (its head, when it was asked and received, and the
request fields its Vary names), and the preparation of a response for storage (RFC 9111 §3.1).

Rules:
- Storing drops what a cache must not keep (§3.1): the hop-by-hop fields and those the Connection field
  names (and Transfer-Encoding: the body is stored decoded), and under a qualified `private="..."` the
  fields it lists (§5.2.2.7).
- A response without Date gets one, the time it was received (RFC 9110 §6.6.1: a recipient with a clock
  records it for a cached response).
- `to_bytes()` is the `meta` of a store body (`Store.open_writer(..., meta=...)`), readable without the
  body: a line `R1 <status> <request_time> <response_time> <lifetime or -> <reason>` (the times as
  `float.hex`, exact and cheaper than a decimal repr), then a line
  `name:value` per header field and a line `\0name:value` (`\0name` when absent) per Vary field, UTF-8.
  Field names hold no colon and no field holds a line break (RFC 9110 §5.1, §5.5); a head that does
  anyway is written as JSON, which `from_bytes` reads too (as it reads entries stored before the line
  format).
- `lifetime`, when set, is the freshness lifetime the cache's operator decided for this response (a
  route's `default_ttl` for a response that states none, or `response_cache_filter`'s override); it
  replaces the one computed from the response (RFC 9111 §4.2.2 leaves heuristics to the cache, and
  §4.2.4 allows an out-of-band contract).
"""

from __future__ import annotations

import functools
import json
from typing import Any

import attrs

from actorproxy.http import HOP_BY_HOP, Headers, RequestHeader, ResponseHeader, trust_if_writable

from ._directives import CacheControl
from ._fields import format_http_date, list_items
from ._freshness import Freshness, freshness_facts, freshness_from
from ._vary import vary_fields, vary_values

__all__ = ["StoredResponse", "prepare_for_storage"]

# Compact JSON; one encoder for all (json.dumps with options makes a new one per call).
_ENCODER = json.JSONEncoder(separators=(",", ":"))
# The first bytes of the line format (see the module rules); JSON starts with "{".
_LINES = "R1 "
# The first character of a Vary line of the line format.
_VARY_LINE = "\0"
# RFC 9111 §3.1: the connection's own fields are not stored. Transfer-Encoding goes too: the body is
# stored decoded, and a hit is sent with the stored length.
_NOT_STORED = HOP_BY_HOP | {"transfer-encoding"}
# The fields a stored response's freshness facts and directives are read from (`freshness_facts`).
_READ_FOR_FRESHNESS = frozenset({"date", "age", "expires", "cache-control"})


@attrs.frozen(kw_only=True)
class StoredResponse:
    """A stored response's head and the facts its age and variant are computed from.

    Attributes:
        status: the status code.
        reason: the reason phrase.
        headers: the header fields as stored, in order.
        request_time: when the request that got it was sent (POSIX seconds; RFC 9111 §4.2.3).
        response_time: when it was received.
        vary: (lowercase field name, the request's value or None when absent) for each field its Vary names.
        lifetime: seconds it is fresh for, as the cache decided (see the module rules); None: computed
            from the response (RFC 9111 §4.2.1).
    """

    status: int
    reason: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    request_time: float
    response_time: float
    vary: tuple[tuple[str, str | None], ...] = ()
    lifetime: float | None = None

    def fields(self) -> Headers:
        """The header fields, as a fresh `Headers`."""
        return self._fields.copy()

    @functools.cached_property
    def _fields(self) -> Headers:
        # Copied for each answer: the copy keeps the lowercase names, made once here, and the mark of fields
        # valid to write as they are, checked once here rather than at each answer's write.
        fields = Headers(self.headers)
        trust_if_writable(fields)
        return fields

    def header(self, name: str) -> str | None:
        """The first value of a field, or None."""
        return self._fields.get(name)

    def header_values(self, name: str) -> list[str]:
        """Every value of a field, in order."""
        return self._fields.get_all(name)

    @functools.cached_property
    def freshness(self) -> Freshness:
        """Its Date, corrected initial age and explicit lifetime (RFC 9111 §4.2), read once."""
        return freshness_facts(self)

    @functools.cached_property
    def cache_control(self) -> CacheControl:
        """The response's Cache-Control directives (parsed once: every lookup reads them)."""
        return CacheControl.parse(self._fields)

    def response(self) -> ResponseHeader:
        """The stored head as a new `ResponseHeader` (to change and send)."""
        return ResponseHeader(self.status, self.fields(), reason=self.reason)

    def to_bytes(self) -> bytes:
        """The record as bytes (for a store body's meta; see the module rules)."""
        lifetime = "-" if self.lifetime is None else float(self.lifetime).hex()
        times = f"{float(self.request_time).hex()} {float(self.response_time).hex()} {lifetime}"
        headers = self.headers
        lines = [f"{_LINES}{self.status} {times} {self.reason}", *map(":".join, headers)]
        if self.vary:
            lines += [
                f"{_VARY_LINE}{name}" if value is None else f"{_VARY_LINE}{name}:{value}"
                for name, value in self.vary
            ]
        text = "\n".join(lines)
        names = "".join([name for name, _ in headers])
        if text.count("\n") != len(lines) - 1 or ":" in names or "\n" in self.reason:
            return self._to_json()
        return text.encode("utf-8", "surrogatepass")

    def _to_json(self) -> bytes:
        record = {
            "status": self.status,
            "reason": self.reason,
            "headers": self.headers,
            "request_time": self.request_time,
            "response_time": self.response_time,
            "vary": self.vary,
            "lifetime": self.lifetime,
        }
        return _ENCODER.encode(record).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> StoredResponse:
        """The record `to_bytes` wrote.

        Raises:
            ValueError: the bytes are not such a record.
        """
        if data.startswith(b"{"):
            return cls._from_json(data)
        try:
            text = data.decode("utf-8", "surrogatepass")
            if not text.startswith(_LINES):
                raise ValueError("no record line")
            first, *rest = text.split("\n")
            _, status, request_time, response_time, lifetime, reason = first.split(" ", 5)
            headers: list[tuple[str, str]] = []
            vary: list[tuple[str, str | None]] = []
            for line in rest:
                if line.startswith(_VARY_LINE):
                    name, colon, value = line[1:].partition(":")
                    vary.append((name, value if colon else None))
                else:
                    name, _, value = line.partition(":")
                    headers.append((name, value))
            return cls(
                status=int(status),
                reason=reason,
                headers=tuple(headers),
                request_time=float.fromhex(request_time),
                response_time=float.fromhex(response_time),
                vary=tuple(vary),
                lifetime=None if lifetime == "-" else float.fromhex(lifetime),
            )
        except ValueError as exc:  # UnicodeDecodeError is one
            raise ValueError(f"not a stored response: {exc}") from exc

    @classmethod
    def _from_json(cls, data: bytes) -> StoredResponse:
        try:
            raw: dict[str, Any] = json.loads(data)
            return cls(
                status=int(raw["status"]),
                reason=str(raw["reason"]),
                headers=tuple((str(name), str(value)) for name, value in raw["headers"]),
                request_time=float(raw["request_time"]),
                response_time=float(raw["response_time"]),
                vary=tuple((str(name), None if value is None else str(value)) for name, value in raw["vary"]),
                lifetime=None if raw.get("lifetime") is None else float(raw["lifetime"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a stored response: {exc}") from exc


def _connection_options(values: list[str]) -> set[str]:
    """The lowercase field names Connection values list (RFC 9110 §7.6.1)."""
    if any('"' in value for value in values):
        return {item.lower() for item in list_items(values)}
    # Tokens only, the usual case: split in C (an empty item names no field, so it may stay).
    return {item.strip().lower() for value in values for item in value.split(",")}


def prepare_for_storage(
    request: RequestHeader,
    response: ResponseHeader,
    *,
    request_time: float,
    response_time: float,
    lifetime: float | None = None,
) -> StoredResponse:
    """The `StoredResponse` to keep for `response` to `request` (call only when `storable` said yes).

    Args:
        request: the request as the client sent it (its fields named by Vary are kept).
        response: the response as received from upstream.
        request_time: when the request was sent upstream.
        response_time: when the response head was received.
        lifetime: the freshness lifetime the cache decided (see the module rules); None: the response's.
    """
    headers = response.headers
    pairs = headers.items()
    names = [name.lower() for name, _ in pairs]
    dropped = _NOT_STORED
    if "connection" in names:
        options = _connection_options(headers.get_all("connection"))
        if not options <= dropped:  # (`Connection: keep-alive` names a field dropped anyway)
            dropped = dropped | options
    directives = CacheControl.parse(headers)
    if "private" in directives.directives:
        dropped = dropped | directives.fields("private")
    kept = [pair for pair, name in zip(pairs, names, strict=True) if name not in dropped]
    date = None if "date" in dropped or "date" not in names else headers.get("date")
    if date is None:
        date = format_http_date(response_time)
        kept.append(("Date", date))
    fields = vary_fields(headers)
    stored = StoredResponse(
        status=response.status,
        reason=response.reason,
        headers=tuple(kept),
        request_time=request_time,
        response_time=response_time,
        vary=vary_values(fields, request) if fields else (),
        lifetime=lifetime,
    )
    if _READ_FOR_FRESHNESS.isdisjoint(dropped):
        # The fields freshness reads were all kept: read here from the response's, already indexed.
        age = headers.get("age") if "age" in names else None
        expires = headers.get_all("expires") if "expires" in names else []
        facts = freshness_from(
            date, age, expires, directives, request_time=request_time, response_time=response_time
        )
        object.__setattr__(stored, "cache_control", directives)
        object.__setattr__(stored, "freshness", facts)
    return stored
