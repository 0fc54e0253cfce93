"""A caching proxy for end-to-end tests: a `ProxyHttp` that caches every request in a `ResponseCache`, on a
clock the test moves, in front of an `Upstream` whose Date follows the same clock.

Moving the clock is how a test lets a response age by minutes without waiting: the cache, its store and
the origin all read it, and nothing else in the test depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import attrs
from upstream import Upstream

from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, ResponseCache, Session
from actorproxy.store import Store


class Clock:
    """Wall-clock time plus an offset the test moves with `advance`."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class CachingProxy(ProxyHttp):
    """Caches every request in `cache` and sends it to the upstream on `port`; says what the cache did in
    `x-cache`."""

    def __init__(self, cache: ResponseCache, port: int) -> None:
        self.cache = cache
        self.port = port

    def request_cache_filter(self, session: Session, ctx: Any) -> None:
        session.cache.enable(self.cache)

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")

    async def response_filter(self, session: Session, upstream_response: Any, ctx: Any) -> None:
        if session.cache_status is not None:
            upstream_response.insert_header("x-cache", session.cache_status)


@attrs.define
class Cached:
    """A running caching proxy, its upstream, its cache and the clock they share."""

    base: str
    service: HttpProxyService
    app: CachingProxy
    upstream: Upstream
    clock: Clock
    store: Store

    @property
    def cache(self) -> ResponseCache:
        return self.app.cache

    def url(self, path: str, **fields: str | int) -> str:
        """The proxy's URL of `path` with the upstream's `/cache` query fields (see `upstream.py`)."""
        query = urlencode(fields)
        return f"{self.base}{path}?{query}" if query else f"{self.base}{path}"

    def key(self, path: str, **fields: str | int) -> str:
        """The cache key of a GET of `url(path, **fields)`."""
        query = urlencode(fields)
        host = self.base.removeprefix("http://")
        return f"GET http://{host}{path}?{query}" if query else f"GET http://{host}{path}"


Factory = Callable[..., Any]
