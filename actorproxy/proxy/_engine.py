"""The request lifecycle: Pingora's phases, the retry loop and failure handling.

Rules:
- `serve_request` runs the phases of one request in Pingora's order and always ends with `logging`, exactly
  once, whatever happened; then, even when cancelled or crashing, it exits the request's contexts
  (`session.enter_context`: in-flight guards). Any error that ends the request goes through
  `fail_to_proxy`, which answers the client if it still can, and is logged with `request_summary` unless
  `suppress_error_log` says not to.
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
import time
from collections.abc import Awaitable, Callable, Hashable
from random import getrandbits
from time import perf_counter
from typing import Any

import attrs
import trio

from actorproxy.config import REQUEST_ID_PATTERN, ProxySettings
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
from ._accesslog import AccessLog, AccessRecord
from ._cache import proxy_cache
from ._connector import connect_peer
from ._exchange import Exchange
from ._feedback import Outcome
from ._h2upstream import connect_h2
from ._histogram import Histogram
from ._peer import ALPN, HttpPeer
from ._phases import Phases, ProxyHttp
from ._pool import ConnectionPool
from ._session import Session
from ._sockets import SocketStream

__all__ = ["PeerDefaults", "ProxyCounters", "ProxyRuntime", "serve_request"]

logger = logging.getLogger("actorproxy.proxy")

#: Methods counted by name in the metrics (RFC 9110 §9's and PATCH); any other is "OTHER", so a client
#: cannot grow the label set.
COUNTED_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
# A new request id: 128 random bits, as a UUID has, written as 32 hex digits.
REQUEST_ID_BITS = 128
# The default peer's versions, compared by identity on the request path.
_H1 = ALPN.H1


@attrs.define
class ProxyCounters:
    """What one service has seen; plain integers (one trio thread), read by metrics and tests."""

    requests: int = 0
    responses: dict[int, int] = attrs.Factory(dict)  # by status class: 2 → 2xx
    #: Finished requests by (route, method, status class); a method outside `COUNTED_METHODS` is "OTHER".
    finished: dict[tuple[str, str, int], int] = attrs.Factory(dict)
    errors: dict[str, int] = attrs.Factory(dict)  # by error type, for requests that failed
    internal_errors: int = 0  # exceptions from filters or from our own code
    retries: int = 0
    retry_reasons: dict[str, int] = attrs.Factory(dict)  # retries by the error type that caused them
    connect_errors: dict[str, int] = attrs.Factory(dict)  # failed upstream connects by error type
    connection_crashes: int = 0
    rejected: int = 0  # request heads refused by the strict checks (answered 4xx/5xx, connection closed)
    rejected_by_status: dict[int, int] = attrs.Factory(dict)  # those refusals by the status answered
    #: Client connections open now, and accepted in all.
    connections_open: int = 0
    connections: int = 0
    #: Bytes read from and written to clients, heads and framing included.
    bytes_received: int = 0
    bytes_sent: int = 0
    #: Upstream connections carrying a request now (taken from the pool or opened for it).
    upstream_in_use: int = 0
    #: Count by route, method and status, bytes and durations too (`finished`, `bytes_*`, the histograms):
    #: set when a metrics or admin page shows them, so a server without one does not pay for them.
    detailed: bool = False
    #: Seconds from a request's head to the end of its response (its `logging` phase).
    request_duration: Histogram = attrs.Factory(Histogram)
    #: Seconds from sending a request upstream to the response head (time to first byte), per attempt.
    upstream_ttfb: Histogram = attrs.Factory(Histogram)
    #: Requests the HTTP cache answered, by (route, x-cache word: HIT, MISS, STALE, REVALIDATED, BYPASS).
    cache_outcomes: dict[tuple[str, str], int] = attrs.Factory(dict)

    def count_response(self, status: int) -> None:
        key = status // 100
        self.responses[key] = self.responses.get(key, 0) + 1

    def count_rejection(self, status: int | None) -> None:
        self.rejected += 1
        if status is not None:
            self.rejected_by_status[status] = self.rejected_by_status.get(status, 0) + 1

    @staticmethod
    def bump(table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1


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
    #: Where each request leaves its access log record; None: no access log.
    access_log: AccessLog | None = None
    #: What carries one attempt (the HTTP cache's upstream part uses its own, `_cache.CacheExchange`).
    exchange: type[Exchange] = Exchange
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
        access_log: AccessLog | None = None,
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
            access_log,
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
    """Run every phase of one request; return the error that ended it, if any.

    What the phases tied to the request (`session.enter_context`) is exited when it ends, however it ends:
    `finally` costs nothing on the way through, and a request that entered nothing skips the call.
    """
    started = perf_counter()
    try:
        app = runtime.app
        counters = runtime.counters
        counters.requests += 1
        id_header = runtime.settings.request_id_header
        if id_header is not None:
            session.request_id_header = id_header
            session.request_id = request_id(session.req_header.headers.get(id_header))
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
                if app.cache_phases:  # the HTTP cache's phases (_cache.py), then maybe _go_upstream
                    await proxy_cache(runtime, session, ctx, _go_upstream)
                elif phases.proxy_upstream_filter or runtime.settings.request_timeout is not None:
                    await _go_upstream(runtime, session, ctx)
                else:  # what _go_upstream comes to, without its frame
                    await _proxy_to_upstream(runtime, session, ctx)
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
        _account(runtime, session, error, perf_counter() - started)
        if phases.logging:
            try:
                await app.logging(session, error, ctx)
            except Exception:
                logger.exception("logging phase raised for %s", _summary(app, session, ctx))
        return error
    finally:
        if session.has_contexts:
            session.exit_contexts()


async def _go_upstream(runtime: ProxyRuntime, session: Session, ctx: Any) -> None:
    """proxy_upstream_filter, then the upstream, within the service's request_timeout if it has one.

    Raises:
        Error: what failed; HTTPStatus(502) when proxy_upstream_filter declined and wrote no response.
    """
    if not runtime.phases.proxy_upstream_filter or await runtime.app.proxy_upstream_filter(session, ctx):
        timeout = runtime.settings.request_timeout
        if timeout is None:
            await _proxy_to_upstream(runtime, session, ctx)
        else:
            await _proxy_within(runtime, session, ctx, timeout)
    elif session.response_written() is None:
        raise Error.explain(
            ErrorType.http_status(502), "proxy_upstream_filter declined", ErrorSource.INTERNAL
        )


def _account(runtime: ProxyRuntime, session: Session, error: Error | None, duration: float) -> None:
    """Count a request that ended (in detail when a page shows it), and leave its access log record."""
    counters = runtime.counters
    written = session.downstream.response_header  # `session.response_written()`
    status_class = 0
    if written is not None:
        status_class = written.status // 100
        counters.count_response(written.status)
    if runtime.access_log is not None:
        runtime.access_log.push(access_record(session, written, error, duration))
    if not counters.detailed:
        return
    method = session.req_header.method
    key = (session.route or "", method if method in COUNTED_METHODS else "OTHER", status_class)
    counters.finished[key] = counters.finished.get(key, 0) + 1
    downstream = session.downstream
    read_before, written_before = session.wire_start
    counters.bytes_received += downstream.bytes_read - read_before
    counters.bytes_sent += downstream.bytes_written - written_before
    counters.request_duration.observe(duration)


def request_id(incoming: str | None) -> str:
    """The id of a request: the one it came with when well formed, else a new random one."""
    if incoming is not None and REQUEST_ID_PATTERN.fullmatch(incoming):
        return incoming
    # The random module's generator: no system call (os.urandom is one), reseeded in a forked worker.
    return f"{getrandbits(REQUEST_ID_BITS):032x}"


def access_record(
    session: Session, written: ResponseHeader | None, error: Error | None, duration: float
) -> AccessRecord:
    """What the access log keeps of a request that just ended."""
    request = session.req_header
    headers = request.headers
    downstream = session.downstream
    read_before, written_before = session.wire_start
    stream = downstream.stream
    return AccessRecord(
        end=time.time(),
        client=session.client_addr,
        method=request.method,
        path=request.uri,
        version=request.version,
        host=headers.get("host"),
        status=None if written is None else written.status,
        bytes_sent=downstream.bytes_written - written_before,
        bytes_received=downstream.bytes_read - read_before,
        duration=duration,
        upstream=session.upstream_addr,
        upstream_ttfb=session.upstream_ttfb,
        retries=session.retries,
        request_id=session.request_id,
        tls_version=stream.version() if isinstance(stream, trio.SSLStream) else None,
        route=session.route,
        cache=session.cache_status,
        referer=headers.get("referer"),
        user_agent=headers.get("user-agent"),
        error=None if error is None else error.etype.name,
    )


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


async def _connect(
    runtime: ProxyRuntime, peer: HttpPeer, key: Hashable, session: Session
) -> tuple[ClientSide, bool]:
    """A connection to `peer` (whose `reuse_key()` is `key`), pooled if one is idle; and whether it was."""
    if peer.options.alpn is not _H1:
        return await connect_h2(
            runtime.pool,
            runtime.connect,
            runtime.codec,
            runtime.settings.http2,
            peer,
            upgrade=session.is_upgrade_req(),
        )
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
        session.upstream_addr = peer.address
        session.retries = retries
        attempt = _feedback.claim(peer.address)
        try:
            retry = await _attempt(runtime, session, ctx, peer=peer, attempt=attempt, retries=retries)
        finally:
            if not attempt.done:  # finished already, or not tracked (`NO_ATTEMPT`): nothing to do
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
    counters = runtime.counters
    key = peer.reuse_key()
    try:
        conn, reused = await _connect(runtime, peer, key, session)
    except Error as exc:
        attempt.finish(Outcome.CONNECT_FAILURE)
        counters.bump(counters.connect_errors, exc.etype.name)
        exc = app.fail_to_connect(session, peer, ctx, exc)
        if exc.retry_for(False) and _may_retry(runtime, retries):
            counters.bump(counters.retry_reasons, exc.etype.name)
            return True
        raise exc
    pool = runtime.pool
    options = peer.options
    if reused:
        # The timeouts are this request's peer's, whatever connection carries it (Pingora sets them on
        # every request).
        conn.read_timeout = options.read_timeout
        conn.write_timeout = options.write_timeout
    counters.upstream_in_use += 1
    try:
        if runtime.phases.connected_to_upstream:
            await app.connected_to_upstream(session, reused, peer, ctx)
        status = await runtime.exchange(
            app, session, ctx, conn, runtime.settings.forwarding, phases=runtime.phases
        ).run()
        if counters.detailed and session.upstream_ttfb is not None:
            counters.upstream_ttfb.observe(session.upstream_ttfb)
    except Exception as exc:
        await conn.abort()
        error = exc if isinstance(exc, Error) else _internal(exc, f"{type(exc).__name__} in a filter")
        attempt.finish(Outcome.FAILURE if error.source is ErrorSource.UPSTREAM else Outcome.ABANDONED)
        if error.source is ErrorSource.DOWNSTREAM or session.response_written() is not None:
            raise error from None
        error = app.error_while_proxy(peer, session, error, ctx, reused)
        retry = error.retry_for(reused) and _may_retry(runtime, retries)
        if retry and not session.retry_buffer_truncated:
            counters.bump(counters.retry_reasons, error.etype.name)
            return True
        raise error from None
    except BaseException:
        # Cancelled (the request's deadline, a shutdown): the exchange stopped anywhere; the connection is
        # in an unknown state and must not be left open or reused.
        with trio.CancelScope(shield=True):
            await conn.abort()
        raise
    finally:
        counters.upstream_in_use -= 1
    if not attempt.done:
        attempt.finish(Outcome.SERVER_ERROR if status >= 500 else Outcome.SUCCESS)
    # `start_next_cycle` is False for a connection that is not reusable.
    if not conn.start_next_cycle() or not pool.checkin(key, conn, conn.stream, peer.options.idle_timeout):
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
    runtime.counters.count_rejection(405)
    response = ResponseHeader.build(405)
    response.insert_header("Allow", allowed_methods(runtime.settings.forwarding))
    response.insert_header("Content-Length", "0")
    session.set_keepalive(None)
    await session.write_response_header(response, end_of_stream=True)
    runtime.counters.count_response(405)
