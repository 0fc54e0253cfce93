"""Field syntax the cache reads (RFC 9110 §5.6): comma lists with quoted strings, HTTP dates, entity tags.

Pure functions over `str`; nothing here knows about caching rules. The dates read and written are
memoized (`HTTP_DATES_KEPT` of each): a cache meets the same few Date values again and again (one a second).
"""

from __future__ import annotations

import calendar
import email.utils
import functools
import math
import re
from collections.abc import Iterable, Iterator
from datetime import UTC

__all__ = [
    "HTTP_DATES_KEPT",
    "MAX_DELTA_SECONDS",
    "format_http_date",
    "list_items",
    "parse_delta_seconds",
    "parse_http_date",
    "strong_match",
    "unquote",
    "weak_match",
]

#: RFC 9111 §1.2.2: a delta-seconds value too large to represent, or a calculation that overflows, is taken
#: as 2^31.
MAX_DELTA_SECONDS = 2147483648

#: HTTP dates read, and seconds written as dates, remembered each (a few seconds' worth of Date values of
#: every origin a busy cache talks to).
HTTP_DATES_KEPT = 256

# RFC 9110 §5.6.7: IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`.
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}
_IMF_FIXDATE = re.compile(
    r"(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\d\d) (" + "|".join(_MONTHS) + r") (\d{4}) (\d\d):(\d\d):(\d\d) GMT"
)


def list_items(values: Iterable[str]) -> Iterator[str]:
    """The members of comma-separated field values (RFC 9110 §5.6.1), trimmed, empty ones left out; a comma
    inside a quoted string does not split."""
    for value in values:
        if '"' not in value:  # no quoted string: every comma splits (the common case, read in C)
            yield from filter(None, (part.strip() for part in value.split(",")))
            continue
        start = 0
        quoted = False
        escaped = False
        for index, char in enumerate(value):
            if escaped:
                escaped = False
            elif char == "\\" and quoted:
                escaped = True
            elif char == '"':
                quoted = not quoted
            elif char == "," and not quoted:
                item = value[start:index].strip()
                if item:
                    yield item
                start = index + 1
        item = value[start:].strip()
        if item:
            yield item


def unquote(value: str) -> str:
    """A quoted-string's content (RFC 9110 §5.6.4), or the value as is when it is a token."""
    if len(value) >= 2 and value[0] == value[-1] == '"':
        inner = value[1:-1]
        out = []
        escaped = False
        for char in inner:
            if escaped or char != "\\":
                out.append(char)
                escaped = False
            else:
                escaped = True
        return "".join(out)
    return value


def parse_delta_seconds(value: str | None) -> int | None:
    """delta-seconds (RFC 9111 §1.2.2): a non-negative integer, capped at 2^31; None when not digits."""
    if value is None:
        return None
    value = unquote(value.strip())
    if not value.isascii() or not value.isdigit():
        return None
    return min(int(value), MAX_DELTA_SECONDS)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 §5.6.7: IMF-fixdate, or the obsolete RFC 850 and asctime forms) as POSIX
    seconds; None when it is absent or cannot be read."""
    if value is None:
        return None
    return _parse_http_date(value)


@functools.lru_cache(maxsize=HTTP_DATES_KEPT)
def _parse_http_date(value: str) -> float | None:
    fixed = _IMF_FIXDATE.fullmatch(value.strip())
    if fixed is not None:  # what senders must send (RFC 9110 §5.6.7): read without the general parser
        day, month, year, hour, minute, second = fixed.groups()
        moment = (int(year), _MONTHS[month], int(day), int(hour), int(minute), int(second))
        if moment[2] <= 31 and moment[3] <= 23 and moment[4] <= 59 and moment[5] <= 60:
            return float(calendar.timegm((*moment, 0, 0, 0)))
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # asctime carries no zone: it is GMT by definition
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def format_http_date(seconds: float) -> str:
    """An IMF-fixdate (RFC 9110 §5.6.7): `Sun, 06 Nov 1994 08:49:37 GMT`."""
    return _format_http_date(math.floor(seconds))


@functools.lru_cache(maxsize=HTTP_DATES_KEPT)
def _format_http_date(seconds: int) -> str:
    return email.utils.formatdate(seconds, usegmt=True)


def _opaque(tag: str) -> tuple[bool, str]:
    tag = tag.strip()
    if tag.startswith("W/"):
        return True, tag[2:]
    return False, tag


def weak_match(a: str, b: str) -> bool:
    """Weak comparison of two entity tags (RFC 9110 §8.8.3.2): the opaque tags are equal, W/ or not."""
    return _opaque(a)[1] == _opaque(b)[1]


def strong_match(a: str, b: str) -> bool:
    """Strong comparison of two entity tags: neither is weak and the opaque tags are equal."""
    weak_a, opaque_a = _opaque(a)
    weak_b, opaque_b = _opaque(b)
    return not weak_a and not weak_b and opaque_a == opaque_b
