"""`CachePolicy`: the few choices RFC 9111 leaves to a cache, and the constants the rules are built on."""

from __future__ import annotations

import http

import attrs

__all__ = [
    "DEFAULT_POLICY",
    "ERROR_STATUSES",
    "HEURISTIC_STATUSES",
    "SAFE_METHODS",
    "UNDERSTOOD_STATUSES",
    "CachePolicy",
]

#: RFC 9110 §15.1: the status codes that are heuristically cacheable.
HEURISTIC_STATUSES = frozenset({200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501})
#: RFC 9110 §9.2.1: safe methods; any other method with a non-error answer invalidates (RFC 9111 §4.4).
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
#: RFC 5861 §4: an error is what would answer 500, 502, 503 or 504.
ERROR_STATUSES = frozenset({500, 502, 503, 504})
#: The final status codes whose caching requirements this cache knows (those registered in RFC 9110), for
#: `must-understand` (RFC 9111 §5.2.2.3). 206 and 304 are known but never stored (see `storable`).
UNDERSTOOD_STATUSES = frozenset(status.value for status in http.HTTPStatus if status.value >= 200)

# RFC 9111 §4.2.2 suggests 10% of the time since Last-Modified; browsers and Squid use the same fraction.
DEFAULT_HEURISTIC_FRACTION = 0.1
# A cap on heuristic freshness: one day (Squid's refresh_pattern default max is 3 days, Firefox's 1 week;
# a proxy shared by many clients errs shorter).
DEFAULT_MAX_HEURISTIC_LIFETIME = 86400.0


@attrs.frozen(kw_only=True)
class CachePolicy:
    """What the cache may decide for itself.

    Attributes:
        cacheable_methods: methods whose responses are stored (HEAD is answered from a stored GET).
        heuristic_fraction: share of the time since Last-Modified a response stays fresh when it carries no
            explicit lifetime and its status allows heuristics (RFC 9111 §4.2.2).
        max_heuristic_lifetime: seconds a heuristic lifetime never exceeds.
        stale_while_revalidate: seconds a stale response without its own `stale-while-revalidate` may be
            served while it is revalidated (RFC 5861 §3, given by the operator: RFC 9111 §4.2.4's
            out-of-band contract); None: only what responses say.
        stale_if_error: the same for `stale-if-error` (RFC 5861 §4); None: only what messages say.
    """

    cacheable_methods: frozenset[str] = frozenset({"GET"})
    heuristic_fraction: float = DEFAULT_HEURISTIC_FRACTION
    max_heuristic_lifetime: float = DEFAULT_MAX_HEURISTIC_LIFETIME
    stale_while_revalidate: float | None = None
    stale_if_error: float | None = None


#: The policy every function uses unless given one.
DEFAULT_POLICY = CachePolicy()
