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
  refresh. A client's own precondition or Range on a miss is answered from the upstream's response as it
  streams (its head changed in place, the body cut), while all of it is stored.
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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, cast

import attrs
import trio

from actorproxy.cache import (
    ERROR_STATUSES,
    LOOKUP_METHODS,
    LockStatus,
    LockTicket,
    Outcome,
    Served,
    StoredResponse,
    age_header,
    current_age,
    freshen,
    freshness_lifetime,
    invalidated_keys,
    lookup,
    not_modified,
    not_modified_response,
    plan_range,
    prepare_for_storage,
    serve,
    stale_if_error,
)
from actorproxy.http import Error, ErrorSource, ErrorType, RequestHeader, ResponseHeader
from actorproxy.store import StoreError

from ._exchange import Exchange
from ._httpcache import X_CACHE, Cacheable, CachePhase, ForcedFreshness, HttpCache, UpstreamMode, scheme_of
from ._phases import BodyChunk, Phases, ProxyHttp
from ._responsecache import PURGE_TOKEN_HEADER, Found, ResponseCache
from ._session import Session

if TYPE_CHECKING:
    from ._engine import ProxyRuntime

__all__ = ["CacheExchange", "CachePhases", "TakeOver", "proxy_cache"]

logger = logging.getLogger("actorproxy.cache")

#: What the engine passes for its upstream part: proxy_upstream_filter, then the upstream.
Upstream = Callable[["ProxyRuntime", Session, Any], Awaitable[None]]

# Lookups of one request at most: each further one follows a writer that stored what the request then
# could not use (another variant, say); after them the request goes upstream without the lock.
MAX_LOOKUPS = 3
# The cache's runtime of each service runtime (by id: a runtime is not hashable), while that runtime lives.
_FETCH_RUNTIMES: dict[int, tuple[weakref.ref[ProxyRuntime], ProxyRuntime]] = {}
# Bytes of an upstream body read only to be dropped (a 5xx replaced by a stale response, a refresh whose
# answer is not stored) before the connection is closed instead: reading on keeps it for reuse.
DRAIN_LIMIT = 64 * 1024


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
        _settle(session, CachePhase.BYPASS)
        await upstream(_cache_runtime(runtime), session, ctx)
        return
    # (The default cache_hit_filter answers None: a hit does not wait for it.)
    hit_filter = type(app).cache_hit_filter is not ProxyHttp.cache_hit_filter
    for _ in range(MAX_LOOKUPS):
        found = await _find(storage, key, session)
        if found is not None and not hit_filter:
            served = plain_hit(request, found, storage)
            if served is not None:
                _settle(session, CachePhase.HIT)
                await send_served(app, session, ctx, served, found)
                return
        now = storage.clock()
        decision = lookup(request, None if found is None else found.stored, now, storage.policy)
        outcome = decision.outcome
        inspected = found is not None and (decision.serves_stored or outcome is Outcome.MUST_REVALIDATE)
        if inspected and found is not None and hit_filter:
            outcome = await _hit_filter(app, session, ctx, found, outcome)
        if found is not None and outcome in (Outcome.FRESH, Outcome.STALE):
            _settle(session, CachePhase.HIT if outcome is Outcome.FRESH else CachePhase.STALE)
            await serve_found(app, session, ctx, found, found.stored)
            return
        if found is not None and outcome is Outcome.STALE_WHILE_REVALIDATE:
            if app.should_serve_stale(session, ctx, None):
                _settle(session, CachePhase.STALE_UPDATING)
                await serve_found(app, session, ctx, found, found.stored)
                fetch = _cache_runtime(runtime)
                await _refresh(fetch, session, ctx=ctx, upstream=upstream, storage=storage, found=found)
                return
            outcome = Outcome.MUST_REVALIDATE
        if outcome is Outcome.UNAVAILABLE:
            _settle(session, CachePhase.MISS)
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


def _settle(session: Session, phase: CachePhase) -> None:
    """Record where the request stands now: its phase, and the access log's `cache` field."""
    session.cache.phase = phase
    session.cache_status = X_CACHE.get(phase)


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
    _settle(session, CachePhase.MISS if found is None else CachePhase.EXPIRED)
    app.cache_miss(session, ctx)
    try:
        await upstream(fetch, session, ctx)
    except Error as error:
        if found is None or not _may_serve_stale(app, session, ctx, found, error):
            raise
        logger.warning("cache: serving %r stale after an upstream error: %s", cache.key, error)
        _settle(session, CachePhase.STALE)
        await serve_found(app, session, ctx, found, found.stored)
    finally:
        if cache.fill is not None:
            await _end_fill(cache)


def _may_serve_stale(app: ProxyHttp, session: Session, ctx: Any, found: Found, error: Error) -> bool:
    """Whether `found` answers instead of `error` (RFC 5861 §4, then `should_serve_stale`)."""
    cache = session.cache
    storage = cache.storage
    if cache.no_stale or storage is None or session.response_written() is not None:
        return False
    if not stale_if_error(session.req_header, found.stored, storage.clock(), storage.policy):
        return False
    return app.should_serve_stale(session, ctx, error)


async def _end_fill(cache: HttpCache) -> None:
    fill, cache.fill = cache.fill, None
    if fill is not None:
        await fill.abort()  # nothing when it committed


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
                await _end_fill(cache)
    except BaseException:
        storage.lock.release(ticket, failed=True)
        raise
    storage.lock.release(ticket)


# -- serving from the cache --------------------------------------------------------------------------------


# Request fields that may make a hit more than "fresh, whole, now": `lookup` and `serve` read them.
_ASKING = ("cache-control", "authorization", "if-none-match", "if-modified-since", "range", "if-range")


def plain_hit(request: RequestHeader, found: Found, storage: ResponseCache) -> Served | None:
    """The answer to the commonest hit, decided as `lookup` and `serve` would decide it, without their
    general cases: a GET asking nothing of its own (no Cache-Control, Authorization, precondition or Range)
    for a fresh 200 in memory that varies on nothing and needs no revalidation (no `no-cache`). None: not
    such a hit (ask `lookup`)."""
    stored = found.stored
    if request.method != "GET" or found.body is None or stored.status != 200 or stored.vary:
        return None
    headers = request.headers
    if any(name in headers for name in _ASKING) or stored.cache_control.no_cache:
        return None
    age = current_age(stored, storage.clock())
    if age >= freshness_lifetime(stored, storage.policy):
        return None
    header = stored.response()
    header.insert_header("Age", age_header(age))
    header.insert_header("Content-Length", str(found.size))
    return Served(header, (0, found.size))


async def serve_found(
    app: ProxyHttp, session: Session, ctx: Any, found: Found, stored: StoredResponse
) -> None:
    """Answer the request from `found`'s body with the head `stored` (200, 206, 304 or 416, with Age)."""
    storage = session.cache.storage
    assert storage is not None  # serving needs the cache on
    served = serve(session.req_header, stored, found.size, storage.clock())
    await send_served(app, session, ctx, served, found)


async def send_served(
    app: ProxyHttp, session: Session, ctx: Any, served: Served, found: Found | None
) -> None:
    """Send `served` (a head, and which bytes of `found`'s body follow it) through response_filter and
    response_body_filter, compressed if the response is; the head goes with the first piece."""
    header = served.header
    await app.response_filter(session, header, ctx)
    if not session.request_body_done:
        session.set_keepalive(None)  # the request's body was never read: the connection cannot go on
    span = served.body if found is not None else None
    if session.active_compression() is not None:
        await session.write_response_header(header, end_of_stream=span is None)
        if span is not None and found is not None:
            async for data, end in _filtered(app, session, ctx, found, span):
                await session.write_response_body(data, end_of_stream=end)
        return
    if session.request_id is not None:
        session.stamp_response(header)
    downstream = session.downstream
    if span is None or found is None:
        await downstream.write_response(header, end=True)
        return
    if found.body is not None:
        # In memory (the hot tier, the common hit): one piece, one write with the head.
        chunk = BodyChunk(found.body[span[0] : span[1]] or None)
        delay = await app.response_body_filter(session, chunk, True, ctx)
        await downstream.write_response(header, chunk.data or b"", end=True)
        if delay:
            await trio.sleep(delay)
        return
    first = True
    async for data, end in _filtered(app, session, ctx, found, span):
        if first:
            await downstream.write_response(header, data, end=end)
            first = False
            continue
        if data:
            await downstream.write_body(data)
        if end:
            await downstream.finish()


async def _filtered(
    app: ProxyHttp, session: Session, ctx: Any, found: Found, span: tuple[int, int]
) -> AsyncIterator[tuple[bytes, bool]]:
    """The pieces of `found`'s body in `span`, each through response_body_filter, with whether it is the
    last; an empty span is one empty last piece."""
    start, stop = span
    chunk = BodyChunk(None)
    if start >= stop:
        await app.response_body_filter(session, chunk, True, ctx)
        yield chunk.data or b"", True
        return
    position = start
    async for piece in found.chunks(start, stop):
        position += len(piece)
        end = position >= stop
        chunk.data = piece
        delay = await app.response_body_filter(session, chunk, end, ctx)
        yield chunk.data or b"", end
        if delay:
            await trio.sleep(delay)


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


# -- the upstream part -------------------------------------------------------------------------------------


class TakeOver(Exception):
    """The cache answers instead of relaying the upstream's response: raised in upstream_response_filter,
    caught by `CacheExchange.run`, which calls `finish` with the exchange and returns `status`."""

    def __init__(
        self, finish: Callable[[Exchange, ResponseHeader], Awaitable[None]], response: ResponseHeader
    ) -> None:
        super().__init__(f"the cache answers instead of {response.status}")
        self.finish = finish
        self.response = response
        self.status = response.status


class CacheExchange(Exchange):
    """An `Exchange` whose response the cache may answer itself (a `TakeOver`)."""

    __slots__ = ()

    async def run(self) -> int:
        try:
            return await super().run()
        except TakeOver as over:
            await over.finish(self, over.response)
            return over.status


class CachePhases:
    """The application's phases as the cache's upstream part runs them: every phase is the application's;
    the cache prepares the upstream request, looks at the upstream head after upstream_response_filter,
    and stores each body piece after upstream_response_body_filter."""

    #: The phases this wrapper runs for the cache, around the application's own.
    RUNS = ("upstream_request_filter", "upstream_response_filter", "upstream_response_body_filter")

    def __init__(self, app: ProxyHttp, own: Phases | None = None) -> None:
        self.app = app
        #: Which of the application's own phases to call (`Phases.of`): one it does not override is skipped.
        self.own = Phases.of(app) if own is None else own

    def __repr__(self) -> str:
        return f"<CachePhases of {self.app!r}>"

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.app, name)
        if callable(value):
            setattr(self, name, value)  # a phase: found here directly from now on
        return value

    async def upstream_request_filter(self, session: Session, upstream_request: Any, ctx: Any) -> None:
        cache = session.cache
        cache.prepare_upstream_request(upstream_request)
        if self.own.upstream_request_filter:
            await self.app.upstream_request_filter(session, upstream_request, ctx)
        storage = cache.storage
        assert storage is not None  # the cache's upstream part runs only with the cache on
        cache.request_time = storage.clock()

    async def upstream_response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: Any
    ) -> None:
        if self.own.upstream_response_filter:
            await self.app.upstream_response_filter(session, upstream_response, ctx)
        await _response_arrived(self.app, session, upstream_response, ctx)

    async def upstream_response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        delay = None
        if self.own.upstream_response_body_filter:
            delay = await self.app.upstream_response_body_filter(session, body, end_of_stream, ctx)
        cache = session.cache
        fill = cache.fill
        if fill is not None:
            await fill.write(body.data)
            if end_of_stream:
                stored = await fill.commit()
                cache.fill = None
                if stored and cache.ticket is not None:
                    cache.ticket.done()
        if cache.body_range is not None:
            body.data = cache.cut(body.data)
        return delay


async def _response_arrived(app: ProxyHttp, session: Session, response: ResponseHeader, ctx: Any) -> None:
    """The cache's look at the upstream head: invalidate, take over, or relay (storing what may be).

    Raises:
        TakeOver: the cache answers instead (see the module rules).
    """
    cache = session.cache
    storage = cache.storage
    assert storage is not None  # the cache's upstream part runs only with the cache on
    cache.response_time = storage.clock()
    if cache.fill is not None:
        await _end_fill(cache)  # an earlier attempt's, if it got this far and failed
    request = session.req_header
    status = response.status
    mode = cache.mode
    if mode is UpstreamMode.AS_IS:
        keys = invalidated_keys(request, response, scheme=scheme_of(session), parts=storage.key_parts)
        if keys:
            try:
                await storage.invalidate(keys)
            except StoreError as exc:
                logger.warning("cache: invalidating %s failed: %s", keys, exc)
        return
    if mode is UpstreamMode.REFRESH:
        raise TakeOver(_refreshed, response)
    found = cache.found
    if found is not None and mode is UpstreamMode.REVALIDATE:
        if status == 304:
            raise TakeOver(_revalidated, response)
        if status in ERROR_STATUSES:
            error = Error.explain(
                ErrorType.http_status(status), "the revalidation failed", ErrorSource.UPSTREAM
            )
            if _may_serve_stale(app, session, ctx, found, error):
                raise TakeOver(_stale_instead, response)
    stored = _admit(app, session, response, ctx)
    if stored is not None and status == 200:
        _answer_the_client(session, response, stored)


def _answer_the_client(session: Session, response: ResponseHeader, stored: StoredResponse) -> None:
    """The client's own precondition or Range, removed from the fill request, answered here from the new
    response as it streams (RFC 9111 §4.3.2, RFC 9110 §14): its head changed in place, its body cut to what
    the client asked for while all of it is stored."""
    request = session.req_header
    cache = session.cache
    storage = cache.storage
    assert storage is not None  # the cache is on
    if not_modified(request, stored):
        answer = not_modified_response(stored, storage.clock())
        response.set_status(304)
        response.headers = answer.headers
        cache.body_range = (0, 0)
        return
    length = _length(response)
    if "range" not in request.headers or length is None:
        return
    plan = plan_range(request, stored, length)
    if plan.status == 200:
        return
    response.set_status(plan.status)
    response.insert_header("Content-Range", plan.content_range or "")
    response.insert_header("Content-Length", str(plan.end - plan.start))
    cache.body_range = (plan.start, plan.end)


def _length(response: ResponseHeader) -> int | None:
    """The Content-Length of `response`, if it has one."""
    value = response.headers.get("content-length")
    return int(value) if value is not None and value.isdigit() else None


def _admit(app: ProxyHttp, session: Session, response: ResponseHeader, ctx: Any) -> StoredResponse | None:
    """Open the fill of `response` if it may be stored (response_cache_filter); return its stored head."""
    cache = session.cache
    storage = cache.storage
    assert storage is not None and cache.key is not None  # the cache is on, the key set
    if not cache.admit:
        cache.reason = "cache_miss did not admit the response"
        return None
    verdict = app.response_cache_filter(session, response, ctx)
    if not isinstance(verdict, Cacheable):
        cache.reason = verdict.reason
        return None
    request = session.req_header
    stored = prepare_for_storage(
        request,
        response,
        request_time=cache.request_time,
        response_time=cache.response_time,
        lifetime=verdict.ttl,
    )
    cache.fill = storage.open_fill(cache.key, request, stored)
    return stored


async def _consume(exchange: Exchange, *, keep: bool = True) -> bytes:
    """Read the rest of the upstream body: through upstream_response_body_filter (and so into the fill)
    when `keep`, else dropped, past `DRAIN_LIMIT` by closing the connection. Returns what it kept."""
    conn, session, ctx, app = exchange.conn, exchange.session, exchange.ctx, exchange.app
    chunk = BodyChunk(None)
    kept: list[bytes] = []
    dropped = 0
    while True:
        data = await conn.read_body()
        end = data is None
        if not keep:
            dropped += len(data or b"")
            if dropped > DRAIN_LIMIT:
                await conn.abort()
                return b""
            if end:
                return b""
            continue
        chunk.data = data
        delay = await app.upstream_response_body_filter(session, chunk, end, ctx)
        if chunk.data:
            kept.append(chunk.data)
        if end:
            return b"".join(kept)
        if delay:
            await trio.sleep(delay)


def _real_app(exchange: Exchange) -> ProxyHttp:
    app = exchange.app
    return app.app if isinstance(app, CachePhases) else app


async def _revalidated(exchange: Exchange, response: ResponseHeader) -> None:
    """A 304 to the cache's conditional request: serve the stored response with the merged head, and
    store that head (RFC 9111 §4.3.4) if response_cache_filter still says yes."""
    session, ctx, app = exchange.session, exchange.ctx, _real_app(exchange)
    cache = session.cache
    storage, found, key = cache.storage, cache.found, cache.key
    assert storage is not None and found is not None and key is not None  # set for a revalidation
    await _consume(exchange, keep=False)
    merged = freshen(
        found.stored, response, request_time=cache.request_time, response_time=cache.response_time
    )
    if merged is None:
        # RFC 9111 §4.3.4: the 304 is about another response. Drop ours and fetch the resource whole: a
        # retry sends the fill request (and without retries left, the stale one may still answer).
        await _purge_quietly(storage, key)
        cache.mode = UpstreamMode.FILL
        error = Error.explain(
            ErrorType.INVALID_HTTP_HEADER,
            "the upstream's 304 validates another response than the one stored",
            ErrorSource.UPSTREAM,
        )
        error.set_retry(True)
        raise error
    verdict = app.response_cache_filter(session, merged.response(), ctx)
    keep = isinstance(verdict, Cacheable)
    if isinstance(verdict, Cacheable):
        merged = attrs.evolve(merged, lifetime=verdict.ttl)
    _settle(session, CachePhase.REVALIDATED if keep else CachePhase.REVALIDATED_NOCACHE)
    await serve_found(app, session, ctx, found, merged)
    if not keep:
        await _purge_quietly(storage, key)
        return
    try:
        await storage.refresh(found, merged)
    except StoreError as exc:
        logger.warning("cache: storing the revalidated %r failed: %s", key, exc)
        return
    if cache.ticket is not None:
        cache.ticket.done()


async def _purge_quietly(storage: ResponseCache, key: str) -> None:
    try:
        await storage.purge(key)
    except StoreError as exc:
        logger.warning("cache: removing %r failed: %s", key, exc)


async def _stale_instead(exchange: Exchange, response: ResponseHeader) -> None:
    """A 5xx to the revalidation of a response that may answer stale after an error (RFC 5861 §4)."""
    session, ctx, app = exchange.session, exchange.ctx, _real_app(exchange)
    found = session.cache.found
    assert found is not None  # the revalidation had a stored response
    await _consume(exchange, keep=False)
    logger.warning("cache: serving %r stale instead of the upstream's %d", session.cache.key, response.status)
    _settle(session, CachePhase.STALE)
    await serve_found(app, session, ctx, found, found.stored)


async def _refreshed(exchange: Exchange, response: ResponseHeader) -> None:
    """The answer to a stale-while-revalidate refresh: a 304 freshens the stored response, a 5xx leaves it,
    anything else replaces it (or removes it, when it may not be stored). Nothing goes to the client."""
    session, ctx, app = exchange.session, exchange.ctx, _real_app(exchange)
    cache = session.cache
    storage, found, key = cache.storage, cache.found, cache.key
    assert storage is not None and found is not None and key is not None  # set for a refresh
    status = response.status
    if status == 304:
        await _consume(exchange, keep=False)
        merged = freshen(
            found.stored, response, request_time=cache.request_time, response_time=cache.response_time
        )
        verdict = None if merged is None else app.response_cache_filter(session, merged.response(), ctx)
        if merged is None or not isinstance(verdict, Cacheable):
            await _purge_quietly(storage, key)
            return
        try:
            await storage.refresh(found, attrs.evolve(merged, lifetime=verdict.ttl))
        except StoreError as exc:
            logger.warning("cache: storing the refreshed %r failed: %s", key, exc)
        return
    if status in ERROR_STATUSES:
        await _consume(exchange, keep=False)
        return
    if _admit(app, session, response, ctx) is None:
        await _consume(exchange, keep=False)
        await _purge_quietly(storage, key)
        return
    await _consume(exchange)
