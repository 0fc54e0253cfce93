"""`ProxyHttp`: one method per request phase, each with Pingora's default behaviour.

Order of a proxied request (Pingora's "life of a request"): new_ctx, early_request_filter, request_filter
(True: a response was already written, stop), proxy_upstream_filter (False: 502 unless a response was
written), then the retry loop of upstream_peer → connect → connected_to_upstream / fail_to_connect →
upstream_request_filter → request_body_filter per request-body chunk → upstream_response_filter →
response_filter → upstream_response_body_filter → response_body_filter per response-body chunk → the
trailer filters; error_while_proxy on failures after connecting; fail_to_proxy on any error that ends the
request; and always, exactly once, logging.

With the HTTP cache (docs/cache.md), after request_filter come Pingora's cache phases: request_cache_filter
(enable the cache for the request), cache_key_callback, the lookup, cache_hit_filter on what it found, and
a hit served from the store (response_filter and response_body_filter run on it); on a miss cache_miss,
then proxy_upstream_filter and the upstream, where response_cache_filter decides whether the answer is
stored (after upstream_response_filter) and should_serve_stale whether a stale response answers an error
or a revalidation. The engine runs them only for an application whose class defines
request_cache_filter (`cache_phases`).

Body filters receive a `BodyChunk` they may rewrite (`chunk.data = ...`) or drop (`chunk.data = None`), and
may return a delay in seconds to throttle the stream.

Rules:
- A phase the application does not override costs a request nothing: `Phases.of(app)` says, once per
  service, which of the phases whose default does nothing (`SKIPPABLE`) the application's class (or the
  instance itself) overrides, and the engine calls only those. Skipping a default is exactly calling it:
  each returns its constant (None, False or True) and touches nothing. Calling the defaults cost about 2%
  of a proxied request's instructions (`benchmarks/path.py --instructions`, tiny body: 868,529 before).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs

from actorproxy.http import Error, ErrorSource, RetryType, status_for

if TYPE_CHECKING:
    from actorproxy.cache import StoredResponse
    from actorproxy.http import Headers, RequestHeader, ResponseHeader

    from ._httpcache import ForcedFreshness, RespCacheable
    from ._peer import HttpPeer
    from ._session import Session

__all__ = ["IDEMPOTENT_METHODS", "SKIPPABLE", "BodyChunk", "Phases", "ProxyHttp"]

# RFC 9110 §9.2.2: methods whose repetition has the same effect as one request.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})


class BodyChunk:
    """A piece of a body on its way through a body filter; `data` None means dropped."""

    __slots__ = ("data",)

    def __init__(self, data: bytes | None) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"BodyChunk({self.data!r})"


class ProxyHttp:
    """Subclass and override the phases you need; `upstream_peer` is required.

    Attributes:
        retry_idempotent_on_fresh_connection: also retry an idempotent request, whose body is still whole in
            the retry buffer, when a new upstream connection closed or reset before any byte of the response
            (nginx's `proxy_next_upstream error`). Off by default: Pingora retries that only on a reused
            connection, since the upstream may have acted on the request. Turn it on to ride through an
            upstream dying under load.
        cache_phases: whether the engine runs the cache phases for this application's requests: set for
            every class that defines `request_cache_filter` (so an application that never caches pays
            nothing for them); an instance may turn it off while it caches nothing (the declared proxy does).
    """

    retry_idempotent_on_fresh_connection: bool = False
    cache_phases: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "request_cache_filter" in cls.__dict__:
            cls.cache_phases = True

    def new_ctx(self) -> Any:
        """Per-request state shared by all phases of one request."""
        return None

    async def early_request_filter(self, session: Session, ctx: Any) -> None:
        """First phase of every request, before any other logic."""

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        """Validate, rate-limit, initialise ctx. Return True if a response was already written."""
        return False

    async def request_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        """Called for each piece of request body on its way upstream."""
        return None

    def request_cache_filter(self, session: Session, ctx: Any) -> None:
        """Decide whether the request uses the cache: `session.cache.enable(response_cache)`. By default
        nothing is cached."""

    def cache_key_callback(self, session: Session, ctx: Any) -> str:
        """The request's cache key (called only when the cache is on); by default the method, scheme, host,
        path and query (or the parts the cache was made with: `ResponseCache(key=...)`)."""
        return session.cache.default_key(session)

    def cache_miss(self, session: Session, ctx: Any) -> None:
        """Nothing usable is stored and the request goes upstream; by default the answer may be stored
        (`session.cache.cache_miss()`)."""
        session.cache.cache_miss()

    async def cache_hit_filter(
        self, session: Session, meta: StoredResponse, is_fresh: bool, ctx: Any
    ) -> ForcedFreshness | None:
        """A stored response was found (`is_fresh`: fresh, or stale); return a `ForcedFreshness` to treat
        it otherwise, None to follow the rules."""
        return None

    def response_cache_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: Any
    ) -> RespCacheable:
        """Whether the upstream's answer is stored, and for how long (`Cacheable(ttl)` or
        `Uncacheable(reason)`), after upstream_response_filter. By default RFC 9111's rules for a shared
        cache, the cache's `max_size`, and its `default_ttl` for an answer that states no lifetime."""
        storage = session.cache.storage
        assert storage is not None  # called only when the cache is on
        return storage.cacheable(session.req_header, upstream_response)

    def should_serve_stale(self, session: Session, ctx: Any, error: Error | None) -> bool:
        """Whether a stale response that may be served (RFC 9111 §4.2.4, RFC 5861) is: after `error` (an
        upstream 5xx arrives as `HTTPStatus`), or while it is revalidated (`error` None). By default yes
        for errors from the upstream side, and yes while revalidating."""
        return error is None or error.source is ErrorSource.UPSTREAM

    async def proxy_upstream_filter(self, session: Session, ctx: Any) -> bool:
        """Return False to not go upstream (502 unless a response was written)."""
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        """Which upstream to connect to, and how. Required."""
        raise NotImplementedError(f"{type(self).__name__} must implement upstream_peer")

    async def connected_to_upstream(self, session: Session, reused: bool, peer: HttpPeer, ctx: Any) -> None:
        """The upstream connection is ready (`reused`: it came from the pool)."""

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        """Connecting failed and nothing was sent upstream; mark `e` retryable to call upstream_peer again."""
        return e

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: Any
    ) -> None:
        """Modify the request before it is sent upstream."""

    async def upstream_response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: Any
    ) -> None:
        """The upstream response header arrived."""

    async def upstream_response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        """A piece of the upstream response body arrived."""
        return None

    async def upstream_response_trailer_filter(self, session: Session, trailers: Headers, ctx: Any) -> None:
        """The upstream response trailers arrived."""

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        """Modify the response header before it is sent downstream."""

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        """Modify a piece of response body before it is sent downstream; return a delay to throttle."""
        return None

    async def response_trailer_filter(self, session: Session, trailers: Headers, ctx: Any) -> None:
        """Modify the response trailers before they are sent downstream."""

    def error_while_proxy(
        self, peer: HttpPeer, session: Session, e: Error, ctx: Any, client_reused: bool
    ) -> Error:
        """An error after connecting. By default a retry is allowed only on a reused upstream connection
        (or any, with `retry_idempotent_on_fresh_connection`), for an idempotent request whose body is still
        whole in the retry buffer."""
        if e.context is None:
            e.context = f"peer: {peer}"
        if e.retry is RetryType.REUSED_ONLY:
            safe = client_reused or self.retry_idempotent_on_fresh_connection
            safe = safe and not session.retry_buffer_truncated
            safe = safe and session.req_header.method in IDEMPOTENT_METHODS
            e.retry = RetryType.ALWAYS if safe else RetryType.NEVER
        return e

    async def fail_to_proxy(self, session: Session, e: Error, ctx: Any) -> int:
        """The request failed: answer the client (if it can still be answered) and return the status."""
        code = status_for(e)
        if code is None:
            return 0
        if session.response_written() is None:
            await session.respond_error(code)
        return code

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        """Last phase of every request, on success and on failure."""

    def request_summary(self, session: Session, ctx: Any) -> str:
        """What an error log line says about the request."""
        return session.request_summary()

    def suppress_error_log(self, session: Session, ctx: Any, e: Error) -> bool:
        """Return True to keep `e` out of the error log."""
        return False


def is_downstream_gone(e: Error) -> bool:
    """Errors after which no response can reach the client."""
    return e.source is ErrorSource.DOWNSTREAM and status_for(e) is None


#: The phases whose default does nothing but return a constant, so a request skips them unless overridden.
SKIPPABLE: Final = (
    "new_ctx",
    "early_request_filter",
    "request_filter",
    "proxy_upstream_filter",
    "connected_to_upstream",
    "upstream_request_filter",
    "request_body_filter",
    "upstream_response_filter",
    "response_filter",
    "upstream_response_body_filter",
    "response_body_filter",
    "upstream_response_trailer_filter",
    "response_trailer_filter",
    "logging",
)


@attrs.frozen
class Phases:
    """Which of an application's skippable phases (`SKIPPABLE`) it overrides: True means call it."""

    new_ctx: bool = True
    early_request_filter: bool = True
    request_filter: bool = True
    proxy_upstream_filter: bool = True
    connected_to_upstream: bool = True
    upstream_request_filter: bool = True
    request_body_filter: bool = True
    upstream_response_filter: bool = True
    response_filter: bool = True
    upstream_response_body_filter: bool = True
    response_body_filter: bool = True
    upstream_response_trailer_filter: bool = True
    response_trailer_filter: bool = True
    logging: bool = True

    @classmethod
    def of(cls, app: ProxyHttp) -> Phases:
        """The phases `app` overrides: in its class (anywhere below `ProxyHttp`) or set on the instance."""
        own = getattr(app, "__dict__", {})
        kind = type(app)
        return cls(
            **{name: name in own or getattr(kind, name) is not getattr(ProxyHttp, name) for name in SKIPPABLE}
        )
