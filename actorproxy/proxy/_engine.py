"""The request lifecycle: Pingora's phases, the retry loop and failure handling.

Rules:
- `serve_request` runs the phases of one request in Pingora's order and always ends with `logging`, exactly
  once, whatever happened. Any error that ends the request goes through `fail_to_proxy`, which answers the
  client if it still can, and is logged with `request_summary` unless `suppress_error_log` says not to.
- An exception from a user filter is an internal error: 500 for that request, then the connection closes
  (as after a panic in Pingora); no other connection notices.
- Retry loop, bounded by `max_retries`: a connect failure goes through `fail_to_connect` (nothing was sent
  upstream); a failure after connecting goes through `error_while_proxy`, and is retried only while no
  response has started downstream and the request body can be replayed from the retry buffer.
- Pool checkout and checkin are synchronous steps; I/O comes after. A connection that saw any error is
  never returned to the pool.
- When `upstream_peer` returns the backend a `LoadBalancer` just picked, the attempt is tracked (see
  `_feedback`): in flight until it ends, then reported as success, 5xx, connect failure or broken exchange
  (upstream side), or abandoned (client side, filters, cancellation), for least-connections and passive
  health.
- One attempt's traffic (the request upstream, the response back, both bodies at once, a tunnel after a
  101) is an `Exchange` (`_exchange.py`).
- A request body the client frames badly (a bad chunk, a body over the limit) fails the exchange as a
  downstream error: the upstream connection, which has the head and part of the body, is aborted, never
  pooled or retried, so nothing after the bad bytes reaches an upstream; the client gets the error's status
  if no response has started, and its connection closes.
- A TRACE or OPTIONS whose Max-Forwards is 0 is answered here, and a TRACE is refused unless the service
  allows it (`actorproxy.http.answer_here`); what else changes on the way is the exchange's.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from actorproxy.config import ProxySettings
from actorproxy.http import (
    MAX_FORWARDS_METHODS,
    ClientSide,
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    ResponseHeader,
    allowed_methods,
    answer_here,
    has_looped,
    select_codec,
)

from . import _feedback
from ._connector import connect_peer
from ._exchange import Exchange
from ._feedback import Outcome
from ._peer import HttpPeer
from ._phases import Phases, ProxyHttp
from ._pool import ConnectionPool
from ._session import Session
from ._sockets import SocketStream

__all__ = ["PeerDefaults", "ProxyCounters", "ProxyRuntime", "serve_request"]

logger = logging.getLogger("actorproxy.proxy")


@attrs.define
class ProxyCounters:
    """What one service has seen; plain integers (one trio thread), read by metrics and tests."""

    requests: int = 0
    responses: dict[int, int] = attrs.Factory(dict)  # by status class: 2 → 2xx
    errors: dict[str, int] = attrs.Factory(dict)  # by error type, for requests that failed
    internal_errors: int = 0  # exceptions from filters or from our own code
    retries: int = 0
    connection_crashes: int = 0
    rejected: int = 0  # request heads refused by the strict checks (answered 4xx/5xx, connection closed)

    def count_response(self, status: int) -> None:
        key = status // 100
        self.responses[key] = self.responses.get(key, 0) + 1


@attrs.define
class ProxyRuntime:
    """Everything a connection needs to serve requests for one service, shared by its connections."""

    app: ProxyHttp
    pool: ConnectionPool
    counters: ProxyCounters = attrs.Factory(ProxyCounters)
    settings: ProxySettings = attrs.Factory(ProxySettings)
    codec: Codec = attrs.Factory(select_codec)
    #: What a peer that leaves them unset gets: the server's `ca_file` and `client_bind_to_ipv4/6`.
    peer_defaults: PeerDefaults | None = None
    #: Opens a connection to a peer (the seam a test replaces with an in-memory network).
    connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]] = connect_peer
    #: Which of the app's phases a request calls (the others are defaults that do nothing).
    phases: Phases = attrs.field(
        kw_only=True, default=attrs.Factory(lambda self: Phases.of(self.app), takes_self=True)
    )

    @classmethod
    def for_service(
        cls,
        app: ProxyHttp,
        pool: ConnectionPool,
        settings: ProxySettings,
        *,
        counters: ProxyCounters | None = None,
        connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]] = connect_peer,
    ) -> ProxyRuntime:
        """The runtime of a service with `settings`: its codec and peer defaults decided once, here."""
        return cls(
            app,
            pool,
            ProxyCounters() if counters is None else counters,
            settings,
            select_codec(settings.codec),
            PeerDefaults.from_settings(settings),
            connect,
        )


@attrs.frozen
class PeerDefaults:
    """Server-wide settings for upstream connections, applied to a peer whose options leave them unset.

    Args:
        ca: the CA bundle file upstream certificates are checked against (Pingora's `ca_file`).
        bind_ipv4: source addresses for IPv4 peers, one picked at random per connection (Pingora's
            `client_bind_to_ipv4`); host names count as IPv4.
        bind_ipv6: the same for IPv6 peers.
    """

    ca: str | None = None
    bind_ipv4: tuple[str, ...] = ()
    bind_ipv6: tuple[str, ...] = ()

    @classmethod
    def from_settings(cls, settings: ProxySettings) -> PeerDefaults | None:
        """The defaults `settings` give, or None when they give none."""
        if settings.ca_file is None and not settings.client_bind_to_ipv4 and not settings.client_bind_to_ipv6:
            return None
        return cls(settings.ca_file, settings.client_bind_to_ipv4, settings.client_bind_to_ipv6)

    def apply(self, peer: HttpPeer) -> HttpPeer:
        options = peer.options
        changes: dict[str, Any] = {}
        if self.ca is not None and options.ca is None and peer.tls:
            changes["ca"] = self.ca
        if options.bind_to is None and not peer.is_unix:
            choices = self.bind_ipv6 if ":" in (peer.host or "") else self.bind_ipv4
            if choices:
                changes["bind_to"] = random.choice(choices)
        if not changes:
            return peer
        # A copy: the peer may be shared by every request of a route (a declared one is), and one
        # request's random source address must not become the next one's.
        return peer.with_options(attrs.evolve(options, **changes))


async def _proxy_within(runtime: ProxyRuntime, session: Session, ctx: Any, timeout: float) -> None:
    """Proxy the request, all of it done within `timeout` seconds of its head.

    Raises:
        Error: READ_TIMEDOUT from the client's side (408) while its body was still coming, else from the
            upstream's (504); once the response has started it can only be cut off.
    """
    with trio.move_on_after(timeout) as scope:
        await _proxy_to_upstream(runtime, session, ctx)
    if scope.cancelled_caught:
        slow_client = not session.downstream.body_done
        raise Error(
            ErrorType.READ_TIMEDOUT,
            ErrorSource.DOWNSTREAM if slow_client else ErrorSource.UPSTREAM,
            context=f"the request did not finish within {timeout:g} s",
        )


def _internal(exc: Exception, what: str) -> Error:
    return Error.because(ErrorType.INTERNAL_ERROR, what, exc, ErrorSource.INTERNAL)


async def serve_request(runtime: ProxyRuntime, session: Session) -> Error | None:
    """Run every phase of one request; return the error that ended it, if any."""
    app = runtime.app
    counters = runtime.counters
    counters.requests += 1
    if session.req_header.method == "CONNECT" and not runtime.settings.allow_connect_method_proxying:
        await _refuse_connect(runtime, session)
        return None
    phases = runtime.phases
    error: Error | None = None
    ctx: Any = None
    try:
        if phases.new_ctx:
            ctx = app.new_ctx()
        if phases.early_request_filter:
            await app.early_request_filter(session, ctx)
        if not (phases.request_filter and await app.request_filter(session, ctx)):
            if not phases.proxy_upstream_filter or await app.proxy_upstream_filter(session, ctx):
                timeout = runtime.settings.request_timeout
                if timeout is None:
                    await _proxy_to_upstream(runtime, session, ctx)
                else:
                    await _proxy_within(runtime, session, ctx, timeout)
            elif session.response_written() is None:
                error = Error.explain(
                    ErrorType.http_status(502), "proxy_upstream_filter declined", ErrorSource.INTERNAL
                )
    except Error as exc:
        error = exc
    except Exception as exc:
        error = _internal(exc, f"{type(exc).__name__} in a filter")
    if error is not None:
        counters.errors[error.etype.name] = counters.errors.get(error.etype.name, 0) + 1
        if error.etype is ErrorType.INTERNAL_ERROR:
            # As a panic in Pingora: the 500 is the last thing this connection carries.
            counters.internal_errors += 1
            session.set_keepalive(None)
        await _fail(app, session, ctx, error)
    written = session.response_written()
    if written is not None:
        counters.count_response(written.status)
    if not phases.logging:
        return error
    try:
        await app.logging(session, error, ctx)
    except Exception:
        logger.exception("logging phase raised for %s", _summary(app, session, ctx))
    return error


def _summary(app: ProxyHttp, session: Session, ctx: Any) -> str:
    try:
        return app.request_summary(session, ctx)
    except Exception:
        return f"{session.req_header.method} {session.req_header.uri}"


async def _fail(app: ProxyHttp, session: Session, ctx: Any, error: Error) -> None:
    try:
        await app.fail_to_proxy(session, error, ctx)
    except Error as exc:
        logger.debug("fail_to_proxy could not answer: %s", exc)
    except Exception:
        logger.exception("fail_to_proxy raised for %s", _summary(app, session, ctx))
    try:
        suppressed = app.suppress_error_log(session, ctx, error)
    except Exception:
        suppressed = False
    if not suppressed:
        logger.error("%s, error: %s", _summary(app, session, ctx), error)


async def _connect(runtime: ProxyRuntime, peer: HttpPeer) -> tuple[ClientSide, bool]:
    key = peer.reuse_key()
    pooled = runtime.pool.checkout(key)
    if pooled is not None:
        reused: ClientSide = pooled.conn
        return reused, True
    options = peer.options
    stream = await runtime.connect(peer)
    if type(stream) is SocketStream:
        # Its reads' timeouts are armed in the service's deadlines (no cancel scope per read).
        stream.deadlines = runtime.pool.deadlines
    conn = runtime.codec.client(
        stream, read_timeout=options.read_timeout, write_timeout=options.write_timeout
    )
    return conn, False


async def _proxy_to_upstream(runtime: ProxyRuntime, session: Session, ctx: Any) -> None:
    app = runtime.app
    settings = runtime.settings
    request = session.req_header
    if request.method in MAX_FORWARDS_METHODS and await _answer_here(settings, session):
        return
    if has_looped(settings.forwarding, request):
        raise Error.explain(
            ErrorType.http_status(508),
            f"the request already went through this proxy (Via: {request.headers.get('via')})",
            ErrorSource.DOWNSTREAM,
        )
    retries = 0
    while True:
        if retries:
            runtime.counters.retries += 1
        _feedback.clear()
        peer = await app.upstream_peer(session, ctx)
        if runtime.peer_defaults is not None:
            peer = runtime.peer_defaults.apply(peer)
        attempt = _feedback.claim(peer.address)
        try:
            retry = await _attempt(runtime, session, ctx, peer=peer, attempt=attempt, retries=retries)
        finally:
            attempt.finish(Outcome.ABANDONED)
        if not retry:
            return
        retries += 1


def _may_retry(runtime: ProxyRuntime, retries: int) -> bool:
    """Whether another try may follow try number `retries + 1`: Pingora makes at most `max_retries` tries
    in all (and we make one even when it is 0)."""
    return retries + 1 < runtime.settings.max_retries


async def _attempt(
    runtime: ProxyRuntime,
    session: Session,
    ctx: Any,
    *,
    peer: HttpPeer,
    attempt: _feedback.Attempt,
    retries: int,
) -> bool:
    """One try at `peer`; True when it failed in a way worth another try."""
    app = runtime.app
    pool = runtime.pool
    options = peer.options
    try:
        conn, reused = await _connect(runtime, peer)
    except Error as exc:
        attempt.finish(Outcome.CONNECT_FAILURE)
        exc = app.fail_to_connect(session, peer, ctx, exc)
        if exc.retry_for(False) and _may_retry(runtime, retries):
            return True
        raise exc
    if reused:
        # The timeouts are this request's peer's, whatever connection carries it (Pingora sets them on
        # every request).
        conn.read_timeout = options.read_timeout
        conn.write_timeout = options.write_timeout
    try:
        if runtime.phases.connected_to_upstream:
            await app.connected_to_upstream(session, reused, peer, ctx)
        status = await Exchange(
            app, session, ctx, conn, runtime.settings.forwarding, phases=runtime.phases
        ).run()
    except Exception as exc:
        await conn.abort()
        error = exc if isinstance(exc, Error) else _internal(exc, f"{type(exc).__name__} in a filter")
        attempt.finish(Outcome.FAILURE if error.source is ErrorSource.UPSTREAM else Outcome.ABANDONED)
        if error.source is ErrorSource.DOWNSTREAM or session.response_written() is not None:
            raise error from None
        error = app.error_while_proxy(peer, session, error, ctx, reused)
        retry = error.retry_for(reused) and _may_retry(runtime, retries)
        if retry and not session.retry_buffer_truncated:
            return True
        raise error from None
    except BaseException:
        # Cancelled (the request's deadline, a shutdown): the exchange stopped anywhere; the connection is
        # in an unknown state and must not be left open or reused.
        with trio.CancelScope(shield=True):
            await conn.abort()
        raise
    attempt.finish(Outcome.SERVER_ERROR if status >= 500 else Outcome.SUCCESS)
    if not (conn.reusable and conn.start_next_cycle()) or not pool.checkin(
        peer.reuse_key(), conn, conn.stream, peer.options.idle_timeout
    ):
        await conn.close()
    return False


async def _answer_here(settings: ProxySettings, session: Session) -> bool:
    """Answer a TRACE or OPTIONS that must not go upstream (RFC 9110 §7.6.2, §9.3.8); True when answered.

    Raises:
        Error: `HTTPStatus(400)` for an invalid Max-Forwards.
    """
    answer = answer_here(
        settings.forwarding, session.req_header, connect=settings.allow_connect_method_proxying
    )
    if answer is None:
        return False
    response, body = answer
    if not session.request_body_done:
        session.set_keepalive(None)  # the body was not read: the connection cannot carry another request
    await session.write_response_header(response, end_of_stream=not body)
    if body:
        await session.write_response_body(body, end_of_stream=True)
    return True


async def _refuse_connect(runtime: ProxyRuntime, session: Session) -> None:
    """Answer a CONNECT with 405 before any phase sees it (Pingora's default): a reverse proxy opens no
    tunnels. The connection ends after the answer: what the client sends next is the tunnel it expects."""
    runtime.counters.rejected += 1
    response = ResponseHeader.build(405)
    response.insert_header("Allow", allowed_methods(runtime.settings.forwarding))
    response.insert_header("Content-Length", "0")
    session.set_keepalive(None)
    await session.write_response_header(response, end_of_stream=True)
    runtime.counters.count_response(405)
