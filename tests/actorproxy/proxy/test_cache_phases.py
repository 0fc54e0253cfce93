"""The cache phases on memory streams and virtual time: Pingora's hooks, the lock's timeout and release,
stale decisions, store failures, and that an application without request_cache_filter never runs them.

The RFC rules end to end are in tests/e2e/test_cache_e2e.py; here is what needs control over time or over
the phases.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import trio
from memory_proxy import ORIGIN, MemoryProxy, ToOrigin
from trio.testing import MockClock

from actorproxy.cache import CachePolicy, StoredResponse
from actorproxy.http import Error, ResponseHeader
from actorproxy.proxy import Cacheable, ForcedFreshness, ProxyHttp, RespCacheable, ResponseCache, Session
from actorproxy.store import MemoryBackend, Store, StoreUnavailable
from actorproxy.testing import MemoryNetwork, Origin, OriginRequest, OriginResponse, exchange

# A POSIX time well after 1970: HTTP dates read like real ones.
EPOCH = 1_767_225_600.0


def now() -> float:
    return EPOCH + trio.current_time()


class Caching(ToOrigin):
    """Caches every request in `cache`; `x-cache` says what the cache did."""

    def __init__(self, cache: ResponseCache) -> None:
        super().__init__()
        self.cache = cache

    def request_cache_filter(self, session: Session, ctx: Any) -> None:
        session.cache.enable(self.cache)

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        if session.cache_status is not None:
            upstream_response.insert_header("x-cache", session.cache_status)


class Counting:
    """An origin's answers: `headers` on a body naming the request's number, or a 304 to an If-None-Match
    naming its ETag; a hold while `hold` is set."""

    def __init__(self, *headers: tuple[str, str]) -> None:
        self.headers = list(headers)
        self.count = 0
        self.status = 200
        self.hold: trio.Event | None = None

    async def __call__(self, request: OriginRequest) -> OriginResponse:
        self.count += 1
        number = self.count
        if self.hold is not None:
            await self.hold.wait()
        etag = next((value for name, value in self.headers if name.lower() == "etag"), None)
        if self.status == 304 or (etag is not None and request.header("if-none-match") == etag):
            return OriginResponse(status=304, headers=self.headers)
        return OriginResponse(status=self.status, headers=self.headers, body=f"#{number}".encode())


@pytest.fixture
async def store() -> Any:
    async with Store(MemoryBackend(clock=now)) as store:
        yield store


async def get(proxy: MemoryProxy, target: str = "/a", **headers: str) -> tuple[int, str | None, bytes]:
    fields = [(name.replace("_", "-"), value) for name, value in headers.items()]
    response = await proxy.get(target, headers=[("Host", "example.com"), *fields])
    return response.status, response.header("x-cache"), response.body


async def start(
    start_proxy: Callable[..., Any],
    network: MemoryNetwork,
    answers: Counting,
    app: ProxyHttp,
) -> MemoryProxy:
    network.serve(ORIGIN, Origin(answers).serve)
    proxy: MemoryProxy = await start_proxy(app)
    return proxy


def test_only_an_app_that_defines_request_cache_filter_runs_the_cache_phases() -> None:
    assert ToOrigin.cache_phases is False
    assert Caching.cache_phases is True

    class Sub(Caching):
        pass

    assert Sub.cache_phases is True


async def test_an_app_that_does_not_enable_the_cache_proxies_as_usual(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Sometimes(Caching):
        def request_cache_filter(self, session: Session, ctx: Any) -> None:
            if session.req_header.path == "/cached":
                session.cache.enable(self.cache)

    answers = Counting(("Cache-Control", "max-age=60"))
    proxy = await start(start_proxy, network, answers, Sometimes(ResponseCache(store, clock=now)))
    assert [await get(proxy, "/other") for _ in range(2)] == [(200, None, b"#1"), (200, None, b"#2")]
    assert [await get(proxy, "/cached") for _ in range(2)] == [(200, "MISS", b"#3"), (200, "HIT", b"#3")]


async def test_waiters_go_upstream_themselves_after_the_lock_timeout(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    answers = Counting(("Cache-Control", "max-age=60"))
    answers.hold = trio.Event()
    proxy = await start(
        start_proxy, network, answers, Caching(ResponseCache(store, lock_timeout=1, clock=now))
    )
    results: list[tuple[int, str | None, bytes]] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(results, get(proxy)))
        await trio.sleep(5)  # the waiters gave up after 1 s (virtual time)
        assert answers.count == 3
        answers.hold.set()
    assert sorted(results) == [(200, "MISS", b"#1"), (200, "MISS", b"#2"), (200, "MISS", b"#3")]


async def _append(results: list[Any], coroutine: Any) -> None:
    results.append(await coroutine)


async def test_a_writer_that_stores_nothing_lets_the_waiters_go_at_once(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    answers = Counting(("Cache-Control", "no-store"))
    answers.hold = trio.Event()
    proxy = await start(
        start_proxy, network, answers, Caching(ResponseCache(store, lock_timeout=60, clock=now))
    )
    results: list[tuple[int, str | None, bytes]] = []
    async with trio.open_nursery() as nursery:
        for _ in range(3):
            nursery.start_soon(lambda: _append(results, get(proxy)))
        await trio.sleep(1)
        assert answers.count == 1  # the others wait on the writer...
        answers.hold.set()
    assert answers.count == 3  # ...which stored nothing: they went upstream, well before the lock's 60 s
    assert trio.current_time() < 30
    assert sorted(body for _, _, body in results) == [b"#1", b"#2", b"#3"]


async def test_cache_hit_filter_can_force_a_miss_an_expiry_or_freshness(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Forcing(Caching):
        async def cache_hit_filter(
            self, session: Session, meta: StoredResponse, is_fresh: bool, ctx: Any
        ) -> ForcedFreshness | None:
            self.seen.append(is_fresh)
            forced = session.req_header.headers.get("x-force")
            return None if forced is None else ForcedFreshness(forced)

        seen: list[bool] = []

    answers = Counting(("Cache-Control", "max-age=60"), ("ETag", '"v1"'))
    app = Forcing(ResponseCache(store, clock=now))
    proxy = await start(start_proxy, network, answers, app)
    await get(proxy)
    assert await get(proxy, x_force="force-miss") == (200, "MISS", b"#2")
    assert await get(proxy, x_force="force-expired") == (200, "REVALIDATED", b"#2")
    assert answers.count == 3
    await trio.sleep(120)
    assert await get(proxy, x_force="force-fresh") == (200, "HIT", b"#2")
    assert app.seen == [True, True, False]


async def test_response_cache_filter_decides_and_sets_the_lifetime(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Short(Caching):
        def response_cache_filter(
            self, session: Session, upstream_response: ResponseHeader, ctx: Any
        ) -> RespCacheable:
            return Cacheable(ttl=5)  # whatever the response says: even no-store

    answers = Counting(("Cache-Control", "no-store"))
    proxy = await start(start_proxy, network, answers, Short(ResponseCache(store, clock=now)))
    await get(proxy)
    await trio.sleep(4)
    assert await get(proxy) == (200, "HIT", b"#1")
    await trio.sleep(2)
    assert await get(proxy) == (200, "MISS", b"#2")


async def test_default_ttl_gives_a_lifetime_to_a_response_that_states_none(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    answers = Counting(("Content-Type", "text/plain"))
    proxy = await start(
        start_proxy, network, answers, Caching(ResponseCache(store, default_ttl=30, clock=now))
    )
    await get(proxy)
    await trio.sleep(29)
    assert await get(proxy) == (200, "HIT", b"#1")
    await trio.sleep(2)
    assert await get(proxy) == (200, "MISS", b"#2")


async def test_should_serve_stale_has_the_last_word(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Never(Caching):
        def should_serve_stale(self, session: Session, ctx: Any, error: Error | None) -> bool:
            return False

    answers = Counting(("Cache-Control", "max-age=10, stale-while-revalidate=60, stale-if-error=60"))
    proxy = await start(start_proxy, network, answers, Never(ResponseCache(store, clock=now)))
    await get(proxy)
    await trio.sleep(20)
    assert await get(proxy) == (200, "MISS", b"#2")  # no stale-while-revalidate: fetched first
    await trio.sleep(20)
    answers.status = 503
    assert (await get(proxy))[0] == 503  # no stale-if-error


async def test_the_operators_stale_windows_stand_in_for_the_responses(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    policy = CachePolicy(stale_while_revalidate=30, stale_if_error=100)
    answers = Counting(("Cache-Control", "max-age=10"), ("ETag", '"v1"'))
    proxy = await start(
        start_proxy, network, answers, Caching(ResponseCache(store, policy=policy, clock=now))
    )
    await get(proxy)
    await trio.sleep(20)
    assert await get(proxy) == (200, "STALE", b"#1")  # and revalidated after it was sent
    await trio.sleep(1)
    assert await get(proxy) == (200, "HIT", b"#1")
    assert answers.count == 2
    await trio.sleep(60)
    answers.status = 500
    answers.headers = []
    assert await get(proxy) == (200, "STALE", b"#1")


async def test_a_304_for_another_response_drops_the_entry_and_fetches_it_whole(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    version = ["v1"]

    async def respond(request: OriginRequest) -> OriginResponse:
        tag = f'"{version[0]}"'
        if request.header("if-none-match") is not None:
            # Confused: a 304 to any conditional request, for whatever it has now.
            return OriginResponse(status=304, headers=[("ETag", tag)])
        headers = [("Cache-Control", "max-age=10"), ("ETag", tag)]
        return OriginResponse(headers=headers, body=version[0].encode())

    network.serve(ORIGIN, Origin(respond).serve)
    proxy = await start_proxy(Caching(ResponseCache(store, clock=now)))
    assert await get(proxy) == (200, "MISS", b"v1")
    await trio.sleep(20)
    version[0] = "v2"
    assert await get(proxy) == (200, "MISS", b"v2")  # the 304 was for v2: fetched whole on the retry
    assert await get(proxy) == (200, "HIT", b"v2")


async def test_a_failed_refresh_keeps_the_stale_response(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    answers = Counting(("Cache-Control", "max-age=10, stale-while-revalidate=100"))
    proxy = await start(start_proxy, network, answers, Caching(ResponseCache(store, clock=now)))
    await get(proxy)
    await trio.sleep(20)
    answers.status = 503
    for _ in range(2):
        assert await get(proxy) == (200, "STALE", b"#1")
        await trio.sleep(1)
    assert answers.count == 3  # a refresh after each stale answer, which failed


async def test_a_body_larger_than_max_size_passes_unstored(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    async def respond(request: OriginRequest) -> OriginResponse:
        size = int(request.target.rsplit("=", 1)[1])
        chunked = [("Transfer-Encoding", "chunked")] if "chunked" in request.target else []
        return OriginResponse(headers=[("Cache-Control", "max-age=60"), *chunked], body=[b"x" * size])

    network.serve(ORIGIN, Origin(respond).serve)
    proxy = await start_proxy(Caching(ResponseCache(store, max_size=100, clock=now)))
    for target in ("/small?n=100", "/big?n=101", "/big?chunked&n=101"):
        first, second = await get(proxy, target), await get(proxy, target)
        assert (first[1], second[1], len(second[2])) == (
            "MISS",
            "HIT" if target.startswith("/small") else "MISS",
            int(target.rsplit("=", 1)[1]),
        )


async def test_a_store_that_fails_never_fails_the_response(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Broken(MemoryBackend):
        async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> Any:
            raise StoreUnavailable("the disk is gone")

        async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Any) -> None:
            raise StoreUnavailable("the disk is gone")

        async def open_body(self, key: str) -> Any:
            raise StoreUnavailable("the disk is gone")

    answers = Counting(("Cache-Control", "max-age=60"))
    async with Store(Broken(clock=now)) as broken:
        proxy = await start(start_proxy, network, answers, Caching(ResponseCache(broken, clock=now)))
        assert [await get(proxy) for _ in range(2)] == [(200, "MISS", b"#1"), (200, "MISS", b"#2")]


async def test_each_outcome_is_counted_by_route(
    autojump_clock: MockClock, start_proxy: Callable[..., Any], network: MemoryNetwork, store: Store
) -> None:
    class Routed(Caching):
        async def request_filter(self, session: Session, ctx: Any) -> bool:
            session.route = "routes[0]"
            return False

    answers = Counting(("Cache-Control", "max-age=60"))
    proxy = await start(start_proxy, network, answers, Routed(ResponseCache(store, clock=now)))
    await get(proxy)
    await get(proxy)
    await proxy.get("/a", headers=[("Host", "example.com"), ("Content-Length", "0")])
    response = await proxy.get("/a", headers=[("Host", "example.com")])
    assert response.header("x-cache") == "HIT"
    async with await proxy.connect() as stream:
        await exchange(stream, "POST", "/a", headers=[("Content-Length", "1")], body=[b"x"])
    assert proxy.service.counters.cache_outcomes == {
        ("routes[0]", "MISS"): 1,
        ("routes[0]", "HIT"): 3,
        ("routes[0]", "BYPASS"): 1,
    }
