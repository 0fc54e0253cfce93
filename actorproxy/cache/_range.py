"""Range requests answered from a complete stored body (RFC 9110 §14).

Rules:
- Only a GET, on a stored 200, with a `bytes` Range is considered; any other unit, a Range that does not
  parse, or a first position after the last (an invalid range-spec) is ignored and the whole body is sent
  (§14.2: a server may ignore Range).
- If-Range (§13.1.5) keeps the Range only when it names the stored response: a strong ETag match, or a
  date equal to a Last-Modified that is strong (at least a second before Date, §8.8.2.2). Otherwise 200.
- One satisfiable range: 206 with Content-Range. Several ranges: 200 with the whole body (the choice made
  here: no multipart/byteranges; a client that asks several ranges still gets what it needs). No
  satisfiable range: 416 with `Content-Range: bytes */size` (§15.5.17).
"""

from __future__ import annotations

import attrs

from actorproxy.http import RequestHeader

from ._entry import StoredResponse
from ._fields import parse_http_date, strong_match
from ._freshness import date_of

__all__ = ["RangePlan", "plan_range"]


@attrs.frozen
class RangePlan:
    """What to send of a stored body.

    Attributes:
        status: 200 (all of it), 206 (the range) or 416 (nothing: the range cannot be satisfied).
        start: first byte to send.
        end: one past the last byte to send (`start == end`: no body).
        size: the whole body's length.
    """

    status: int
    start: int
    end: int
    size: int

    @property
    def content_range(self) -> str | None:
        """The Content-Range field value for a 206 or 416, None for a 200."""
        if self.status == 206:
            return f"bytes {self.start}-{self.end - 1}/{self.size}"
        if self.status == 416:
            return f"bytes */{self.size}"
        return None


def _if_range_holds(value: str, stored: StoredResponse) -> bool:
    value = value.strip()
    if value.startswith(('"', "W/")):
        etag = stored.header("etag")
        return etag is not None and strong_match(value, etag)
    date = parse_http_date(value)
    last_modified = parse_http_date(stored.header("last-modified"))
    if date is None or last_modified is None or date != last_modified:
        return False
    return last_modified <= date_of(stored) - 1


def _spec(spec: str, size: int) -> tuple[int, int] | bool | None:
    """One range-spec as [start, end): the range; None when unsatisfiable; False when it does not parse."""
    first, dash, last = spec.strip().partition("-")
    if not dash or not (first.isdigit() or not first) or not (last.isdigit() or not last):
        return False
    if not first:
        if not last:
            return False
        suffix = int(last)
        return (max(0, size - suffix), size) if suffix > 0 and size > 0 else None
    start = int(first)
    stop = size if not last else int(last) + 1
    if last and stop <= start:
        return False
    return (start, min(stop, size)) if start < size else None


def plan_range(request: RequestHeader, stored: StoredResponse, size: int) -> RangePlan:
    """What part of the stored body of `size` bytes answers `request`."""
    whole = RangePlan(200, 0, size, size)
    value = request.headers.get("range")
    if value is None or request.method != "GET" or stored.status != 200:
        return whole
    if_range = request.headers.get("if-range")
    if if_range is not None and not _if_range_holds(if_range, stored):
        return whole
    unit, equals, specs = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":
        return whole
    parts = [part for part in specs.split(",") if part.strip()]
    if not parts:
        return whole
    ranges = [_spec(part, size) for part in parts]
    if any(found is False for found in ranges):
        return whole
    satisfiable = [found for found in ranges if isinstance(found, tuple)]
    if not satisfiable:
        return RangePlan(416, 0, 0, size)
    if len(parts) > 1:
        return whole
    start, end = satisfiable[0]
    return RangePlan(206, start, end, size)
