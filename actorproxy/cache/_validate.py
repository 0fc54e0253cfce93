"""Validation (RFC 9111 §4.3): the conditional request the cache sends upstream, the 304 it gets back
merged into what it stored, and the client's own conditional request answered from the cache.

Rules:
- Upstream (§4.3.1): the client's own preconditions and Range are replaced by the cache's: If-None-Match
  with the stored ETag and If-Modified-Since with the stored Last-Modified. A HEAD is revalidated as a GET,
  so a 200 refills the stored GET. A stored response without validators cannot be revalidated
  (`conditional_request` answers None): fetch it again whole (`fill_request`).
- A 304 (§4.3.4) updates the stored response it validates: the one whose strong ETag it repeats, or its
  weak ETag, or its Last-Modified; a 304 with no validator answers the cache's own conditional request, so
  it updates the response that request was built from. The 304's fields replace the stored ones of the
  same name (§3.2), except hop-by-hop ones and Content-Length; a 304 without Date counts as dated when it
  arrived (RFC 9110 §6.6.1); and the times become the 304's, so the age starts over.
- A client's If-None-Match (weak comparison; `*` matches any stored response) or, without it,
  If-Modified-Since (against Last-Modified, else Date) is answered 304 from the cache on GET and HEAD
  (§4.3.2, RFC 9110 §13.1.1, §13.1.3, §13.2.2). The 304 carries the fields RFC 9110 §15.4.5 requires.
"""

from __future__ import annotations

import attrs

from actorproxy.http import HOP_BY_HOP, RequestHeader, ResponseHeader

from ._entry import StoredResponse
from ._fields import format_http_date, list_items, parse_http_date, strong_match, weak_match
from ._freshness import age_header, current_age, date_of

__all__ = [
    "CONDITIONAL_FIELDS",
    "conditional_request",
    "fill_request",
    "freshen",
    "not_modified",
    "not_modified_response",
]

#: The request fields that make a request conditional or partial (RFC 9110 §13.1, §14.2): the cache sends
#: its own instead, and answers the client's itself.
CONDITIONAL_FIELDS = frozenset(
    {"if-match", "if-none-match", "if-modified-since", "if-unmodified-since", "if-range", "range"}
)
# RFC 9111 §3.2: a 304 does not change these stored fields.
_NOT_UPDATED = HOP_BY_HOP | {"transfer-encoding", "content-length", "content-range"}
# RFC 9110 §15.4.5: the fields a 304 carries when the 200 would have.
_NOT_MODIFIED_FIELDS = (
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "vary",
    "last-modified",
)


def fill_request(request: RequestHeader) -> RequestHeader:
    """The request to send upstream for a cacheable miss: the client's, without its preconditions and
    Range, so the answer is a whole response the cache can store and then answer the client from."""
    upstream = request.copy()
    upstream.headers.remove_all(CONDITIONAL_FIELDS)
    return upstream


def conditional_request(request: RequestHeader, stored: StoredResponse) -> RequestHeader | None:
    """The request revalidating `stored` (a GET, with the stored validators), or None when it has none."""
    etag = stored.header("etag")
    last_modified = stored.header("last-modified")
    if etag is None and last_modified is None:
        return None
    upstream = fill_request(request)
    upstream.set_method("GET")
    if etag is not None:
        upstream.insert_header("If-None-Match", etag)
    if last_modified is not None:
        upstream.insert_header("If-Modified-Since", last_modified)
    return upstream


def _validates(stored: StoredResponse, response: ResponseHeader) -> bool:
    etag = response.headers.get("etag")
    stored_etag = stored.header("etag")
    if etag is not None:
        if stored_etag is None:
            return False
        if not etag.startswith("W/"):
            return strong_match(etag, stored_etag)
        return weak_match(etag, stored_etag)
    last_modified = response.headers.get("last-modified")
    if last_modified is not None:
        return parse_http_date(last_modified) == parse_http_date(stored.header("last-modified"))
    return True


def freshen(
    stored: StoredResponse, response: ResponseHeader, *, request_time: float, response_time: float
) -> StoredResponse | None:
    """`stored` updated by the 304 `response` to its revalidation; None when the 304 validates another
    response (the cache should then fetch the resource whole).

    Raises:
        ValueError: `response` is not a 304.
    """
    if response.status != 304:
        raise ValueError(f"freshen takes a 304 response, not {response.status}")
    if not _validates(stored, response):
        return None
    skipped = set(_NOT_UPDATED)
    skipped.update(item.lower() for item in list_items(response.headers.get_all("connection")))
    updates = [(name, value) for name, value in response.headers if name.lower() not in skipped]
    if "date" not in response.headers:
        # RFC 9110 §6.6.1: a response received without Date is dated when it arrived; the old Date would
        # make the freshened response as old as the one it replaces.
        updates.append(("Date", format_http_date(response_time)))
    replaced = {name.lower() for name, _ in updates}
    headers = [(name, value) for name, value in stored.headers if name.lower() not in replaced] + updates
    return attrs.evolve(
        stored, headers=tuple(headers), request_time=request_time, response_time=response_time
    )


def not_modified(request: RequestHeader, stored: StoredResponse) -> bool:
    """Whether the client's conditional GET or HEAD is answered 304 by `stored`."""
    headers = request.headers
    if request.method not in ("GET", "HEAD") or (
        "if-none-match" not in headers and "if-modified-since" not in headers
    ):
        return False
    tags = list(list_items(headers.get_all("if-none-match")))
    if tags:
        if "*" in tags:
            return True
        etag = stored.header("etag")
        return etag is not None and any(weak_match(tag, etag) for tag in tags)
    since = parse_http_date(request.headers.get("if-modified-since"))
    if since is None:
        return False
    last_modified = parse_http_date(stored.header("last-modified"))
    return (date_of(stored) if last_modified is None else last_modified) <= since


def not_modified_response(stored: StoredResponse, now: float) -> ResponseHeader:
    """The 304 the cache answers a matching conditional request with, Age included."""
    kept = [(name, value) for name, value in stored.headers if name.lower() in _NOT_MODIFIED_FIELDS]
    response = ResponseHeader(304, kept)
    response.insert_header("Age", age_header(current_age(stored, now)))
    return response
