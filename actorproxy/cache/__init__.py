"""The HTTP cache's policy, sans-IO (RFC 9111, RFC 5861), and the cache lock.

Pure functions and records over `actorproxy.http` heads and a clock value (`now`, POSIX seconds): nothing
here reads a socket, a store or the time. The cache phases of the proxy call them:

    key = cache_key(request, scheme="https")
    found = lookup(request, stored, now)              # FRESH, STALE, ..., MISS, BYPASS, UNAVAILABLE
    if found.serves_stored:
        served = serve(request, stored, size, now)    # 200/206/304/416 head, Age, which bytes to send
    elif found.outcome is Outcome.MUST_REVALIDATE:
        upstream = conditional_request(request, stored) or fill_request(request)
        ... a 304: stored = freshen(stored, response, request_time=..., response_time=...)
    verdict = storable(request, response)             # may it be stored, and why not
    stored = prepare_for_storage(request, response, request_time=..., response_time=...)

docs/cache.md says what of RFC 9111 is implemented and what is not.
"""

from ._directives import ANY_STALENESS, CacheControl
from ._entry import StoredResponse, prepare_for_storage
from ._fields import (
    MAX_DELTA_SECONDS,
    format_http_date,
    list_items,
    parse_delta_seconds,
    parse_http_date,
    strong_match,
    weak_match,
)
from ._freshness import (
    Freshness,
    age_header,
    current_age,
    date_of,
    freshness_facts,
    freshness_from,
    freshness_lifetime,
    has_explicit_lifetime,
)
from ._key import DEFAULT_KEY_PARTS, CacheKeyParts, cache_key, invalidated_keys
from ._lock import DEFAULT_LOCK_TIMEOUT, CacheLock, LockStatus, LockTicket
from ._lookup import LOOKUP_METHODS, Lookup, Outcome, XCache, lookup, stale_if_error, vary_matches
from ._policy import (
    DEFAULT_POLICY,
    ERROR_STATUSES,
    HEURISTIC_STATUSES,
    SAFE_METHODS,
    UNDERSTOOD_STATUSES,
    CachePolicy,
)
from ._range import RangePlan, plan_range
from ._serve import Served, serve
from ._storable import Verdict, authorization_allows, storable
from ._validate import (
    CONDITIONAL_FIELDS,
    conditional_request,
    fill_request,
    freshen,
    not_modified,
    not_modified_response,
)
from ._vary import normalized_value, secondary_key, vary_fields, vary_values

__all__ = [
    "ANY_STALENESS",
    "CONDITIONAL_FIELDS",
    "DEFAULT_KEY_PARTS",
    "DEFAULT_LOCK_TIMEOUT",
    "DEFAULT_POLICY",
    "ERROR_STATUSES",
    "HEURISTIC_STATUSES",
    "LOOKUP_METHODS",
    "MAX_DELTA_SECONDS",
    "SAFE_METHODS",
    "UNDERSTOOD_STATUSES",
    "CacheControl",
    "CacheKeyParts",
    "CacheLock",
    "CachePolicy",
    "Freshness",
    "LockStatus",
    "LockTicket",
    "Lookup",
    "Outcome",
    "RangePlan",
    "Served",
    "StoredResponse",
    "Verdict",
    "XCache",
    "age_header",
    "authorization_allows",
    "cache_key",
    "conditional_request",
    "current_age",
    "date_of",
    "fill_request",
    "format_http_date",
    "freshen",
    "freshness_facts",
    "freshness_from",
    "freshness_lifetime",
    "has_explicit_lifetime",
    "invalidated_keys",
    "list_items",
    "lookup",
    "normalized_value",
    "not_modified",
    "not_modified_response",
    "parse_delta_seconds",
    "parse_http_date",
    "plan_range",
    "prepare_for_storage",
    "secondary_key",
    "serve",
    "stale_if_error",
    "storable",
    "strong_match",
    "vary_fields",
    "vary_matches",
    "vary_values",
    "weak_match",
]
