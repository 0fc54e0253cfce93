"""The HTTP cache's answers from the store: a hit's head and body through response_filter and
response_body_filter, the commonest hit decided without the general lookup, and where a request stands
(`settle`).

Rules:
- A hit in memory (the hot tier) goes out in one write with its head; a body in the store streams piece by
  piece, each through response_body_filter, compressed if the response is.
- `plain_hit` answers only what `lookup` and `serve` would answer the same way: a GET asking nothing of its
  own for a fresh 200 in memory that varies on nothing; anything else takes the general path.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import trio

from actorproxy.cache import Served, StoredResponse, age_header, current_age, freshness_lifetime, serve
from actorproxy.http import RequestHeader

from ._httpcache import X_CACHE, CachePhase
from ._phases import BodyChunk, ProxyHttp
from ._responsecache import Found, ResponseCache
from ._session import Session

__all__ = ["plain_hit", "send_served", "serve_found", "settle"]


def settle(session: Session, phase: CachePhase) -> None:
    """Record where the request stands now: its phase, and the access log's `cache` field."""
    session.cache.phase = phase
    session.cache_status = X_CACHE.get(phase)


# -- serving from the cache --------------------------------------------------------------------------------


# Request fields that may make a hit more than "fresh, whole, now": `lookup` and `serve` read them.
_ASKING = frozenset(
    ("cache-control", "authorization", "if-none-match", "if-modified-since", "range", "if-range")
)


def plain_hit(request: RequestHeader, found: Found, storage: ResponseCache) -> Served | None:
    """The answer to the commonest hit, decided as `lookup` and `serve` would decide it, without their
    general cases: a GET asking nothing of its own (no Cache-Control, Authorization, precondition or Range)
    for a fresh 200 in memory that varies on nothing and needs no revalidation (no `no-cache`). None: not
    such a hit (ask `lookup`)."""
    stored = found.stored
    if request.method != "GET" or found.body is None or stored.status != 200 or stored.vary:
        return None
    if request.headers._has_any(_ASKING) or stored.cache_control.no_cache:
        return None
    age = current_age(stored, storage.clock())
    if age >= freshness_lifetime(stored, storage.policy):
        return None
    header = stored.response()
    fields = header.headers
    # Digits, valid to write: a stored head checked once stays trusted (`StoredResponse.fields`).
    fields.set_valid("Age", age_header(age))
    fields.set_valid("Content-Length", str(found.size))
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
