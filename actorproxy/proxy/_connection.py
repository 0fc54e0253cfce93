"""`ConnectionActor`: one accepted downstream socket, serving requests until the connection ends.

Rules:
- The actor runs its own loop (`run`), not a mailbox loop: read a request head, run the phases, repeat
  while keep-alive holds. Between requests the wait for the next head is bounded by the keep-alive idle
  timeout. A head that is there already (buffered, or one read away) is taken without a wait, so without
  the cancel scope that bounds one (about 5 µs to enter and leave). A scope per wait, rather than one per
  connection whose deadline moves: moving a deadline twice costs most of a new scope, and a deadline that
  expired just as a request arrived would cancel that request along with the wait.
- A stop request (the server drains) lets the request in flight finish with keep-alive turned off (when its
  response head is not out yet), and gives an idle connection, or one whose last response already promised
  keep-alive, `DRAIN_LINGER` seconds for one more request, answered with `Connection: close`: closing at
  once would race with a client already sending on it, which would see its request fail.
- A crash (a bug in our code) answers 500 if no response has started, closes the socket, and then
  propagates to the ConnectionSupervisor, which counts it. Other connections never notice.
- Requests are read with the service's `HttpLimits`, through the codec's strict checks. A head they refuse
  is answered with its status (400, 414, 417, 431, 501, 505, ...), `Connection: close`, and the connection
  ends: nothing of it, or of what follows it on the connection, reaches the phases or an upstream.
- A connection that ends with client bytes left unread (a refused head, a body not read) is closed the way
  nginx's lingering close does it: the write side first (the answer is followed by a FIN), then what the
  client still sends is read and dropped for up to `LINGER_TIMEOUT` seconds, so that closing with unread
  data does not reset the connection and destroy the answer before the client reads it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from actorproxy.http import (
    Error,
    ErrorSource,
    ErrorType,
    ProtocolError,
    ResponseHeader,
    ServerSide,
    status_for,
)
from actors import Actor, ExitReason

from ._engine import ProxyRuntime, serve_request
from ._session import Session

__all__ = ["DRAIN_LINGER", "LINGER_TIMEOUT", "ConnectionActor"]

logger = logging.getLogger("actorproxy.proxy")

# How long a draining server waits for one more request on an idle keep-alive connection.
DRAIN_LINGER = 1.0
# How long a connection closed with client bytes unread keeps reading (and dropping) them after its last
# answer, and how many bytes at most: nginx's `lingering_timeout` is 5 s and `lingering_time` 30 s; a client
# that reads its answer closes at once, so 2 s only holds a socket from one that does not.
LINGER_TIMEOUT = 2.0
LINGER_MAX_BYTES = 1 << 20
# How long the answer to a refused head may take to write: a client that does not read loses it.
REJECT_WRITE_TIMEOUT = 5.0


class ConnectionActor(Actor):
    """Serves the requests of one downstream connection through `app`'s phases."""

    start_timeout = 5.0
    shutdown_timeout = 30.0

    def __init__(self, stream: trio.abc.Stream, runtime: ProxyRuntime) -> None:
        self.stream = stream
        self.runtime = runtime
        self.downstream: ServerSide = runtime.codec.server(stream, limits=runtime.settings.limits)
        self.requests = 0
        self._idle: trio.CancelScope | None = None
        # The stream's own checkpoint when it has one (`SocketStream`: it also restarts its count of
        # operations that did not wait), else trio's.
        self._checkpoint: Callable[[], Awaitable[None]] = getattr(
            stream, "checkpoint", trio.lowlevel.checkpoint
        )

    def _addresses(self) -> tuple[Any, Any]:
        socket = getattr(self.stream, "socket", None)
        if socket is None:
            transport = getattr(self.stream, "transport_stream", None)
            socket = getattr(transport, "socket", None)
        if socket is None:
            return None, None
        try:
            return socket.getpeername(), socket.getsockname()
        except OSError:
            return None, None

    async def run(self) -> None:
        client_addr, server_addr = self._addresses()
        downstream = self.downstream
        settings = self.runtime.settings
        try:
            while True:
                try:
                    header = await self._next_request()
                except ProtocolError as exc:
                    await self._reject(exc, client_addr)
                    return
                if header is None:
                    return
                self.requests += 1
                if self.context.stop_requested:
                    downstream.set_keepalive(False)
                session = Session(
                    downstream,
                    header,
                    client_addr=client_addr,
                    server_addr=server_addr,
                    keepalive_timeout=settings.keepalive_timeout,
                    request_body_timeout=settings.request_body_timeout,
                )
                await serve_request(self.runtime, session)
                # A response that went out keep-alive before a stop request promised the client another
                # turn: the next wait lingers, and that request is answered with `Connection: close`.
                if not downstream.keepalive or not downstream.start_next_cycle():
                    if not downstream.body_done:
                        await self._linger()
                    return
                await self._checkpoint()  # streams yield only when they wait (proxy._sockets)
        except Error as exc:
            logger.debug("connection from %s ended: %s", client_addr, exc)
        except Exception:
            self.runtime.counters.connection_crashes += 1
            await self._answer_crash()
            raise

    async def _next_request(self) -> Any:
        """The next request head, or None when the connection should end (EOF, idle timeout, stop).

        One deadline bounds the whole wait, however the head arrives (not each read): the header timeout
        for the first request, the keep-alive timeout for the next ones.

        Raises:
            ProtocolError: the head was refused, or only part of it came in time (408).
        """
        downstream = self.downstream
        before = downstream.bytes_read
        try:
            # Under load the next request is often there already: no wait, so no deadline to set.
            return downstream.read_request_nowait()
        except trio.WouldBlock:
            pass
        settings = self.runtime.settings
        timeout = settings.keepalive_timeout if self.requests else settings.request_header_timeout
        if self.context.stop_requested:
            # Accepted just before the drain began: its first request is on its way.
            timeout = DRAIN_LINGER if timeout is None else min(timeout, DRAIN_LINGER)
        # One scope per wait, cancelled by its deadline or by a stop request (on_stop_request).
        scope = self._idle = trio.CancelScope()
        if timeout is not None:
            scope.deadline = trio.current_time() + timeout
        with scope:
            header = await downstream.read_request()
        self._idle = None
        if not scope.cancelled_caught:
            return header
        if downstream.bytes_read != before and not self.context.stop_requested:
            raise ProtocolError(
                ErrorType.READ_TIMEDOUT,
                ErrorSource.DOWNSTREAM,
                status_hint=408,
                context=f"the request head did not arrive within {timeout:g} s",
            )
        return None  # nothing of a next request came: the connection just ends

    async def _reject(self, error: ProtocolError, client_addr: Any) -> None:
        """Answer a head the strict checks refused with its status and `Connection: close`, then close."""
        self.runtime.counters.rejected += 1
        logger.debug("request from %s refused: %s", client_addr, error)
        downstream = self.downstream
        status = status_for(error)
        if status is None or downstream.response_started:
            return
        header = ResponseHeader.build(status)
        header.insert_header("Content-Length", "0")
        header.insert_header("Cache-Control", "private, no-store")
        downstream.set_keepalive(False)  # the answer says `Connection: close`
        try:
            with trio.fail_after(REJECT_WRITE_TIMEOUT):
                await downstream.write_response(header, end=True)
        except (Error, trio.TooSlowError):
            return  # the client is gone, or does not read: nothing left to say
        await self._linger()

    async def _linger(self) -> None:
        """Close the write side, then read and drop what the client still sends, for a bounded time."""
        stream = self.stream
        if not isinstance(stream, trio.abc.HalfCloseableStream):
            return  # TLS has no half-close: its close_notify follows the answer
        with (
            trio.move_on_after(LINGER_TIMEOUT),
            contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError, OSError),
        ):
            await stream.send_eof()
            dropped = 0
            while dropped < LINGER_MAX_BYTES:
                data = await stream.receive_some(65536)
                if not data:
                    return
                dropped += len(data)

    def on_stop_request(self) -> None:
        # A connection waiting for its next request gets a last chance to send it; one in a request
        # finishes it (with keep-alive off).
        idle = self._idle
        if idle is not None:
            idle.deadline = min(idle.deadline, trio.current_time() + DRAIN_LINGER)
        elif self.downstream.response_header is None:
            self.downstream.set_keepalive(False)  # the response still to come says `Connection: close`

    async def _answer_crash(self) -> None:
        if self.downstream.response_header is None:
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                with contextlib.suppress(Error):
                    await self.downstream.write_response(_internal_error_response(), end=True)

    async def on_stop(self, reason: ExitReason) -> None:
        await self.downstream.abort() if reason.error is not None else await self.downstream.close()


def _internal_error_response() -> ResponseHeader:
    header = ResponseHeader.build(500)
    header.insert_header("Content-Length", "0")
    header.insert_header("Connection", "close")
    return header
