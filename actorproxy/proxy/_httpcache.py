"""`HttpCache`: one request's view of the HTTP cache (Pingora's `session.cache`), and the records the cache
phases return.

Rules:
- The cache is off for a request until `request_cache_filter` calls `session.cache.enable(response_cache)`;
  `disable(reason)` turns it off again. The phases move `phase` along (Pingora's `CachePhase`); `status` is
  the `x-cache` word the phase stands for, and what the access log's `cache` field shows.
- A request with another method than GET or HEAD (or an upgrade) is BYPASS: it goes upstream as it came,
  and an unsafe one invalidates what its answer changed (RFC 9111 §4.4).
- What goes upstream for a cached request is the fill request (the client's preconditions and Range
  removed, a HEAD asked as a GET, RFC 9111 §4.3.1) or, to revalidate a stored response, the conditional
  request built from its validators.
"""

from __future__ import annotations

import enum
from typing import TYPE_CHECKING

import attrs
import trio

from actorproxy.cache import CONDITIONAL_FIELDS, conditional_request
from actorproxy.http import RequestHeader

if TYPE_CHECKING:
    from actorproxy.cache import LockTicket

    from ._responsecache import Fill, Found, ResponseCache
    from ._session import Session

__all__ = [
    "X_CACHE",
    "CachePhase",
    "Cacheable",
    "ForcedFreshness",
    "HttpCache",
    "RespCacheable",
    "Uncacheable",
    "UpstreamMode",
    "scheme_of",
]


def scheme_of(session: Session) -> str:
    """The scheme the client used: https on a TLS connection, else http."""
    return "https" if isinstance(session.downstream.stream, trio.SSLStream) else "http"


class CachePhase(enum.Enum):
    """Where a request is in the cache phases (Pingora's `CachePhase`)."""

    #: The cache is off for this request.
    DISABLED = "disabled"
    #: On, not looked up yet.
    UNINIT = "uninit"
    #: On, but the request is not answered from the cache (its method, an upgrade): proxied as it came.
    BYPASS = "bypass"
    #: Nothing usable was stored: fetched from the upstream (and stored if it may be).
    MISS = "miss"
    #: Served fresh from the cache.
    HIT = "hit"
    #: Served stale, as the client (max-stale) or the response (stale-if-error) allows.
    STALE = "stale"
    #: Served stale while it is revalidated (stale-while-revalidate).
    STALE_UPDATING = "stale-updating"
    #: Stored, but had to be revalidated, and the upstream answered with a new response.
    EXPIRED = "expired"
    #: Revalidated with a 304 and served from the cache, its head updated.
    REVALIDATED = "revalidated"
    #: Revalidated with a 304 whose merged head may no longer be stored: served once, then dropped.
    REVALIDATED_NOCACHE = "revalidated-nocache"


#: The `x-cache` word of each phase that answered a request.
X_CACHE = {
    CachePhase.HIT: "HIT",
    CachePhase.MISS: "MISS",
    CachePhase.EXPIRED: "MISS",
    CachePhase.STALE: "STALE",
    CachePhase.STALE_UPDATING: "STALE",
    CachePhase.REVALIDATED: "REVALIDATED",
    CachePhase.REVALIDATED_NOCACHE: "REVALIDATED",
    CachePhase.BYPASS: "BYPASS",
}


class UpstreamMode(enum.Enum):
    """What a cached request sends upstream, and what the cache does with the answer."""

    #: The fill request: the answer is relayed and stored if it may be.
    FILL = "fill"
    #: The conditional request for a stored response: a 304 is merged into it and served from the cache.
    REVALIDATE = "revalidate"
    #: The conditional request of a stale-while-revalidate refresh: the client has its answer already.
    REFRESH = "refresh"
    #: The request as it came (BYPASS).
    AS_IS = "as-is"


class ForcedFreshness(enum.Enum):
    """What `cache_hit_filter` may decide about a stored response (Pingora's `ForcedFreshness`)."""

    #: Treat it as stale: revalidate it, never serve it stale.
    FORCE_EXPIRED = "force-expired"
    #: Ignore it: fetch the resource whole.
    FORCE_MISS = "force-miss"
    #: Treat it as fresh: serve it.
    FORCE_FRESH = "force-fresh"


@attrs.frozen
class Cacheable:
    """`response_cache_filter`'s yes (Pingora's `RespCacheable::Cacheable`).

    Attributes:
        ttl: seconds the response stays fresh, replacing the lifetime it states; None: its own (RFC 9111
            §4.2.1).
    """

    ttl: float | None = None


@attrs.frozen
class Uncacheable:
    """`response_cache_filter`'s no, and why (Pingora's `RespCacheable::Uncacheable`)."""

    reason: str


#: What `response_cache_filter` returns.
RespCacheable = Cacheable | Uncacheable


class HttpCache:
    """One request's HTTP cache: off until enabled with a `ResponseCache`, then its phase and key.

    Attributes:
        storage: the cache the request uses; None while off.
        phase: where the request is in the cache phases.
        key: the request's cache key (`cache_key_callback`).
        found: the stored response the lookup found and the request may use (to revalidate it, or to serve
            it stale after an error).
        fill: the response being stored now.
        mode: what the cache sends upstream.
        admit: whether an answer may be stored (`cache_miss` says yes).
        no_stale: the stored response may not be served stale after an error (`FORCE_EXPIRED`).
        reason: why the cache was turned off, or did not store.
    """

    # Class-level defaults, no __init__: made for every request of an application that caches, so it
    # costs one empty object until the phases set what they use.
    storage: ResponseCache | None = None
    phase = CachePhase.DISABLED
    key: str | None = None
    found: Found | None = None
    fill: Fill | None = None
    ticket: LockTicket | None = None
    mode = UpstreamMode.FILL
    admit = False
    no_stale = False
    reason: str | None = None
    request_time = 0.0
    response_time = 0.0
    #: The part of the upstream body the client gets, when it asked for less than all (a Range, or a
    #: precondition answered 304): [start, end); and how far the body has come.
    body_range: tuple[int, int] | None = None
    body_position = 0

    def __repr__(self) -> str:
        return f"<HttpCache {self.phase.value} key={self.key!r}>"

    # -- Pingora's calls -------------------------------------------------------------------------------------

    def enable(self, storage: ResponseCache) -> None:
        """Use `storage` for this request (call it in `request_cache_filter`)."""
        self.storage = storage
        self.phase = CachePhase.UNINIT

    def disable(self, reason: str) -> None:
        """Turn the cache off for this request; `reason` says why (for logs)."""
        self.storage = None
        self.phase = CachePhase.DISABLED
        self.reason = reason

    @property
    def enabled(self) -> bool:
        """Whether the request uses the cache."""
        return self.storage is not None

    def bypass(self) -> None:
        """Proxy the request as it came, without lookup (its answer may still invalidate, RFC 9111 §4.4)."""
        self.phase = CachePhase.BYPASS
        self.mode = UpstreamMode.AS_IS

    def cache_miss(self) -> None:
        """Let the upstream's answer be stored (the default `cache_miss` phase calls this)."""
        self.admit = True

    def set_cache_key(self, key: str) -> None:
        """Set the request's cache key."""
        self.key = key

    @property
    def status(self) -> str | None:
        """The `x-cache` word for what happened: HIT, MISS, STALE, REVALIDATED, BYPASS; None before."""
        return X_CACHE.get(self.phase)

    def default_key(self, session: Session) -> str:
        """The key `storage.key_parts` make of the request (what `cache_key_callback` returns by default)."""
        assert self.storage is not None  # the phases ask only when the cache is on
        return self.storage.key_for(session.req_header, scheme_of(session))

    def cut(self, data: bytes | None) -> bytes | None:
        """The part of the next upstream body piece `data` inside `body_range`."""
        if not data or self.body_range is None:
            return data
        start, end = self.body_range
        position = self.body_position
        self.body_position = position + len(data)
        return data[max(0, start - position) : max(0, end - position)] or None

    # -- the upstream request --------------------------------------------------------------------------------

    def prepare_upstream_request(self, upstream_request: RequestHeader) -> None:
        """Change the request going upstream into the cache's (see the module rules), in place."""
        mode = self.mode
        if mode is UpstreamMode.AS_IS:
            return
        found = self.found
        changed = None
        if found is not None and mode is not UpstreamMode.FILL:
            changed = conditional_request(upstream_request, found.stored)
        if changed is None:
            if upstream_request.method == "HEAD":
                upstream_request.set_method("GET")
            upstream_request.headers.remove_all(CONDITIONAL_FIELDS)
            return
        upstream_request.set_method(changed.method)
        upstream_request.headers = changed.headers
