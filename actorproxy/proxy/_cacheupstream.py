"""The HTTP cache's upstream part: the application's phases as the cache runs them (`CachePhases`), its look
at the upstream's head (invalidate, take over, or relay while storing), and the answers it gives instead of
relaying (`TakeOver`): a 304 merged into the stored response, a stale response instead of a 5xx, a
background refresh.

Rules:
- Each body piece is stored after upstream_response_body_filter, as it streams; a fill commits only when
  the whole body has passed (`end_fill` aborts any other).
- A client's own precondition or Range on a miss is answered from the upstream's response as it streams
  (its head changed in place, the body cut), while all of it is stored.
- An upstream body read only to be dropped is read on up to `DRAIN_LIMIT` (the connection kept for reuse),
  then the connection is closed instead.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from actorproxy.cache import (
    ERROR_STATUSES,
    StoredResponse,
    freshen,
    invalidated_keys,
    not_modified,
    not_modified_response,
    plan_range,
    prepare_for_storage,
    stale_if_error,
)
from actorproxy.http import Error, ErrorSource, ErrorType, ResponseHeader
from actorproxy.store import StoreError

from ._cacheserve import serve_found, settle
from ._exchange import Exchange
from ._httpcache import Cacheable, CachePhase, HttpCache, UpstreamMode, scheme_of
from ._phases import BodyChunk, Phases, ProxyHttp
from ._responsecache import Found, ResponseCache
from ._session import Session

__all__ = ["CacheExchange", "CachePhases", "TakeOver", "end_fill", "may_serve_stale"]

logger = logging.getLogger("actorproxy.cache")

# Bytes of an upstream body read only to be dropped (a 5xx replaced by a stale response, a refresh whose
# answer is not stored) before the connection is closed instead: reading on keeps it for reuse.
DRAIN_LIMIT = 64 * 1024


def may_serve_stale(app: ProxyHttp, session: Session, ctx: Any, found: Found, error: Error) -> bool:
    """Whether `found` answers instead of `error` (RFC 5861 §4, then `should_serve_stale`)."""
    cache = session.cache
    storage = cache.storage
    if cache.no_stale or storage is None or session.response_written() is not None:
        return False
    if not stale_if_error(session.req_header, found.stored, storage.clock(), storage.policy):
        return False
    return app.should_serve_stale(session, ctx, error)


async def end_fill(cache: HttpCache) -> None:
    fill, cache.fill = cache.fill, None
    if fill is not None:
        await fill.abort()  # nothing when it committed


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
        await _response_arrived(self.app, session, session.cache, upstream_response, ctx)

    async def upstream_response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        delay = None
        if self.own.upstream_response_body_filter:
            delay = await self.app.upstream_response_body_filter(session, body, end_of_stream, ctx)
        cache = session.cache
        fill = cache.fill
        if fill is not None:
            if body.data:
                await fill.write(body.data)
            if end_of_stream:
                stored = await fill.commit()
                cache.fill = None
                if stored and cache.ticket is not None:
                    cache.ticket.done()
        if cache.body_range is not None:
            body.data = cache.cut(body.data)
        return delay


async def _response_arrived(
    app: ProxyHttp, session: Session, cache: HttpCache, response: ResponseHeader, ctx: Any
) -> None:
    """The cache's look at the upstream head (`cache`: the session's): invalidate, take over, or relay
    (storing what may be).

    Raises:
        TakeOver: the cache answers instead (see the module rules).
    """
    storage = cache.storage
    assert storage is not None  # the cache's upstream part runs only with the cache on
    cache.response_time = storage.clock()
    if cache.fill is not None:
        await end_fill(cache)  # an earlier attempt's, if it got this far and failed
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
            if may_serve_stale(app, session, ctx, found, error):
                raise TakeOver(_stale_instead, response)
    stored = _admit(app, session, cache, response, ctx)
    if stored is not None and status == 200:
        _answer_the_client(session, cache, response, stored)


def _answer_the_client(
    session: Session, cache: HttpCache, response: ResponseHeader, stored: StoredResponse
) -> None:
    """The client's own precondition or Range, removed from the fill request, answered here from the new
    response as it streams (RFC 9111 §4.3.2, RFC 9110 §14): its head changed in place, its body cut to what
    the client asked for while all of it is stored."""
    request = session.req_header
    storage = cache.storage
    assert storage is not None  # the cache is on
    if not_modified(request, stored):
        answer = not_modified_response(stored, storage.clock())
        response.set_status(304)
        response.headers = answer.headers
        cache.body_range = (0, 0)
        return
    if "range" not in request.headers:
        return
    length = _length(response)
    if length is None:
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


def _admit(
    app: ProxyHttp, session: Session, cache: HttpCache, response: ResponseHeader, ctx: Any
) -> StoredResponse | None:
    """Open the fill of `response` if it may be stored (response_cache_filter); return its stored head."""
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
        await purge_quietly(storage, key)
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
    settle(session, CachePhase.REVALIDATED if keep else CachePhase.REVALIDATED_NOCACHE)
    await serve_found(app, session, ctx, found, merged)
    if not keep:
        await purge_quietly(storage, key)
        return
    try:
        await storage.refresh(found, merged)
    except StoreError as exc:
        logger.warning("cache: storing the revalidated %r failed: %s", key, exc)
        return
    if cache.ticket is not None:
        cache.ticket.done()


async def purge_quietly(storage: ResponseCache, key: str) -> None:
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
    settle(session, CachePhase.STALE)
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
            await purge_quietly(storage, key)
            return
        try:
            await storage.refresh(found, attrs.evolve(merged, lifetime=verdict.ttl))
        except StoreError as exc:
            logger.warning("cache: storing the refreshed %r failed: %s", key, exc)
        return
    if status in ERROR_STATUSES:
        await _consume(exchange, keep=False)
        return
    if _admit(app, session, cache, response, ctx) is None:
        await _consume(exchange, keep=False)
        await purge_quietly(storage, key)
        return
    await _consume(exchange)
