"""The lookup decision (RFC 9111 §4, RFC 5861): may a stored response answer this request, and how.

`lookup(request, stored, now)` gives a `Lookup`: an `Outcome`, the reason, the age and lifetime it was
decided on. The cache phases turn it into `x-cache` (`Lookup.x_cache`): FRESH is a HIT, STALE and
STALE_WHILE_REVALIDATE a STALE, MUST_REVALIDATE a MISS unless the revalidation answers 304 (REVALIDATED),
BYPASS a BYPASS.

Rules, in order:
- Only GET and HEAD are looked up (HEAD is answered from a stored GET); anything else is BYPASS.
- No stored response, one whose Vary does not match (§4.1), or one a request with Authorization may not
  reuse (§3.5) is a MISS; with `only-if-cached` in the request it is UNAVAILABLE: answer 504 (§5.2.1.7).
- `no-cache` in the response or the request: MUST_REVALIDATE, fresh or not (§5.2.2.4, §5.2.1.4).
- Fresh (age < lifetime) and within the request's `max-age` and `min-fresh` (§5.2.1.1, §5.2.1.3): FRESH.
- Stale: served only where it is allowed and nothing forbids it (§4.2.4). `must-revalidate`,
  `proxy-revalidate` and `s-maxage` forbid it (§5.2.2.2, §5.2.2.8, §5.2.2.10). The request's `max-stale`
  allows it (§5.2.1.2): STALE. The response's `stale-while-revalidate` allows it within its window unless
  the request asked for fresher (`max-age`, `min-fresh`): STALE_WHILE_REVALIDATE, and the cache
  revalidates in the background. A response without the directive gets the policy's window, if any.
- Otherwise MUST_REVALIDATE (or UNAVAILABLE with `only-if-cached`).
- `stale_if_error` says separately whether a stale response may answer when revalidating it failed
  (RFC 5861 §4: a 500, 502, 503 or 504, or no answer); the policy's window stands in for a response
  without the directive.
"""

from __future__ import annotations

import enum

import attrs

from actorproxy.http import RequestHeader

from ._directives import CacheControl
from ._entry import StoredResponse
from ._freshness import current_age, freshness_lifetime
from ._policy import DEFAULT_POLICY, CachePolicy
from ._storable import authorization_allows
from ._vary import normalized_value

__all__ = ["LOOKUP_METHODS", "Lookup", "Outcome", "XCache", "lookup", "stale_if_error", "vary_matches"]

#: Methods answered from the cache: GET, and HEAD from a stored GET (RFC 9110 §9.3.2).
LOOKUP_METHODS = frozenset({"GET", "HEAD"})


class Outcome(enum.Enum):
    """What to do with a request, given what the cache holds."""

    #: Serve the stored response.
    FRESH = "fresh"
    #: Serve the stored response, stale, as the client allowed (max-stale).
    STALE = "stale"
    #: Serve the stored response, stale, and revalidate it in the background (stale-while-revalidate).
    STALE_WHILE_REVALIDATE = "stale-while-revalidate"
    #: Revalidate with the origin first (a conditional request when the stored response has validators).
    MUST_REVALIDATE = "must-revalidate"
    #: Nothing usable: go to the origin, and store what may be stored.
    MISS = "miss"
    #: The cache is not used for this request at all.
    BYPASS = "bypass"
    #: The client sent only-if-cached and nothing usable is stored: answer 504 (RFC 9111 §5.2.1.7).
    UNAVAILABLE = "unavailable"


class XCache(enum.Enum):
    """The `x-cache` values the cache phases send."""

    HIT = "HIT"
    MISS = "MISS"
    STALE = "STALE"
    REVALIDATED = "REVALIDATED"
    BYPASS = "BYPASS"


_X_CACHE = {
    Outcome.FRESH: XCache.HIT,
    Outcome.STALE: XCache.STALE,
    Outcome.STALE_WHILE_REVALIDATE: XCache.STALE,
    Outcome.MUST_REVALIDATE: XCache.MISS,
    Outcome.MISS: XCache.MISS,
    Outcome.BYPASS: XCache.BYPASS,
    Outcome.UNAVAILABLE: XCache.MISS,
}


@attrs.frozen
class Lookup:
    """A lookup's decision.

    Attributes:
        outcome: what to do.
        reason: why, in words (for logs and debugging headers).
        age: the stored response's current age in seconds (0 without one).
        lifetime: its freshness lifetime in seconds (0 without one).
    """

    outcome: Outcome
    reason: str
    age: float = 0.0
    lifetime: float = 0.0

    @property
    def staleness(self) -> float:
        """Seconds past the lifetime (negative while fresh)."""
        return self.age - self.lifetime

    @property
    def serves_stored(self) -> bool:
        """Whether the stored response answers the request now (FRESH, STALE, STALE_WHILE_REVALIDATE)."""
        return self.outcome in (Outcome.FRESH, Outcome.STALE, Outcome.STALE_WHILE_REVALIDATE)

    def x_cache(self, *, revalidated: bool = False) -> XCache:
        """The `x-cache` value; `revalidated`: a MUST_REVALIDATE whose revalidation answered 304."""
        if revalidated and self.outcome is Outcome.MUST_REVALIDATE:
            return XCache.REVALIDATED
        return _X_CACHE[self.outcome]


def vary_matches(stored: StoredResponse, request: RequestHeader) -> bool:
    """Whether `request` selects `stored` under its Vary (§4.1)."""
    return all(normalized_value(request.headers, name) == value for name, value in stored.vary)


def lookup(
    request: RequestHeader, stored: StoredResponse | None, now: float, policy: CachePolicy = DEFAULT_POLICY
) -> Lookup:
    """The decision for `request`, given the stored response its key found (None: nothing stored)."""
    if request.method not in LOOKUP_METHODS:
        return Lookup(Outcome.BYPASS, f"method {request.method} is not answered from the cache")
    asked = CacheControl.parse(request.headers)
    miss = Outcome.UNAVAILABLE if asked.only_if_cached else Outcome.MISS
    if stored is None:
        return Lookup(miss, "nothing stored")
    if not vary_matches(stored, request):
        return Lookup(miss, "no stored variant matches the request's Vary fields")
    directives = stored.cache_control
    if "authorization" in request.headers and not authorization_allows(directives):
        return Lookup(miss, "a request with Authorization may not reuse this response")
    age = current_age(stored, now)
    lifetime = freshness_lifetime(stored, policy)
    revalidate = Outcome.UNAVAILABLE if asked.only_if_cached else Outcome.MUST_REVALIDATE
    if directives.no_cache or asked.no_cache:
        side = "response" if directives.no_cache else "request"
        return Lookup(revalidate, f"no-cache in the {side}", age, lifetime)
    stale = age >= lifetime
    if not stale and not asked.directives:  # the request asks nothing of its own: fresh is enough
        return Lookup(Outcome.FRESH, "fresh", age, lifetime)
    too_old = asked.request_max_age is not None and age > asked.request_max_age
    min_fresh = asked.min_fresh
    not_fresh_enough = min_fresh is not None and lifetime - age < min_fresh
    if not stale and not too_old and not not_fresh_enough:
        return Lookup(Outcome.FRESH, "fresh", age, lifetime)
    if not stale:
        return Lookup(revalidate, "fresh, but not as fresh as the request asks", age, lifetime)
    staleness = age - lifetime
    if directives.must_revalidate or directives.proxy_revalidate or directives.has("s-maxage"):
        return Lookup(revalidate, "stale, and the response forbids serving it stale", age, lifetime)
    max_stale = asked.max_stale
    if max_stale is not None and staleness <= max_stale and not too_old and not not_fresh_enough:
        return Lookup(Outcome.STALE, "stale within the request's max-stale", age, lifetime)
    window: float | None = directives.stale_while_revalidate
    if window is None:
        window = policy.stale_while_revalidate
    asked_fresher = asked.request_max_age is not None or min_fresh is not None
    if window is not None and staleness <= window and not asked_fresher:
        return Lookup(Outcome.STALE_WHILE_REVALIDATE, "stale within stale-while-revalidate", age, lifetime)
    return Lookup(revalidate, "stale", age, lifetime)


def stale_if_error(
    request: RequestHeader, stored: StoredResponse, now: float, policy: CachePolicy = DEFAULT_POLICY
) -> bool:
    """Whether `stored` may answer `request` stale because revalidating it failed (RFC 5861 §4): the
    response's or the request's `stale-if-error` covers its staleness, and nothing forbids stale use."""
    directives = stored.cache_control
    if directives.must_revalidate or directives.proxy_revalidate or directives.has("s-maxage"):
        return False
    if directives.no_cache:
        return False
    own: float | None = directives.stale_if_error
    if own is None:
        own = policy.stale_if_error
    windows = [w for w in (own, CacheControl.parse(request.headers).stale_if_error) if w]
    if not windows:
        return False
    staleness = current_age(stored, now) - freshness_lifetime(stored, policy)
    return staleness <= max(windows)
