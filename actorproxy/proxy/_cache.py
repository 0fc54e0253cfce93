"""The HTTP cache on the request path (Pingora's `proxy_cache`): lookup, hits served from the store, misses
streamed into it, revalidation, stale answers, invalidation and PURGE.

Order, after request_filter: request_cache_filter (the app enables the cache) → cache_key_callback →
PURGE (when the cache has a purge token) → lookup (Vary, freshness, the request's own directives) →
cache_hit_filter on what was found → a hit served (response_filter, response_body_filter), or, under the
cache lock, cache_miss → proxy_upstream_filter → upstream, where response_cache_filter decides on the
answer after upstream_response_filter, and each body piece is stored after upstream_response_body_filter.

Rules:
- The engine calls `proxy_cache` only for an application whose class defines request_cache_filter
  (`ProxyHttp.cache_phases`): any other pays one attribute check per request.
- The upstream part is the engine's own path (peer, retries, timeouts), with two seams: the app's phases
  seen through `CachePhases` (the cache's upstream request, its look at the upstream head, each body piece
  stored as it passes), and `CacheExchange`, through which the cache answers instead of relaying
  (`TakeOver`): a 304 merged into the stored response, a stale response instead of a 5xx, a background
  refresh (both in `_cacheupstream`); hits are answered by `_cacheserve`.
- Concurrent misses for one key make one upstream request: the first takes the cache lock and fills, the
  others wait (at most `lock_timeout`) and look up again once it stored; a writer that stored nothing (an
  answer that may not be stored, an error, a client gone) lets them go upstream on their own.
- A fill commits only when the whole body has passed: an upstream that breaks, a client that goes away or a
  cancellation leaves what the key held (`Fill`). A store that fails never fails the response.
- Stale answers: within the request's max-stale, or stale-while-revalidate (then the response is
  revalidated after it is sent, on this request's task, unless another request already is), or
  stale-if-error when the revalidation fails or answers 500/502/503/504; `should_serve_stale` has the last
  word for the last two.
- An unsafe method answered 2xx or 3xx removes the stored responses of its target and of the same-origin
  Location and Content-Location (RFC 9111 §4.4).
"""

from __future__ import annotations

import hmac
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import attrs

from actorproxy.cache import LOOKUP_METHODS, CacheControl, LockStatus, LockTicket, Outcome, lookup
from actorproxy.http import Error, ErrorSource, ErrorType
from actorproxy.store import StoreError

from ._cacheserve import plain_hit, send_served, serve_found, settle
from ._cacheupstream import CacheExchange, CachePhases, end_fill, may_serve_stale
from ._httpcache import X_CACHE, CachePhase, ForcedFreshness, UpstreamMode
from ._phases import ProxyHttp
from ._responsecache import PURGE_TOKEN_HEADER, Found, ResponseCache
from ._session import Session

if TYPE_CHECKING:
    from ._engine import ProxyRuntime

__all__ = ["proxy_cache"]

logger = logging.getLogger("actorproxy.cache")

#: What the engine passes for its upstream part: proxy_upstream_filter, then the upstream.
Upstream = Callable[["ProxyRuntime", Session, Any], Awaitable[None]]

# Lookups of one request at most: each further one follows a writer that stored what the request then
# could not use (another variant, say); after them the request goes upstream without the lock.
MAX_LOOKUPS = 3
# The cache's runtime of each service runtime (by id: a runtime is not hashable), while that runtime lives.
_FETCH_RUNTIMES: dict[int, tuple[weakref.ref[ProxyRuntime], ProxyRuntime]] = {}


async def proxy_cache(runtime: ProxyRuntime, session: Session, ctx: Any, upstream: Upstream) -> None:
    """Run the cache phases of one request (see the module rules); `upstream` is the engine's upstream part.

    Raises:
        Error: what the upstream part raised, unless a stale response answered it.
    """
    app = runtime.app
    cache = session.cache
    app.request_cache_filter(session, ctx)
    storage = cache.storage
    if storage is None:
        await upstream(runtime, session, ctx)
        return
    try:
        cache.set_cache_key(app.cache_key_callback(session, ctx))
        await _cached(runtime, session, ctx, upstream, storage)
    finally:
        status = X_CACHE.get(cache.phase)
        if status is not None:
            runtime.counters.bump(runtime.counters.cache_outcomes, (session.route or "", status))


async def _cached(
    runtime: ProxyRuntime, session: Session, ctx: Any, upstream: Upstream, storage: ResponseCache
) -> None:
    app = runtime.app
    cache = session.cache
    key = cache.key
    assert key is not None  # set just before
    request = session.req_header
    if request.method == "PURGE" and storage.purge_token is not None:
        await _purge(session, storage, key)
        return
    if request.method not in LOOKUP_METHODS or session.is_upgrade_req():
        cache.bypass()
        settle(session, CachePhase.BYPASS)
        await upstream(_cache_runtime(runtime), session, ctx)
        return
    # (The default cache_hit_filter answers None: a hit does not wait for it.)
    hit_filter = type(app).cache_hit_filter is not ProxyHttp.cache_hit_filter
    for _ in range(MAX_LOOKUPS):
        found = await _find(storage, key, session)
        if found is None:
            # What `lookup` decides when nothing is stored, without its general cases.
            outcome = (
                Outcome.UNAVAILABLE if CacheControl.parse(request.headers).only_if_cached else Outcome.MISS
            )
        elif not hit_filter and (served := plain_hit(request, found, storage)) is not None:
            settle(session, CachePhase.HIT)
            await send_served(app, session, ctx, served, found)
            return
        else:
            decision = lookup(request, found.stored, storage.clock(), storage.policy)
            outcome = decision.outcome
            if hit_filter and (decision.serves_stored or outcome is Outcome.MUST_REVALIDATE):
                outcome = await _hit_filter(app, session, ctx, found, outcome)
            if outcome in (Outcome.FRESH, Outcome.STALE):
                settle(session, CachePhase.HIT if outcome is Outcome.FRESH else CachePhase.STALE)
                await serve_found(app, session, ctx, found, found.stored)
                return
            if outcome is Outcome.STALE_WHILE_REVALIDATE:
                if app.should_serve_stale(session, ctx, None):
                    settle(session, CachePhase.STALE_UPDATING)
                    await serve_found(app, session, ctx, found, found.stored)
                    fetch = _cache_runtime(runtime)
                    await _refresh(fetch, session, ctx=ctx, upstream=upstream, storage=storage, found=found)
                    return
                outcome = Outcome.MUST_REVALIDATE
        if outcome is Outcome.UNAVAILABLE:
            settle(session, CachePhase.MISS)
            await session.respond_error(504)  # only-if-cached and nothing usable (RFC 9111 §5.2.1.7)
            return
        usable = found if outcome is Outcome.MUST_REVALIDATE else None
        if await _fetch_first(runtime, session, ctx, upstream, usable):
            return
        async with storage.lock.hold(key) as ticket:
            if ticket.status is LockStatus.DONE:
                continue
            writer = ticket if ticket.status is LockStatus.WRITER else None
            fetch = _cache_runtime(runtime)
            await _fetch(fetch, session, ctx=ctx, upstream=upstream, found=usable, ticket=writer)
            return
    await _fetch(_cache_runtime(runtime), session, ctx=ctx, upstream=upstream, found=None, ticket=None)


async def _fetch_first(
    runtime: ProxyRuntime, session: Session, ctx: Any, upstream: Upstream, found: Found | None
) -> bool:
    """`_fetch` as the key's writer when nobody holds its lock: taken and released without a wait or a
    context manager. False: another request holds it (nothing done)."""
    cache = session.cache
    storage, key = cache.storage, cache.key
    assert storage is not None and key is not None  # the cache is on, the key set
    ticket = storage.lock.take(key)
    if ticket is None:
        return False
    try:
        await _fetch(_cache_runtime(runtime), session, ctx=ctx, upstream=upstream, found=found, ticket=ticket)
    except BaseException:
        storage.lock.release(ticket, failed=True)
        raise
    storage.lock.release(ticket)
    return True


async def _hit_filter(app: ProxyHttp, session: Session, ctx: Any, found: Found, outcome: Outcome) -> Outcome:
    """The outcome after `cache_hit_filter` (Pingora's `ForcedFreshness`)."""
    forced = await app.cache_hit_filter(session, found.stored, outcome is Outcome.FRESH, ctx)
    if forced is ForcedFreshness.FORCE_MISS:
        return Outcome.MISS
    if forced is ForcedFreshness.FORCE_EXPIRED:
        session.cache.no_stale = True
        return Outcome.MUST_REVALIDATE
    if forced is ForcedFreshness.FORCE_FRESH:
        return Outcome.FRESH
    return outcome


async def _find(storage: ResponseCache, key: str, session: Session) -> Found | None:
    try:
        return await storage.find(key, session.req_header)
    except StoreError as exc:
        # As Pingora does: a lookup that fails is a miss, and what comes back may still be stored.
        logger.warning("cache: looking up %r failed, taken for a miss: %s", key, exc)
        return None


def _cache_runtime(runtime: ProxyRuntime) -> ProxyRuntime:
    """The service's runtime as the cache's upstream part uses it: its phases through `CachePhases`, its
    exchanges `CacheExchange`s; made once per runtime and application."""
    known = _FETCH_RUNTIMES.get(id(runtime))
    if known is not None and known[0]() is runtime and cast(CachePhases, known[1].app).app is runtime.app:
        return known[1]
    # The phases the cache runs itself are called whether or not the application overrides them.
    phases = attrs.evolve(runtime.phases, **dict.fromkeys(CachePhases.RUNS, True))
    wrapped = CachePhases(runtime.app, runtime.phases)
    fetch = attrs.evolve(runtime, app=cast(ProxyHttp, wrapped), exchange=CacheExchange, phases=phases)
    key = id(runtime)
    _FETCH_RUNTIMES[key] = (weakref.ref(runtime, lambda _: _FETCH_RUNTIMES.pop(key, None)), fetch)
    return fetch


async def _fetch(
    fetch: ProxyRuntime,
    session: Session,
    *,
    ctx: Any,
    upstream: Upstream,
    found: Found | None,
    ticket: LockTicket | None,
) -> None:
    """Go upstream for a miss (`found` None) or to revalidate `found`; serve it stale if that fails."""
    app = cast(CachePhases, fetch.app).app
    cache = session.cache
    cache.found = found
    cache.ticket = ticket
    cache.mode = UpstreamMode.FILL if found is None else UpstreamMode.REVALIDATE
    settle(session, CachePhase.MISS if found is None else CachePhase.EXPIRED)
    app.cache_miss(session, ctx)
    try:
        await upstream(fetch, session, ctx)
    except Error as error:
        if found is None or not may_serve_stale(app, session, ctx, found, error):
            raise
        logger.warning("cache: serving %r stale after an upstream error: %s", cache.key, error)
        settle(session, CachePhase.STALE)
        await serve_found(app, session, ctx, found, found.stored)
    finally:
        if cache.fill is not None:
            await end_fill(cache)


async def _refresh(
    fetch: ProxyRuntime,
    session: Session,
    *,
    ctx: Any,
    upstream: Upstream,
    storage: ResponseCache,
    found: Found,
) -> None:
    """Revalidate `found` after its stale answer was sent, unless another request already does."""
    cache = session.cache
    key = cache.key
    assert key is not None  # set before any lookup
    ticket = storage.lock.take(key)
    if ticket is None:
        return  # another request fetches it already
    cache.found = found
    cache.ticket = ticket
    cache.mode = UpstreamMode.REFRESH
    cache.admit = True
    try:
        try:
            await upstream(fetch, session, ctx)
        except Error as exc:
            # The client has its answer; the stale response stays until it expires or a refresh succeeds.
            logger.warning("cache: refreshing %r failed: %s", key, exc)
        finally:
            if cache.fill is not None:
                await end_fill(cache)
    except BaseException:
        storage.lock.release(ticket, failed=True)
        raise
    storage.lock.release(ticket)


async def _purge(session: Session, storage: ResponseCache, key: str) -> None:
    """Answer a PURGE: remove the key (a target ending in `*`: every key it starts), with the right token."""
    token = session.get_header(PURGE_TOKEN_HEADER)
    expected = storage.purge_token
    assert expected is not None  # PURGE is only handled with a token configured
    if token is None or not hmac.compare_digest(token.encode(), expected.encode()):
        await session.respond_text(403, f"PURGE needs the cache's {PURGE_TOKEN_HEADER}\n")
        return
    try:
        if key.endswith("*"):
            removed = await storage.purge_prefix(key[:-1])
        else:
            removed = await storage.purge(key)
    except StoreError as exc:
        raise Error.because(ErrorType.INTERNAL_ERROR, f"purging {key!r}", exc, ErrorSource.INTERNAL) from exc
    await session.respond_text(200, f"purged {removed}\n")
