"""OpenTelemetry tracing of requests: a span per request with the phases as its events (optional).

Rules:
- Off by default, and then nothing here runs. On (`opentelemetry: true` on a service), the service's
  application is wrapped in `TracedProxy`: every phase is delegated to the application as it is, and the
  wrapper records around it. The engine and the exchange do not know tracing exists.
- The span starts in the first phase (`early_request_filter`), as a child of the client's W3C
  `traceparent` (extracted with the globally configured propagator), and ends in `logging`, which the
  engine calls exactly once per request. Each phase that ran is an event; the status, the route, the
  upstream and the request id are attributes; an error sets the span's status.
- The request that goes upstream carries the span's own `traceparent` (injected in
  `upstream_request_filter`), so the upstream's spans hang below the proxy's.
- Without the `opentelemetry-api` package, asking for tracing is an error that says how to install it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from actorproxy.cache import StoredResponse
from actorproxy.http import Error, Headers, RequestHeader, ResponseHeader

from ._httpcache import ForcedFreshness, RespCacheable
from ._peer import HttpPeer
from ._phases import BodyChunk, ProxyHttp
from ._session import Session

try:
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.textmap import Getter
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError:  # the optional `otel` extra is not installed
    HAVE_OPENTELEMETRY = False
else:
    HAVE_OPENTELEMETRY = True

    class _Carrier(Getter[Headers]):
        """A request head's fields as the propagators read them."""

        def get(self, carrier: Headers, key: str) -> list[str] | None:
            return carrier.get_all(key) or None

        def keys(self, carrier: Headers) -> list[str]:
            return [name for name, _ in carrier]


__all__ = ["TRACER_NAME", "TracedProxy", "tracing_available"]

#: The instrumentation scope spans are recorded under.
TRACER_NAME = "actorproxy"


def tracing_available() -> bool:
    """Whether the `opentelemetry-api` package is installed."""
    return HAVE_OPENTELEMETRY


class _TracedRequest:
    """The ctx the engine carries when tracing: the application's own ctx and the request's span."""

    __slots__ = ("inner", "span")

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.span: Any = None


class TracedProxy(ProxyHttp):
    """`app`, with a span per request (see the module rules).

    Raises:
        RuntimeError: the `opentelemetry-api` package is not installed.
    """

    def __init__(self, app: ProxyHttp, *, service: str = "proxy") -> None:
        if not HAVE_OPENTELEMETRY:
            raise RuntimeError(
                "opentelemetry: needs the opentelemetry-api package (pip install 'actorproxy[otel]')"
            )
        self.app = app
        self.service = service
        self.retry_idempotent_on_fresh_connection = app.retry_idempotent_on_fresh_connection
        self.cache_phases = app.cache_phases
        self._tracer = trace.get_tracer(TRACER_NAME)

    def __repr__(self) -> str:
        return f"<TracedProxy {self.app!r}>"

    def __getattr__(self, name: str) -> Any:
        # What the application has beyond the phases (its routing, its load balancers) stays reachable.
        return getattr(self.app, name)

    async def _phase(self, ctx: _TracedRequest, name: str, call: Callable[[], Awaitable[Any]]) -> Any:
        if ctx.span is not None:
            ctx.span.add_event(name)
        return await call()

    # -- the phases, delegated ------------------------------------------------------------------------------

    def new_ctx(self) -> _TracedRequest:
        return _TracedRequest(self.app.new_ctx())

    async def early_request_filter(self, session: Session, ctx: _TracedRequest) -> None:
        request = session.req_header
        parent = propagate.extract(request.headers, getter=_Carrier())
        ctx.span = self._tracer.start_span(
            f"{request.method} {self.service}",
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": request.method,
                "url.path": request.path,
                "server.address": request.headers.get("host") or "",
                "network.protocol.version": request.version,
            },
        )
        await self._phase(
            ctx, "early_request_filter", lambda: self.app.early_request_filter(session, ctx.inner)
        )

    async def request_filter(self, session: Session, ctx: _TracedRequest) -> bool:
        answered: bool = await self._phase(
            ctx, "request_filter", lambda: self.app.request_filter(session, ctx.inner)
        )
        return answered

    async def request_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: _TracedRequest
    ) -> float | None:
        return await self.app.request_body_filter(session, body, end_of_stream, ctx.inner)

    async def proxy_upstream_filter(self, session: Session, ctx: _TracedRequest) -> bool:
        go: bool = await self._phase(
            ctx, "proxy_upstream_filter", lambda: self.app.proxy_upstream_filter(session, ctx.inner)
        )
        return go

    async def upstream_peer(self, session: Session, ctx: _TracedRequest) -> HttpPeer:
        peer: HttpPeer = await self._phase(
            ctx, "upstream_peer", lambda: self.app.upstream_peer(session, ctx.inner)
        )
        if ctx.span is not None:
            ctx.span.set_attribute("server.peer", peer.label())
        return peer

    async def connected_to_upstream(
        self, session: Session, reused: bool, peer: HttpPeer, ctx: _TracedRequest
    ) -> None:
        if ctx.span is not None:
            ctx.span.add_event("connected_to_upstream", {"reused": reused})
        await self.app.connected_to_upstream(session, reused, peer, ctx.inner)

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: _TracedRequest, e: Error) -> Error:
        if ctx.span is not None:
            ctx.span.add_event("fail_to_connect", {"error": str(e)})
        return self.app.fail_to_connect(session, peer, ctx.inner, e)

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: _TracedRequest
    ) -> None:
        await self._phase(
            ctx,
            "upstream_request_filter",
            lambda: self.app.upstream_request_filter(session, upstream_request, ctx.inner),
        )
        if ctx.span is not None:
            fields: MutableMapping[str, str] = {}
            propagate.inject(fields, context=trace.set_span_in_context(ctx.span))
            for name, value in fields.items():
                upstream_request.insert_header(name, value)

    async def upstream_response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: _TracedRequest
    ) -> None:
        await self._phase(
            ctx,
            "upstream_response_filter",
            lambda: self.app.upstream_response_filter(session, upstream_response, ctx.inner),
        )

    async def upstream_response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: _TracedRequest
    ) -> float | None:
        return await self.app.upstream_response_body_filter(session, body, end_of_stream, ctx.inner)

    async def upstream_response_trailer_filter(
        self, session: Session, trailers: Headers, ctx: _TracedRequest
    ) -> None:
        await self.app.upstream_response_trailer_filter(session, trailers, ctx.inner)

    async def response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: _TracedRequest
    ) -> None:
        await self._phase(
            ctx, "response_filter", lambda: self.app.response_filter(session, upstream_response, ctx.inner)
        )

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: _TracedRequest
    ) -> float | None:
        return await self.app.response_body_filter(session, body, end_of_stream, ctx.inner)

    async def response_trailer_filter(self, session: Session, trailers: Headers, ctx: _TracedRequest) -> None:
        await self.app.response_trailer_filter(session, trailers, ctx.inner)

    def error_while_proxy(
        self, peer: HttpPeer, session: Session, e: Error, ctx: _TracedRequest, client_reused: bool
    ) -> Error:
        if ctx.span is not None:
            ctx.span.add_event("error_while_proxy", {"error": str(e), "reused": client_reused})
        return self.app.error_while_proxy(peer, session, e, ctx.inner, client_reused)

    async def fail_to_proxy(self, session: Session, e: Error, ctx: Any) -> int:
        inner = ctx.inner if isinstance(ctx, _TracedRequest) else ctx
        return await self.app.fail_to_proxy(session, e, inner)

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        if not isinstance(ctx, _TracedRequest):
            await self.app.logging(session, e, ctx)
            return
        span = ctx.span
        try:
            await self._phase(ctx, "logging", lambda: self.app.logging(session, e, ctx.inner))
        finally:
            if span is not None:
                _finish(span, session, e)

    # -- the cache phases, delegated (run only when the application defines them) -------------------------

    def request_cache_filter(self, session: Session, ctx: _TracedRequest) -> None:
        self.app.request_cache_filter(session, ctx.inner)

    def cache_key_callback(self, session: Session, ctx: _TracedRequest) -> str:
        return self.app.cache_key_callback(session, ctx.inner)

    def cache_miss(self, session: Session, ctx: _TracedRequest) -> None:
        if ctx.span is not None:
            ctx.span.add_event("cache_miss")
        self.app.cache_miss(session, ctx.inner)

    async def cache_hit_filter(
        self, session: Session, meta: StoredResponse, is_fresh: bool, ctx: _TracedRequest
    ) -> ForcedFreshness | None:
        if ctx.span is not None:
            ctx.span.add_event("cache_hit_filter", {"fresh": is_fresh})
        return await self.app.cache_hit_filter(session, meta, is_fresh, ctx.inner)

    def response_cache_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: _TracedRequest
    ) -> RespCacheable:
        return self.app.response_cache_filter(session, upstream_response, ctx.inner)

    def should_serve_stale(self, session: Session, ctx: _TracedRequest, error: Error | None) -> bool:
        return self.app.should_serve_stale(session, ctx.inner, error)

    # -- the rest --------------------------------------------------------------------------------------

    def request_summary(self, session: Session, ctx: Any) -> str:
        inner = ctx.inner if isinstance(ctx, _TracedRequest) else ctx
        return self.app.request_summary(session, inner)

    def suppress_error_log(self, session: Session, ctx: Any, e: Error) -> bool:
        inner = ctx.inner if isinstance(ctx, _TracedRequest) else ctx
        return self.app.suppress_error_log(session, inner, e)


def _finish(span: Any, session: Session, error: Error | None) -> None:
    written = session.response_written()
    if written is not None:
        span.set_attribute("http.response.status_code", written.status)
    for key, value in (
        ("actorproxy.route", session.route),
        ("actorproxy.request_id", session.request_id),
        ("actorproxy.retries", session.retries),
    ):
        if value is not None:
            span.set_attribute(key, value)
    if error is not None:
        span.set_status(Status(StatusCode.ERROR, str(error)))
    elif written is not None and written.status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()
