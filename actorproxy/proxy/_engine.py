"""The request lifecycle: Pingora's phases, the retry loop and the duplex body streams.

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
- Bodies stream in both directions at once: the request body is pumped upstream while the response is read.
  The two pumps live and die with the request (a request-scoped nursery: the request is the unit of
  structured concurrency here); no chunk travels through a mailbox.
- A request body the client frames badly (a bad chunk, a body over the limit) fails the exchange as a
  downstream error: the upstream connection, which has the head and part of the body, is aborted, never
  pooled or retried, so nothing after the bad bytes reaches an upstream; the client gets the error's status
  if no response has started, and its connection closes.
- What goes upstream (`Forwarding`, see `actorproxy.http._forward`): the connection's own fields are removed
  (hop-by-hop, and those the Connection field names, except the framing and Host); Via is added to the
  request and to the response; X-Forwarded-For / -Proto / -Host when the service asks for them; a TRACE or
  OPTIONS is answered here when its Max-Forwards is 0 (TRACE is refused unless allowed), and its
  Max-Forwards decremented otherwise. All of it happens before the user's filters see the head.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import trio

from actorproxy.http import (
    DEFAULT_LIMITS,
    ClientSide,
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    Forwarding,
    HttpLimits,
    RequestHeader,
    ResponseHeader,
    select_codec,
)

from . import _feedback
from ._connector import connect_peer
from ._feedback import Outcome
from ._peer import HttpPeer
from ._phases import BodyChunk, ProxyHttp
from ._pool import ConnectionPool
from ._session import Session

__all__ = [
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_REQUEST_HEADER_TIMEOUT",
    "PeerDefaults",
    "ProxyCounters",
    "ProxyRuntime",
    "serve_request",
]

logger = logging.getLogger("actorproxy.proxy")

# Pingora's default `max_retries`.
DEFAULT_MAX_RETRIES = 16
# nginx's client_header_timeout and client_body_timeout (Pingora has no downstream read timeouts): a client
# that trickles its request ties up a connection no longer than this.
DEFAULT_REQUEST_HEADER_TIMEOUT = 60.0
DEFAULT_REQUEST_BODY_TIMEOUT = 60.0

# Hop-by-hop fields (RFC 9110 §7.6.1) are the connection's own business, never forwarded. Transfer-Encoding is
# not in the list: the codec frames the body by it again on the next hop.
HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-connection", "te", "upgrade"})
# Fields a Connection option cannot remove: the message's framing and its Host. RFC 9110 §7.6.1 asks a proxy
# to drop every field Connection names, but `Connection: Content-Length` (or `Host`) would then leave a body
# without its length, or a request without its authority: the codec frames the first again, and the second
# is the routing the request was accepted with.
_KEPT_ON_THE_WAY = frozenset({"transfer-encoding", "content-length", "host"})
# What an upgrade keeps of the connection's own fields: the upgrade is asked of the next hop too.
_UPGRADE_FIELDS = frozenset({"connection", "upgrade"})
# RFC 9110 §7.6.2: the methods whose Max-Forwards a proxy checks and decrements.
_MAX_FORWARDS_METHODS = frozenset({"TRACE", "OPTIONS"})


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
    codec: Codec = attrs.Factory(select_codec)
    max_retries: int = DEFAULT_MAX_RETRIES
    keepalive_timeout: float | None = 60.0
    #: Seconds a client has to send a whole request head, from when the wait for it starts; the keep-alive
    #: timeout bounds the heads after the first. None: no limit.
    request_header_timeout: float | None = DEFAULT_REQUEST_HEADER_TIMEOUT
    #: Seconds a client may leave between two pieces of a request body.
    request_body_timeout: float | None = DEFAULT_REQUEST_BODY_TIMEOUT
    limits: HttpLimits = DEFAULT_LIMITS
    forwarding: Forwarding = attrs.Factory(Forwarding)
    #: Seconds from a request's head to the end of its response; None: no limit (only the per-read ones).
    request_timeout: float | None = None
    #: What a peer that leaves them unset gets: the server's `ca_file` and `client_bind_to_ipv4/6`.
    peer_defaults: PeerDefaults | None = None
    #: Opens a connection to a peer (the seam a test replaces with an in-memory network).
    connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]] = connect_peer


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

    def apply(self, peer: HttpPeer) -> None:
        options = peer.options
        if self.ca is not None and options.ca is None and peer.tls:
            options.ca = self.ca
        if options.bind_to is None and not peer.is_unix:
            choices = self.bind_ipv6 if ":" in (peer.host or "") else self.bind_ipv4
            if choices:
                options.bind_to = random.choice(choices)


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
    error: Error | None = None
    ctx: Any = None
    try:
        ctx = app.new_ctx()
        await app.early_request_filter(session, ctx)
        if not await app.request_filter(session, ctx):
            if await app.proxy_upstream_filter(session, ctx):
                if runtime.request_timeout is None:
                    await _proxy_to_upstream(runtime, session, ctx)
                else:
                    await _proxy_within(runtime, session, ctx, runtime.request_timeout)
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
    conn = runtime.codec.client(
        stream, read_timeout=options.read_timeout, write_timeout=options.write_timeout
    )
    return conn, False


async def _proxy_to_upstream(runtime: ProxyRuntime, session: Session, ctx: Any) -> None:
    app = runtime.app
    method = session.req_header.method
    if method in _MAX_FORWARDS_METHODS and await _answer_here(runtime.forwarding, session):
        return
    retries = 0
    while True:
        if retries:
            runtime.counters.retries += 1
        _feedback.clear()
        peer = await app.upstream_peer(session, ctx)
        if runtime.peer_defaults is not None:
            runtime.peer_defaults.apply(peer)
        attempt = _feedback.claim(peer.address)
        try:
            retry = await _attempt(runtime, session, ctx, peer=peer, attempt=attempt, retries=retries)
        finally:
            attempt.finish(Outcome.ABANDONED)
        if not retry:
            return
        retries += 1


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
    try:
        conn, reused = await _connect(runtime, peer)
    except Error as exc:
        attempt.finish(Outcome.CONNECT_FAILURE)
        exc = app.fail_to_connect(session, peer, ctx, exc)
        if exc.retry_for(False) and retries < runtime.max_retries:
            return True
        raise exc
    try:
        await app.connected_to_upstream(session, reused, peer, ctx)
        status = await _exchange(app, session, ctx, conn, runtime.forwarding)
    except Exception as exc:
        await conn.abort()
        error = exc if isinstance(exc, Error) else _internal(exc, f"{type(exc).__name__} in a filter")
        attempt.finish(Outcome.FAILURE if error.source is ErrorSource.UPSTREAM else Outcome.ABANDONED)
        if error.source is ErrorSource.DOWNSTREAM or session.response_written() is not None:
            raise error from None
        error = app.error_while_proxy(peer, session, error, ctx, reused)
        retry = error.retry_for(reused) and retries < runtime.max_retries
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


async def _answer_here(forwarding: Forwarding, session: Session) -> bool:
    """Answer a TRACE or OPTIONS that must not go upstream (RFC 9110 §7.6.2, §9.3.8); True when answered.

    Raises:
        Error: `HTTPStatus(400)` for an invalid Max-Forwards.
    """
    answer = forwarding.answer(session.req_header)
    if answer is None:
        return False
    response, body = answer
    if not session.request_body_done:
        session.set_keepalive(None)  # the body was not read: the connection cannot carry another request
    await session.write_response_header(response, end_of_stream=not body)
    if body:
        await session.write_response_body(body, end_of_stream=True)
    return True


async def _exchange(
    app: ProxyHttp, session: Session, ctx: Any, conn: ClientSide, forwarding: Forwarding
) -> int:
    """Send the request upstream and stream the response back, both bodies at once; return the upstream's
    status."""
    upstream_request = session.req_header.copy()
    upgrade = session.is_upgrade_req()
    _remove_hop_by_hop(upstream_request, upgrade=upgrade)
    # The proxy answers `Expect: 100-continue` itself when it reads the body; the upstream need not.
    upstream_request.remove_header("expect")
    scheme = "https" if isinstance(session.downstream.stream, trio.SSLStream) else "http"
    forwarding.on_request(session.req_header, upstream_request, session.client_addr, scheme)
    await app.upstream_request_filter(session, upstream_request, ctx)
    if not _request_has_body(session):
        await conn.write_request(upstream_request, end=True)
        return await _relay_response(app, session, ctx, conn, upgrade, forwarding=forwarding)
    await conn.write_request(upstream_request)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pump_request_body, app, session, ctx, conn)
            status = await _relay_response(app, session, ctx, conn, upgrade, forwarding=forwarding)
    except BaseExceptionGroup as group:
        raise _first_error(group) from None
    return status


def _first_error(group: BaseExceptionGroup[BaseException]) -> BaseException:
    """The error that ended a duplex exchange, out of the pumps' exception group.

    When one pump fails the other is cancelled, so the group holds one real error and Cancelled leaves;
    the error keeps its type, source and retry decision. A group with no Exception in it (cancellation,
    KeyboardInterrupt) goes on up whole.
    """
    errors, _ = group.split(Exception)
    if errors is None:
        return group
    leaf: BaseException = errors
    while isinstance(leaf, BaseExceptionGroup):
        leaf = next((e for e in leaf.exceptions if isinstance(e, Error)), leaf.exceptions[0])
    return leaf


def _remove_hop_by_hop(header: RequestHeader | ResponseHeader, *, upgrade: bool = False) -> None:
    """Drop the connection's own fields, and those the Connection field names, in one pass.

    An upgrade request keeps `Connection: Upgrade` and its Upgrade field: the switch is asked of the
    upstream too; the other fields Connection names still go.
    """
    headers = header.headers
    names = HOP_BY_HOP
    if "connection" in headers:
        named = {
            token.strip().lower() for value in headers.get_all("connection") for token in value.split(",")
        }
        names = names | (named - _KEPT_ON_THE_WAY)
    if not upgrade:
        headers.remove_all(names)
        return
    headers.remove_all(names - _UPGRADE_FIELDS)
    headers.set("Connection", "Upgrade")


def _request_has_body(session: Session) -> bool:
    headers = session.req_header.headers
    if "transfer-encoding" in headers:
        return True
    length = headers.get("content-length")
    return length is not None and length.strip() not in ("", "0")


async def _pump_request_body(app: ProxyHttp, session: Session, ctx: Any, conn: ClientSide) -> None:
    chunk = BodyChunk(None)
    # A retry replays what the buffer kept of the body, then carries on reading the client.
    for piece in list(session.retry_buffer()):
        chunk.data = piece
        await _send_request_piece(app, session, ctx, conn, chunk, end=False)
    while True:
        data = await session.read_request_body()
        chunk.data = data
        end = data is None
        await _send_request_piece(app, session, ctx, conn, chunk, end=end)
        if end:
            await conn.finish(session.request_trailers)
            return


async def _send_request_piece(
    app: ProxyHttp, session: Session, ctx: Any, conn: ClientSide, chunk: BodyChunk, *, end: bool
) -> None:
    delay = await app.request_body_filter(session, chunk, end, ctx)
    if chunk.data:
        await conn.write_body(chunk.data)
    if delay:
        await trio.sleep(delay)


async def _relay_response(
    app: ProxyHttp,
    session: Session,
    ctx: Any,
    conn: ClientSide,
    upgrade: bool,
    *,
    forwarding: Forwarding,
) -> int:
    """Relay the response; return its status as the upstream sent it."""
    response: ResponseHeader = await conn.read_response()
    status = response.status
    forwarding.on_response(response)
    if response.status == 101:
        if not upgrade:
            raise Error.explain(
                ErrorType.INVALID_HTTP_HEADER, "101 without an upgrade request", ErrorSource.UPSTREAM
            )
        await app.upstream_response_filter(session, response, ctx)
        await app.response_filter(session, response, ctx)
        await _tunnel(session, conn, response)
        return status
    if upgrade:
        # The upstream refused the upgrade: its answer goes through as usual, and the connection ends.
        session.set_keepalive(None)
    await app.upstream_response_filter(session, response, ctx)
    await app.response_filter(session, response, ctx)
    _remove_hop_by_hop(response)
    downstream = session.downstream
    chunk = BodyChunk(None)
    # A head goes out with the body that arrived with it, in one write (measured +4-21% on small bodies).
    try:
        chunk.data = conn.read_body_nowait()
    except trio.WouldBlock:
        await downstream.write_response(response)
    else:
        end = chunk.data is None
        await _filter_response_piece(app, session, ctx, chunk, end)
        whole = end and conn.response_trailers is None
        await downstream.write_response(response, chunk.data or b"", end=whole)
        if whole:
            return status
        if end:
            await _finish_response(app, session, ctx, conn)
            return status
    while True:
        chunk.data = await conn.read_body()
        end = chunk.data is None
        await _filter_response_piece(app, session, ctx, chunk, end)
        if chunk.data:
            await downstream.write_body(chunk.data)
        if end:
            await _finish_response(app, session, ctx, conn)
            return status


async def _filter_response_piece(
    app: ProxyHttp, session: Session, ctx: Any, chunk: BodyChunk, end: bool
) -> None:
    delay = await app.upstream_response_body_filter(session, chunk, end, ctx)
    if delay:
        await trio.sleep(delay)
    delay = await app.response_body_filter(session, chunk, end, ctx)
    if delay:
        await trio.sleep(delay)


async def _finish_response(app: ProxyHttp, session: Session, ctx: Any, conn: ClientSide) -> None:
    trailers = conn.response_trailers
    if trailers is not None:
        await app.upstream_response_trailer_filter(session, trailers, ctx)
        await app.response_trailer_filter(session, trailers, ctx)
    await session.downstream.finish(trailers)


async def _tunnel(session: Session, conn: ClientSide, response: ResponseHeader) -> None:
    """After a 101: relay raw bytes both ways until either side closes; the connection ends with it."""
    session.set_keepalive(None)
    downstream = session.downstream
    await downstream.write_response(response)
    client, client_early = downstream.detach()
    server, server_early = conn.detach()
    try:
        if server_early:
            await client.send_all(server_early)
        if client_early:
            await server.send_all(client_early)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_pipe, client, server, nursery.cancel_scope)
            await _pipe(server, client, nursery.cancel_scope)
    except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
        raise Error.because(
            ErrorType.CONNECTION_CLOSED, "tunnel closed", exc, ErrorSource.DOWNSTREAM
        ) from exc
    finally:
        await trio.aclose_forcefully(server)
        await trio.aclose_forcefully(client)


async def _pipe(source: trio.abc.Stream, sink: trio.abc.Stream, done: trio.CancelScope) -> None:
    try:
        while data := await source.receive_some(65536):
            await sink.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    # Either side closing ends the tunnel: there is no half-open state worth keeping for WebSocket.
    done.cancel()
