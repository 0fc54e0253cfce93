"""`ResponseCache` over a store, without the proxy: entries, Vary markers, the hot tier and how long it is
trusted, purging, the store's TTL, and what comes of a value left under a cache key."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio
from trio.testing import MockClock

from actorproxy.cache import Outcome, StoredResponse, lookup, prepare_for_storage, serve
from actorproxy.http import RequestHeader, ResponseHeader
from actorproxy.proxy import Found, HotEntry, HotTier, ResponseCache
from actorproxy.proxy._cacheserve import _ASKING, plain_hit
from actorproxy.store import MemoryBackend, Store


def now() -> float:
    return 1_767_225_600.0 + trio.current_time()


def request(*headers: tuple[str, str]) -> RequestHeader:
    return RequestHeader("GET", "/a", [("Host", "example.com"), *headers])


def stored(req: RequestHeader, *headers: tuple[str, str]) -> StoredResponse:
    response = ResponseHeader(200, [("Cache-Control", "max-age=60"), *headers])
    return prepare_for_storage(req, response, request_time=now(), response_time=now())


async def put(cache: ResponseCache, req: RequestHeader, body: bytes, *headers: tuple[str, str]) -> None:
    fill = cache.open_fill(cache.key_for(req), req, stored(req, *headers))
    await fill.write(body)
    assert await fill.commit()


@pytest.fixture
async def store() -> AsyncIterator[Store]:
    async with Store(MemoryBackend(clock=now)) as store:
        yield store


async def body_of(cache: ResponseCache, req: RequestHeader) -> bytes | None:
    found = await cache.find(cache.key_for(req), req)
    if found is None:
        return None
    return b"".join([piece async for piece in found.chunks()])


async def test_a_stored_response_is_found_with_its_body(store: Store) -> None:
    cache = ResponseCache(store, clock=now)
    await put(cache, request(), b"hello")
    found = await cache.find(cache.key_for(request()), request())
    assert found is not None and found.stored.status == 200 and found.size == 5
    assert [piece async for piece in found.chunks(1, 3)] == [b"el"]
    assert await store.has("cache:GET http://example.com/a")


async def test_variants_live_under_secondary_keys_behind_a_marker(store: Store) -> None:
    cache = ResponseCache(store, clock=now)
    english, french = request(("Accept-Language", "en")), request(("Accept-Language", "fr"))
    await put(cache, english, b"hello", ("Vary", "Accept-Language"))
    await put(cache, french, b"bonjour", ("Vary", "Accept-Language"))
    assert (await body_of(cache, english), await body_of(cache, french)) == (b"hello", b"bonjour")
    assert await body_of(cache, request()) is None
    removed = await cache.purge(cache.key_for(english))
    assert removed == 3  # the marker and both variants
    assert await body_of(cache, english) is None


async def test_another_processs_purge_is_seen_after_the_recheck_interval(
    autojump_clock: MockClock, store: Store
) -> None:
    # Two caches on one store, as two worker processes on one SQLite file, each with its own hot tier.
    writer, reader = ResponseCache(store, clock=now), ResponseCache(store, clock=now)
    await put(writer, request(), b"hello")
    assert await body_of(reader, request()) == b"hello"
    assert len(reader.hot) == 1
    await writer.purge(writer.key_for(request()))
    assert await body_of(reader, request()) == b"hello"  # trusted from memory for a moment...
    await trio.sleep(reader.hot.recheck_interval)
    assert await body_of(reader, request()) is None  # ...then the store says it is gone
    assert len(reader.hot) == 0


async def test_a_large_body_is_read_from_the_store_not_kept_in_memory(store: Store) -> None:
    cache = ResponseCache(store, clock=now)
    body = b"x" * (cache.hot.max_entry + 1)
    await put(cache, request(), body)
    assert len(cache.hot) == 0
    found = await cache.find(cache.key_for(request()), request())
    assert found is not None and found.body is None and found.reader is not None
    assert await body_of(cache, request()) == body


async def test_purge_prefix_removes_every_key_it_starts(store: Store) -> None:
    cache = ResponseCache(store, clock=now)
    for path in ("/static/a", "/static/b", "/api/c"):
        req = RequestHeader("GET", path, [("Host", "example.com")])
        await put(cache, req, b"x")
    assert await cache.purge_prefix("GET http://example.com/static/") == 2
    assert await store.has("cache:GET http://example.com/api/c")


async def test_the_store_keeps_an_entry_while_fresh_then_stale_windows_then_keep_stale(store: Store) -> None:
    cache = ResponseCache(store, keep_stale=100, clock=now)
    req = request()
    entry = stored(req, ("Cache-Control", "max-age=60, stale-while-revalidate=30, stale-if-error=50"))
    assert cache.store_ttl(entry, now()) == pytest.approx(60 + 50 + 100, abs=1)  # Date is in whole seconds


async def test_a_value_under_a_cache_key_is_no_entry(store: Store) -> None:
    cache = ResponseCache(store, clock=now)
    await store.put("cache:GET http://example.com/a", b"not a response")
    assert await cache.find(cache.key_for(request()), request()) is None


def test_the_hot_tier_keeps_the_most_recently_used_within_its_size() -> None:
    tier = HotTier(300, max_entry=100)

    def entry(size: int) -> HotEntry:
        return HotEntry(b"", None, None, b"x" * size, None, 0.0)

    for key in "abc":
        tier.put(key, entry(100))
    tier.get("a")
    tier.put("d", entry(100))
    tier.put("big", entry(101))
    assert (tier.get("b"), tier.get("big")) == (None, None)
    assert [key for key in "acd" if tier.get(key) is not None] == ["a", "c", "d"]
    assert tier.size == 300 and tier.drop_prefix("c") == 1


@pytest.mark.parametrize(
    "response_headers",
    [
        [("Cache-Control", "max-age=60"), ("Content-Length", "5")],
        [("Cache-Control", "max-age=60, no-cache"), ("ETag", '"a"')],
        [("Cache-Control", "max-age=1")],
        [("Cache-Control", "s-maxage=60, max-age=0"), ("Age", "30")],
        [("Expires", "Thu, 01 Jan 2026 00:01:00 GMT")],
        [("Cache-Control", "max-age=60"), ("Vary", "Accept")],
    ],
)
@pytest.mark.parametrize(
    "request_headers",
    [
        [],
        [("Cache-Control", "max-age=0")],
        [("Authorization", "x")],
        [("If-None-Match", '"a"')],
        [("Range", "bytes=0-1")],
        [("Accept", "text/html")],
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_the_plain_hit_is_what_lookup_and_serve_decide(
    store: Store,
    response_headers: list[tuple[str, str]],
    request_headers: list[tuple[str, str]],
    method: str,
) -> None:
    cache = ResponseCache(store, clock=now)
    req = RequestHeader(method, "/a", [("Host", "example.com"), *request_headers])
    entry = prepare_for_storage(
        RequestHeader("GET", "/a", [("Host", "example.com"), ("Accept", "text/html")]),
        ResponseHeader(200, response_headers),
        request_time=now() - 3,
        response_time=now() - 2,  # some age
    )
    found = Found(entry, 5, "k", entry.to_bytes(), body=b"hello")
    plain = plain_hit(req, found, cache)
    decision = lookup(req, entry, now())
    if plain is None:
        asking = any(name.lower() in _ASKING for name, _ in request_headers)
        simple = method == "GET" and not asking and not entry.vary
        assert decision.outcome is not Outcome.FRESH or not simple
        return
    assert decision.outcome is Outcome.FRESH
    general = serve(req, entry, 5, now())
    assert (plain.header.status, plain.header.headers.items(), plain.body) == (
        general.header.status,
        general.header.headers.items(),
        general.body,
    )
