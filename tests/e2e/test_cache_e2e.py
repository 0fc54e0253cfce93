"""The HTTP cache end to end (RFC 9111, RFC 5861): httpx through a caching proxy on loopback to an origin that
counts what it serves. Each test names the rule it checks; time moves by the shared clock (`caching.py`).

`served` is the origin's count of whole responses for a path, `asked` its count of requests (304s too).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from caching import Cached, CachingProxy, Clock
from helpers import refused_port
from upstream import Upstream, text_body

from actorproxy.proxy import ResponseCache
from actorproxy.store import MemoryBackend, SqliteBackend, Store

# Bounds on waiting for the proxy to finish work after a response (never slept: polled).
SETTLE_TIMEOUT = 10.0
MIB = 1024 * 1024


async def start_cached(
    nursery: trio.Nursery, start_proxy: Callable[..., Any], store: Store, clock: Clock, **options: Any
) -> Cached:
    upstream = Upstream("origin")
    upstream.clock = clock
    await nursery.start(upstream.serve)
    app = CachingProxy(ResponseCache(store, clock=clock, **options), upstream.port)
    base, service = await start_proxy(app)
    return Cached(base, service, app, upstream, clock, store)


@pytest.fixture
async def cached(nursery: trio.Nursery, start_proxy: Callable[..., Any]) -> AsyncIterator[Cached]:
    """A caching proxy on a memory store, and its origin."""
    clock = Clock()
    async with Store(MemoryBackend(clock=clock)) as store:
        yield await start_cached(nursery, start_proxy, store, clock)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=30) as client:
        yield client


def verdict(response: httpx.Response) -> tuple[int, str | None, str]:
    return response.status_code, response.headers.get("x-cache"), response.text


async def settled(cached: Cached, key: str) -> None:
    """Wait until no request holds the cache lock of `key` (a fill or a refresh has ended)."""
    with trio.fail_after(SETTLE_TIMEOUT):
        while cached.cache.lock.held(key):  # noqa: ASYNC110 - the lock has no event to wait on
            await trio.sleep(0.01)


# -- freshness (RFC 9111 §4.2) -------------------------------------------------------------------------------


async def test_a_fresh_response_is_served_from_the_cache_with_its_age(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/fresh", cc="max-age=60")
    first = await client.get(url)
    second = await client.get(url)
    cached.clock.advance(30)
    later = await client.get(url)
    assert verdict(first) == (200, "MISS", "/cache/fresh #1")
    assert verdict(second) == (200, "HIT", "/cache/fresh #1")
    assert (second.headers["age"], later.headers["age"], verdict(later)[1]) == ("0", "30", "HIT")
    assert cached.upstream.served["/cache/fresh"] == 1


async def test_a_stale_response_without_validators_is_fetched_again(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/stale", cc="max-age=60")
    await client.get(url)
    cached.clock.advance(61)
    again = await client.get(url)
    assert verdict(again) == (200, "MISS", "/cache/stale #2")
    assert verdict(await client.get(url)) == (200, "HIT", "/cache/stale #2")


@pytest.mark.parametrize(
    ("fields", "fresh_for"),
    [
        ({"cc": "max-age=100"}, 100),
        ({"cc": "max-age=1000, s-maxage=100"}, 100),  # §5.2.2.10: a shared cache takes s-maxage
        ({"expires": 100}, 100),  # §5.3
        ({"lm": -1000}, 100),  # §4.2.2: 10% of the time since Last-Modified
        ({"cc": "public", "lm": -500}, 50),
    ],
)
async def test_the_freshness_lifetime_comes_from_the_response(
    cached: Cached, client: httpx.AsyncClient, fields: dict[str, Any], fresh_for: int
) -> None:
    url = cached.url("/cache/lifetime", **fields)
    await client.get(url)
    cached.clock.advance(fresh_for - 2)
    assert verdict(await client.get(url))[1] == "HIT"
    cached.clock.advance(3)
    assert verdict(await client.get(url))[1] == "MISS"
    assert cached.upstream.served["/cache/lifetime"] == 2


# -- what is stored (RFC 9111 §3) ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "request_headers"),
    [
        ({"cc": "no-store, max-age=60"}, {}),  # §5.2.2.5
        ({"cc": "private, max-age=60"}, {}),  # §5.2.2.7: not in a shared cache
        ({"cc": "max-age=60"}, {"cache-control": "no-store"}),  # §5.2.1.5
        ({"cc": "max-age=60"}, {"authorization": "Bearer x"}),  # §3.5
        ({"status": 302}, {}),  # no lifetime, and not heuristically cacheable (RFC 9110 §15.1)
        ({"vary": "*", "cc": "max-age=60"}, {}),  # §4.1: Vary * never matches
        ({}, {}),  # no lifetime, no Last-Modified: stale at once, no validator
    ],
)
async def test_what_may_not_be_reused_goes_upstream_every_time(
    cached: Cached, client: httpx.AsyncClient, fields: dict[str, Any], request_headers: dict[str, str]
) -> None:
    url = cached.url("/cache/never", **fields)
    first = await client.get(url, headers=request_headers)
    second = await client.get(url, headers=request_headers)
    assert [first.headers.get("x-cache"), second.headers.get("x-cache")] == ["MISS", "MISS"]
    assert cached.upstream.served["/cache/never"] == 2


async def test_authorization_with_public_is_stored_and_reused(
    cached: Cached, client: httpx.AsyncClient
) -> None:  # §3.5
    url = cached.url("/cache/auth", cc="public, max-age=60")
    await client.get(url, headers={"authorization": "Bearer a"})
    assert verdict(await client.get(url, headers={"authorization": "Bearer b"}))[1] == "HIT"


async def test_no_cache_in_the_response_revalidates_every_use(
    cached: Cached, client: httpx.AsyncClient
) -> None:  # §5.2.2.4
    url = cached.url("/cache/no-cache", cc="no-cache, max-age=60", etag="v1")
    await client.get(url)
    again = await client.get(url)
    assert verdict(again) == (200, "REVALIDATED", "/cache/no-cache #1")
    assert (cached.upstream.asked["/cache/no-cache"], cached.upstream.served["/cache/no-cache"]) == (2, 1)


@pytest.mark.parametrize("directive", ["must-revalidate", "proxy-revalidate", "s-maxage=10"])
async def test_a_response_that_forbids_stale_use_is_not_served_stale(
    cached: Cached, client: httpx.AsyncClient, directive: str
) -> None:  # §5.2.2.2, §5.2.2.8, §5.2.2.10
    url = cached.url("/cache/strict", cc=f"max-age=10, {directive}")
    await client.get(url)
    cached.clock.advance(20)
    answer = await client.get(url, headers={"cache-control": "max-stale=60"})
    assert verdict(answer) == (200, "MISS", "/cache/strict #2")


# -- the request's own directives (RFC 9111 §5.2.1) ----------------------------------------------------------


async def test_the_requests_directives_are_followed(cached: Cached, client: httpx.AsyncClient) -> None:
    url = cached.url("/cache/asked", cc="max-age=60", etag="v1")

    async def asking(directive: str) -> str | None:
        return verdict(await client.get(url, headers={"cache-control": directive}))[1]

    unavailable = await client.get(url, headers={"cache-control": "only-if-cached"})
    await client.get(url)
    cached.clock.advance(30)
    assert await asking("only-if-cached") == "HIT"
    assert await asking("max-age=10") == "REVALIDATED"  # each revalidation makes it new again
    cached.clock.advance(30)
    assert await asking("min-fresh=40") == "REVALIDATED"
    cached.clock.advance(30)
    assert (await asking("max-age=40"), await asking("no-cache")) == ("HIT", "REVALIDATED")
    cached.clock.advance(70)
    stale = await client.get(url, headers={"cache-control": "max-stale=20"})
    assert unavailable.status_code == 504  # §5.2.1.7
    assert verdict(stale) == (200, "STALE", "/cache/asked #1")
    assert cached.upstream.served["/cache/asked"] == 1


# -- Vary (RFC 9111 §4.1) ------------------------------------------------------------------------------------


async def test_each_variant_is_stored_under_its_own_secondary_key(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/vary", cc="max-age=60", vary="Accept-Language")
    answers = [
        await client.get(url, headers=headers)
        for headers in ({"accept-language": "en"}, {"accept-language": "fr"}, {}, {"accept-language": "en"})
    ]
    answers += [await client.get(url, headers={"accept-language": "fr"}), await client.get(url)]
    assert [verdict(a)[1:] for a in answers] == [
        ("MISS", "/cache/vary #1 en"),
        ("MISS", "/cache/vary #2 fr"),
        ("MISS", "/cache/vary #3 -"),
        ("HIT", "/cache/vary #1 en"),
        ("HIT", "/cache/vary #2 fr"),
        ("HIT", "/cache/vary #3 -"),
    ]


# -- revalidation (RFC 9111 §4.3) ----------------------------------------------------------------------------


async def test_a_stale_response_is_revalidated_and_the_304_merged(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/etag", cc="max-age=60", etag="v1")
    first = await client.get(url)
    cached.clock.advance(100)
    revalidated = await client.get(url)
    hit = await client.get(url)
    conditional = cached.upstream.requests[-1]
    assert verdict(revalidated) == (200, "REVALIDATED", "/cache/etag #1")
    assert ("if-none-match", '"v1"') in [(name.lower(), value) for name, value in conditional["headers"]]
    # §4.3.4: the 304's fields replace the stored ones; the age starts over.
    assert (first.headers["x-asked"], revalidated.headers["x-asked"], revalidated.headers["age"]) == (
        "1",
        "2",
        "0",
    )
    assert verdict(hit) == (200, "HIT", "/cache/etag #1") and hit.headers["x-asked"] == "2"
    assert cached.upstream.served["/cache/etag"] == 1


async def test_a_clients_conditional_request_is_answered_by_the_cache(
    cached: Cached, client: httpx.AsyncClient
) -> None:  # §4.3.2
    url = cached.url("/cache/conditional", cc="max-age=60", etag="v1")
    on_miss = await client.get(url, headers={"if-none-match": '"v1"'})
    on_hit = await client.get(url, headers={"if-none-match": '"v1"'})
    other = await client.get(url, headers={"if-none-match": '"v2"'})
    assert [a.status_code for a in (on_miss, on_hit, other)] == [304, 304, 200]
    assert [a.headers["x-cache"] for a in (on_miss, on_hit, other)] == ["MISS", "HIT", "HIT"]
    # The upstream got the fill request, without the client's precondition, once.
    assert all(name != "if-none-match" for name, _ in cached.upstream.requests[0]["headers"])
    assert cached.upstream.asked["/cache/conditional"] == 1


# -- stale answers (RFC 5861) --------------------------------------------------------------------------------


async def test_stale_while_revalidate_answers_stale_and_refreshes_after(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/swr", cc="max-age=10, stale-while-revalidate=60", etag="v1")
    await client.get(url)
    cached.clock.advance(20)
    stale = await client.get(url)
    await settled(cached, cached.key("/cache/swr", cc="max-age=10, stale-while-revalidate=60", etag="v1"))
    fresh = await client.get(url)
    assert verdict(stale) == (200, "STALE", "/cache/swr #1")
    assert (cached.upstream.asked["/cache/swr"], cached.upstream.served["/cache/swr"]) == (2, 1)
    assert verdict(fresh) == (200, "HIT", "/cache/swr #1") and fresh.headers["x-asked"] == "2"


async def test_stale_if_error_answers_stale_when_the_revalidation_fails(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/sie", cc="max-age=10, stale-if-error=60")
    strict = cached.url("/cache/strict-sie", cc="max-age=10")
    await client.get(url)
    await client.get(strict)
    cached.clock.advance(20)
    cached.upstream.force_status = 503
    on_5xx = await client.get(url)
    passed = await client.get(strict)
    cached.app.port = refused_port()
    on_refused = await client.get(url)
    cached.clock.advance(60)
    too_old = await client.get(url)
    assert verdict(on_5xx) == (200, "STALE", "/cache/sie #1")
    assert passed.status_code == 503
    assert verdict(on_refused) == (200, "STALE", "/cache/sie #1")
    assert too_old.status_code == 502


# -- invalidation (RFC 9111 §4.4) ----------------------------------------------------------------------------


async def test_an_unsafe_request_invalidates_its_target_and_location(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    target = cached.url("/cache/doc", cc="max-age=60")
    related = cached.url("/cache/list", cc="max-age=60")
    await client.get(target)
    await client.get(related)
    cached.upstream.force_status = 500
    failed = await client.post(target, content=b"x")
    cached.upstream.force_status = None
    assert verdict(await client.get(target))[1] == "HIT"  # an error invalidates nothing
    location = "/cache/list?" + related.split("?", 1)[1]
    posted = await client.post(cached.url("/cache/action", location=location), content=b"x")
    deleted = await client.delete(target)
    assert [a.headers["x-cache"] for a in (failed, posted, deleted)] == ["BYPASS"] * 3
    assert verdict(await client.get(target))[1] == "MISS"
    assert verdict(await client.get(related)) == (200, "MISS", "/cache/list #2")


# -- HEAD and ranges (RFC 9110 §9.3.2, §14) ------------------------------------------------------------------


async def test_head_is_answered_from_the_stored_get_and_fills_it(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    url = cached.url("/cache/head", cc="max-age=60")
    head = await client.head(url)
    get = await client.get(url)
    again = await client.head(url)
    assert (head.status_code, head.headers["x-cache"], head.content) == (200, "MISS", b"")
    assert cached.upstream.requests[0]["method"] == "GET"  # a HEAD miss fills the cache with the GET
    assert verdict(get) == (200, "HIT", "/cache/head #1")
    length = str(len("/cache/head #1"))
    assert (again.headers["x-cache"], again.headers["content-length"], again.content) == ("HIT", length, b"")


async def test_ranges_are_served_from_the_stored_body(cached: Cached, client: httpx.AsyncClient) -> None:
    url = cached.url("/cache/range", cc="max-age=60", etag="v1", size=100_000)
    on_miss = await client.get(url, headers={"range": "bytes=10-19"})
    part = await client.get(url, headers={"range": "bytes=99990-"})
    outside = await client.get(url, headers={"range": "bytes=200000-"})
    changed = await client.get(url, headers={"range": "bytes=0-9", "if-range": '"v0"'})
    body = text_body(100_000)
    assert (on_miss.status_code, on_miss.headers["content-range"], on_miss.content) == (
        206,
        "bytes 10-19/100000",
        body[10:20],
    )
    assert (part.status_code, part.headers["x-cache"], part.content) == (206, "HIT", body[99990:])
    assert (outside.status_code, outside.headers["content-range"]) == (416, "bytes */100000")
    assert (changed.status_code, len(changed.content)) == (200, 100_000)
    assert on_miss.headers["x-cache"] == "MISS"
    assert cached.upstream.served["/cache/range"] == 1


# -- the cache lock ------------------------------------------------------------------------------------------


async def test_a_hundred_concurrent_misses_make_one_upstream_request(cached: Cached) -> None:
    url = cached.url("/cache/lock", cc="max-age=60", hold=1)
    counters = cached.service.counters
    before = counters.requests
    answers: list[httpx.Response] = []
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def fetch() -> None:
            answers.append(await client.get(url))

        async with trio.open_nursery() as nursery:
            for _ in range(100):
                nursery.start_soon(fetch)
            with trio.fail_after(SETTLE_TIMEOUT):
                while counters.requests < before + 100:  # noqa: ASYNC110 - every request reached the proxy
                    await trio.sleep(0.01)
            cached.upstream.release.set()
    assert cached.upstream.asked["/cache/lock"] == 1
    assert {verdict(a) for a in answers} == {(200, "MISS", "/cache/lock #1"), (200, "HIT", "/cache/lock #1")}
    assert [a.headers["x-cache"] for a in answers].count("MISS") == 1


# -- bodies stream -------------------------------------------------------------------------------------------


async def test_a_10_mib_response_is_stored_and_served_without_being_held_whole(
    nursery: trio.Nursery, start_proxy: Callable[..., Any], tmp_path: Path, client: httpx.AsyncClient
) -> None:
    clock = Clock()
    async with Store(SqliteBackend(tmp_path / "store.db", clock=clock)) as store:
        cached = await start_cached(nursery, start_proxy, store, clock)
        url = cached.url("/cache/big", cc="max-age=60", size=10 * MIB)
        peaks = []
        sizes = []
        tracemalloc.start()
        try:
            for _ in range(2):
                tracemalloc.reset_peak()
                size = 0
                async with client.stream("GET", url) as response:
                    async for piece in response.aiter_raw():
                        size += len(piece)
                sizes.append((response.headers["x-cache"], size))
                peaks.append(tracemalloc.get_traced_memory()[1])
        finally:
            tracemalloc.stop()
    assert sizes == [("MISS", 10 * MIB), ("HIT", 10 * MIB)]
    assert cached.upstream.served["/cache/big"] == 1
    # The origin, the proxy, the store and the client all run in this process: together they never hold
    # more than a small part of the body.
    assert max(peaks) < 2 * MIB, peaks


async def test_a_client_gone_mid_miss_leaves_nothing_stored(
    cached: Cached, client: httpx.AsyncClient
) -> None:
    fields = {"cc": "max-age=60", "size": MIB, "drip": 1}
    url = cached.url("/cache/gone", **fields)
    async with client.stream("GET", url) as response:
        async for _ in response.aiter_raw():
            break  # the first piece is here: the fill has begun; then the client goes away
    cached.upstream.release.set()  # if the origin got as far as its pause
    await settled(cached, cached.key("/cache/gone", **fields))
    again = await client.get(url)
    assert (again.headers["x-cache"], len(again.content)) == ("MISS", MIB)
    assert cached.upstream.served["/cache/gone"] == 2
    assert verdict(await client.get(url))[1] == "HIT"


# -- PURGE ---------------------------------------------------------------------------------------------------


async def test_purge_needs_its_token_and_removes_a_key_or_a_prefix(
    nursery: trio.Nursery, start_proxy: Callable[..., Any], client: httpx.AsyncClient
) -> None:
    clock = Clock()
    token = "t" * 16
    async with Store(MemoryBackend(clock=clock)) as store:
        cached = await start_cached(nursery, start_proxy, store, clock, purge_token=token)
        urls = [cached.url(f"/cache/p/{n}", cc="max-age=60") for n in range(3)]
        for url in urls:
            await client.get(url)
        refused = await client.request("PURGE", urls[0])
        purged = await client.request("PURGE", urls[0], headers={"x-purge-token": token})
        after = [verdict(await client.get(url))[1] for url in urls]
        prefix = await client.request("PURGE", f"{cached.base}/cache/p/*", headers={"x-purge-token": token})
        emptied = [verdict(await client.get(url))[1] for url in urls]
    assert (refused.status_code, purged.status_code, purged.text) == (403, 200, "purged 1\n")
    assert after == ["MISS", "HIT", "HIT"]
    assert (prefix.status_code, prefix.text) == (200, "purged 3\n")
    assert emptied == ["MISS", "MISS", "MISS"]
