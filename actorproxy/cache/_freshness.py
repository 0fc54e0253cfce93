"""Freshness (RFC 9111 §4.2): a stored response's lifetime, its current age, and the Age to send.

Rules, for a shared cache:
- Lifetime (§4.2.1), first that applies: the lifetime the cache decided for the response
  (`StoredResponse.lifetime`), `s-maxage`, `max-age`, `Expires` minus `Date`, then a heuristic
  (§4.2.2) only when none of those is present and the status is heuristically cacheable (RFC 9110 §15.1) or
  the response is `public`: a fraction of the time since Last-Modified, capped. Otherwise 0.
- An Expires that cannot be read (the value "0" included) is in the past (§5.3); two different Expires
  values make the response stale (§4.2.1).
- Age (§4.2.3): corrected initial age (the larger of the apparent age and the Age field corrected by the
  response delay) plus the time since it was received.
- What depends only on the stored head (its Date, its corrected initial age, its explicit lifetime) is
  computed once per `StoredResponse` (its cached `freshness` facts): a hit only adds the time resident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._fields import MAX_DELTA_SECONDS, parse_delta_seconds, parse_http_date
from ._policy import DEFAULT_POLICY, HEURISTIC_STATUSES, CachePolicy

if TYPE_CHECKING:
    from ._directives import CacheControl
    from ._entry import StoredResponse

__all__ = [
    "Freshness",
    "age_header",
    "current_age",
    "date_of",
    "freshness_facts",
    "freshness_from",
    "freshness_lifetime",
    "has_explicit_lifetime",
]


@attrs.frozen
class Freshness:
    """What a stored response's age and lifetime are computed from, read once from its head.

    Attributes:
        date: its Date, or when it was received if Date is missing or unreadable.
        initial_age: its corrected initial age (§4.2.3).
        explicit_lifetime: `s-maxage`, `max-age` or `Expires - Date` (§4.2.1); None when it states none.
    """

    date: float
    initial_age: float
    explicit_lifetime: float | None


def freshness_facts(stored: StoredResponse) -> Freshness:
    """Read `stored`'s Freshness (use `stored.freshness`, which keeps it)."""
    return freshness_from(
        stored.header("date"),
        stored.header("age"),
        stored.header_values("expires"),
        stored.cache_control,
        request_time=stored.request_time,
        response_time=stored.response_time,
    )


def freshness_from(
    date_value: str | None,
    age_value: str | None,
    expires_values: list[str],
    directives: CacheControl,
    *,
    request_time: float,
    response_time: float,
) -> Freshness:
    """The Freshness of a response with these Date, Age and Expires values and Cache-Control directives,
    asked at `request_time` and received at `response_time`."""
    parsed = parse_http_date(date_value)
    date = response_time if parsed is None else parsed
    age = parse_delta_seconds(age_value) or 0
    apparent_age = max(0.0, response_time - date)
    response_delay = max(0.0, response_time - request_time)
    initial_age = max(apparent_age, age + response_delay)
    return Freshness(date, initial_age, _explicit_lifetime(directives, expires_values, date))


def _explicit_lifetime(directives: CacheControl, expires_values: list[str], date: float) -> float | None:
    if directives.directives:
        s_maxage = directives.s_maxage
        if s_maxage is not None:
            return s_maxage
        max_age = directives.max_age
        if max_age is not None:
            return max_age
    if not expires_values:
        return None
    if len(set(expires_values)) > 1:
        return 0.0
    expires = parse_http_date(expires_values[0])
    return 0.0 if expires is None else max(0.0, expires - date)


def date_of(stored: StoredResponse) -> float:
    """The response's Date, or the time it was received when Date is missing or unreadable."""
    return stored.freshness.date


def has_explicit_lifetime(stored: StoredResponse) -> bool:
    """Whether the response states its own lifetime (s-maxage, max-age or Expires)."""
    directives = stored.cache_control
    return directives.has("s-maxage") or directives.has("max-age") or stored.header("expires") is not None


def freshness_lifetime(stored: StoredResponse, policy: CachePolicy = DEFAULT_POLICY) -> float:
    """Seconds the response is fresh for, from its Date (§4.2.1)."""
    if stored.lifetime is not None:
        return stored.lifetime
    facts = stored.freshness
    if facts.explicit_lifetime is not None:
        return facts.explicit_lifetime
    if stored.status in HEURISTIC_STATUSES or stored.cache_control.public:
        last_modified = parse_http_date(stored.header("last-modified"))
        date = facts.date
        if last_modified is not None and last_modified < date:
            return min(policy.max_heuristic_lifetime, (date - last_modified) * policy.heuristic_fraction)
    return 0.0


def current_age(stored: StoredResponse, now: float) -> float:
    """The response's age in seconds at `now` (§4.2.3)."""
    return stored.freshness.initial_age + max(0.0, now - stored.response_time)


def age_header(age: float) -> str:
    """The Age field value for an age (§5.1: whole seconds, at most 2^31)."""
    return str(min(int(max(0.0, age)), MAX_DELTA_SECONDS))
