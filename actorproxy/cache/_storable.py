"""May a shared cache store this response (RFC 9111 §3, §3.5)? `storable` answers with the reason.

Rules (a shared cache):
- The request method is cacheable (`CachePolicy.cacheable_methods`, GET by default) and the status final.
- 206 and 304 are never stored: partial content is not combined, and a 304 freshens a stored response
  (`freshen`) instead of being one.
- `no-store` in the response (unless `must-understand` is present and the status understood, §5.2.2.3)
  or in the request (§5.2.1.5); unqualified `private` (§5.2.2.7).
- A request with Authorization only when the response says `public`, `must-revalidate` or `s-maxage`
  (§3.5).
- `Vary: *` is not stored: it would never match (§4.1).
- And the response can be fresh at all: `public`, Expires, max-age or s-maxage, or a status that is
  heuristically cacheable (RFC 9110 §15.1).
"""

from __future__ import annotations

import attrs

from actorproxy.http import RequestHeader, ResponseHeader

from ._directives import CacheControl
from ._policy import DEFAULT_POLICY, HEURISTIC_STATUSES, UNDERSTOOD_STATUSES, CachePolicy
from ._vary import vary_fields

__all__ = ["Verdict", "authorization_allows", "storable"]


@attrs.frozen
class Verdict:
    """A yes or no, and why."""

    ok: bool
    reason: str

    def __bool__(self) -> bool:
        return self.ok


def authorization_allows(directives: CacheControl) -> bool:
    """Whether a response to a request with Authorization may be stored and reused (§3.5)."""
    return directives.public or directives.must_revalidate or directives.has("s-maxage")


def storable(
    request: RequestHeader, response: ResponseHeader, policy: CachePolicy = DEFAULT_POLICY
) -> Verdict:
    """Whether a shared cache may store `response` to `request`, and why not."""
    if request.method not in policy.cacheable_methods:
        return Verdict(False, f"method {request.method} is not cached")
    status = response.status
    if status < 200:
        return Verdict(False, f"status {status} is not final")
    if status in (206, 304):
        return Verdict(False, f"status {status} is not stored")
    headers = response.headers
    directives = CacheControl.parse(headers)
    stated = directives.directives  # most responses state none
    if stated:
        understood = directives.must_understand and status in UNDERSTOOD_STATUSES
        if directives.must_understand and not understood:
            return Verdict(False, f"must-understand, and status {status} is not understood")
        if directives.no_store and not understood:
            return Verdict(False, "no-store")
    if CacheControl.parse(request.headers).no_store:
        return Verdict(False, "the request says no-store")
    if stated and directives.private:
        return Verdict(False, "private")
    if "authorization" in request.headers and not authorization_allows(directives):
        return Verdict(False, "a request with Authorization, and no public, must-revalidate or s-maxage")
    if "vary" in headers and vary_fields(headers) is None:
        return Verdict(False, "Vary: * never matches")
    if stated and (directives.public or "max-age" in stated or "s-maxage" in stated):
        return _EXPLICIT
    if "expires" in headers:
        return _EXPIRES
    if status in HEURISTIC_STATUSES:
        return _HEURISTIC[status]
    return Verdict(False, f"no explicit freshness, and status {status} is not heuristically cacheable")


# The yeses, made once (a Verdict is never changed).
_EXPLICIT = Verdict(True, "explicit freshness")
_EXPIRES = Verdict(True, "Expires")
_HEURISTIC = {
    status: Verdict(True, f"status {status} is heuristically cacheable") for status in HEURISTIC_STATUSES
}
