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
- HTTP/2: a TLS connection whose ALPN picked h2, or a cleartext one that starts with the h2c preface on a
  listener that allows it (`h2c`, prior knowledge, RFC 9113 §3.3), is served by `serve_h2` in this actor
  (its streams in the actor's own nursery, see `_h2downstream`); a stop request sends it a GOAWAY. The
  look at the preface is a peek (nothing is consumed unless it is the preface), and only on such
  listeners; the TLS handshake is done first, as the first read would do it, bounded by the header
  timeout. An HTTP/1.1 connection pays nothing for any of it. An HTTP/2 connection we end with an error
  (a flood, a protocol error: its GOAWAY sent) closes lingering too, so the GOAWAY reaches the client
  rather than being lost to the reset a close with unread bytes sends.
- A connection that ends with client bytes left unread (a refused head, a body not read) is closed the way
  nginx's lingering close does it: the write side first (the answer is followed by a FIN), then what the
  client still sends is read and dropped for up to `LINGER_TIMEOUT` seconds, so that closing with unread
  data does not reset the connection and destroy the answer before the client reads it.
"""

from __future__ import annotations

import contextlib
import logging
import socket as _socket
import sys
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
from actorproxy.http.h2 import CONNECTION_PREFACE, H2ServerConnection
from actors import Actor, ExitReason

from ._deadlines import Armed
from ._engine import ProxyRuntime, serve_request
from ._h2downstream import serve_h2
from ._session import Session
from ._sockets import SocketStream

__all__ = ["DRAIN_LINGER", "LINGER_TIMEOUT", "ConnectionActor"]

logger = logging.getLogger("actorproxy.proxy")

# How long a draining server waits for one more request on an idle keep-alive connection.
DRAIN_LINGER = 1.0
# How long a connection closed with client bytes unread keeps reading (and dropping) them after its last
# answer, and how many bytes at most: nginx's `lingering_timeout` is 5 s and `lingering_time` 30 s; a client
# that reads its answer closes at once, so 2 s only holds a socket from one that does not.
LINGER_TIMEOUT = 2.0
LINGER_MAX_BYTES = 1 << 20
# How an HTTP/2 connection ends when we closed it with a GOAWAY carrying an error (`H2ServerConnection`).
_OUR_GOAWAY = frozenset({ErrorType.H2_ERROR, ErrorType.INVALID_H2})
# How long the answer to a refused head may take to write: a client that does not read loses it.
REJECT_WRITE_TIMEOUT = 5.0


# `read_request_nowait` found no head: wait for one.
_WAIT: Any = object()
# The listening addresses connections were accepted on, one tuple each (see `_addresses`).
_SHARED_ADDRESSES: dict[Any, Any] = {}


class ConnectionActor(Actor):
    """Serves the requests of one downstream connection through `app`'s phases."""

    # Slots, the kernel's `context` among them: no instance dict for every connection, idle ones included.
    __slots__ = (
        "_armed",
        "_armed_timeout",
        "_idle",
        "context",
        "downstream",
        "h2",
        "h2c",
        "requests",
        "runtime",
        "stream",
    )

    start_timeout = 5.0
    shutdown_timeout = 30.0

    def __init__(self, stream: trio.abc.Stream, runtime: ProxyRuntime, h2c: bool = False) -> None:
        self.stream = stream
        #: The listener accepts HTTP/2 in cleartext (prior knowledge).
        self.h2c = h2c
        #: The HTTP/2 connection, when the client speaks HTTP/2.
        self.h2: H2ServerConnection | None = None
        self.runtime = runtime
        self.downstream: ServerSide = runtime.codec.server(stream, limits=runtime.settings.limits)
        self.requests = 0
        # What bounds the wait for the next head: a cancel scope, or a deadline in the service's deadlines.
        self._idle: trio.CancelScope | None = None
        self._armed: Armed | None = None
        self._armed_timeout = 0.0

    def _addresses(self) -> tuple[Any, Any]:
        socket = getattr(self.stream, "socket", None)
        if socket is None:
            transport = getattr(self.stream, "transport_stream", None)
            socket = getattr(transport, "socket", None)
        if socket is None:
            return None, None
        try:
            peer, ours = socket.getpeername(), socket.getsockname()
        except OSError:
            return None, None
        # Held for the connection's life: the peer's host interned, our address shared by the connections
        # of a listener (a few hundred bytes of every idle connection otherwise).
        if isinstance(peer, tuple) and peer and isinstance(peer[0], str):
            peer = (sys.intern(peer[0]), *peer[1:])
        return peer, _SHARED_ADDRESSES.setdefault(ours, ours) if len(_SHARED_ADDRESSES) < 1024 else ours

    async def run(self) -> None:
        client_addr, server_addr = self._addresses()
        maybe_h2 = self.h2c or type(self.stream) is trio.SSLStream
        if maybe_h2 and await self._served_h2(client_addr, server_addr):
            return
        downstream = self.downstream
        settings = self.runtime.settings
        try:
            while True:
                before = downstream.bytes_read
                wire_start = (before, downstream.bytes_written)
                try:
                    # Under load the next request is often there already: no wait, so no deadline.
                    header = self._head_now()
                    if header is _WAIT:
                        socket = self._armed_socket()
                        if socket is None:
                            header = await self._wait_in_scope(before)
                        else:
                            # The wait on a socket, here in the loop's own frame: an idle connection holds
                            # nothing else of its reading (see the module rules).
                            try:
                                while (header := self._head_or_deadline(before)) is _WAIT:
                                    try:  # noqa: SIM105 (a suppress object would be held while it waits)
                                        await socket.wait_readable()
                                    except trio.ClosedResourceError:
                                        pass  # ended by its deadline, or closed: the next look says which
                            finally:
                                self._disarm()
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
                session.wire_start = wire_start
                await serve_request(self.runtime, session)
                del session, header  # an idle connection keeps nothing of its last request
                # A response that went out keep-alive before a stop request promised the client another
                # turn: the next wait lingers, and that request is answered with `Connection: close`.
                # `start_next_cycle` is False unless the connection keeps alive (`next_request_ready`).
                if not downstream.start_next_cycle():
                    if not downstream.body_done:
                        await self._linger()
                    return
                # Streams yield only when they wait (proxy._sockets); a socket's own checkpoint also
                # restarts its count of operations that did not wait.
                if type(self.stream) is SocketStream:
                    await self.stream.checkpoint()
                else:
                    await trio.lowlevel.checkpoint()
        except Error as exc:
            logger.debug("connection from %s ended: %s", client_addr, exc)
        except Exception:
            self.runtime.counters.connection_crashes += 1
            await self._answer_crash()
            raise

    async def _served_h2(self, client_addr: Any, server_addr: Any) -> bool:
        """Serve the connection as HTTP/2 if the client speaks it; False if it speaks HTTP/1.1."""
        try:
            preface = await self._h2_preface()
        except Error as exc:
            logger.debug("connection from %s ended: %s", client_addr, exc)
            return True
        if preface is None:
            return False
        await self._serve_h2(preface, client_addr, server_addr)
        return True

    async def _h2_preface(self) -> bytes | None:
        """The bytes of the client preface already read (b"" when none was) if the client speaks HTTP/2,
        else None (see the module rules).

        Raises:
            Error: the TLS handshake failed or took longer than the header timeout.
        """
        stream = self.stream
        timeout = self.runtime.settings.request_header_timeout
        with trio.move_on_after(timeout if timeout is not None else float("inf")):
            if type(stream) is trio.SSLStream:
                try:
                    await stream.do_handshake()
                except (trio.BrokenResourceError, trio.ClosedResourceError) as exc:
                    raise Error.because(
                        ErrorType.READ_ERROR, "the TLS handshake", exc, ErrorSource.DOWNSTREAM
                    ) from exc
                return b"" if stream.selected_alpn_protocol() == "h2" else None
            if type(stream) is SocketStream:
                return await _peek_preface(stream)
            # No socket to peek at (a memory stream): such a listener speaks HTTP/2 only.
            return b""
        raise Error(ErrorType.READ_TIMEDOUT, ErrorSource.DOWNSTREAM, context="no request head in time")

    async def _serve_h2(self, preface: bytes, client_addr: Any, server_addr: Any) -> None:
        settings = self.runtime.settings
        self.h2 = H2ServerConnection(self.stream, settings.http2, settings.limits)
        if self.context.stop_requested:
            self.h2.drain()
        try:
            await serve_h2(
                self.runtime, self.h2, preface=preface, client_addr=client_addr, server_addr=server_addr
            )
        except Exception:
            self.runtime.counters.connection_crashes += 1
            raise
        error = self.h2.error
        if error is not None:
            logger.debug("HTTP/2 connection from %s ended: %s", client_addr, error)
            if error.etype in _OUR_GOAWAY:
                await self._linger()

    def _head_timeout(self) -> float | None:
        """How long the next head may take to arrive (whole): the header timeout for the first request,
        the keep-alive timeout for the next ones, at most `DRAIN_LINGER` once a stop is requested."""
        settings = self.runtime.settings
        timeout = settings.keepalive_timeout if self.requests else settings.request_header_timeout
        if self.context.stop_requested:
            # Accepted just before the drain began: its first request is on its way.
            timeout = DRAIN_LINGER if timeout is None else min(timeout, DRAIN_LINGER)
        return timeout

    def _armed_socket(self) -> SocketStream | None:
        """The socket stream to wait on for the next head, its deadline armed in the service's deadlines,
        when it is one, with a timeout, and an actor watches them; else None (`_wait_in_scope`)."""
        timeout = self._head_timeout()
        deadlines = self.runtime.pool.deadlines
        stream = self.stream
        if type(stream) is not SocketStream or timeout is None or not deadlines.watched:
            return None
        self._armed = deadlines.arm(stream.socket, timeout)
        self._armed_timeout = timeout
        return stream

    def _head_now(self) -> Any:
        """The next head if it has come, else `_WAIT`.

        Here, not in the loop: an exception that passed through the loop's frame would make that frame an
        object (about 300 bytes), which its coroutine keeps for the connection's life.
        """
        try:
            return self.downstream.read_request_nowait()
        except trio.WouldBlock:
            return _WAIT

    def _head_or_deadline(self, before: int) -> Any:
        """The head, if it has come (`_WAIT` if not yet); None or a 408 once the deadline ended the wait.

        Ended once, ended for good (as a cancelled scope would be): a task that was reading when the
        deadline passed finds it here, before it waits again.
        """
        armed = self._armed
        if armed is None or armed.expired:
            return self._head_timed_out(self._armed_timeout, before)
        try:
            return self.downstream.read_request_nowait()
        except trio.WouldBlock:
            return _WAIT  # nothing yet, or part of a head: the same deadline bounds the rest

    def _disarm(self) -> None:
        armed, self._armed = self._armed, None
        if armed is not None:
            self.runtime.pool.deadlines.disarm(armed)

    async def _wait_in_scope(self, before: int) -> Any:
        """The wait for the next head on a stream that is not a socket (TLS, memory), or with no timeout:
        a cancel scope around `read_request`, cancelled by its deadline or by a stop request."""
        timeout = self._head_timeout()
        scope = self._idle = trio.CancelScope()
        if timeout is not None:
            scope.deadline = trio.current_time() + timeout
        with scope:
            header = await self.downstream.read_request()
        self._idle = None
        if not scope.cancelled_caught:
            return header
        return self._head_timed_out(timeout, before)

    def _head_timed_out(self, timeout: float | None, before: int) -> None:
        """The wait for a head ran out of time (a stop request's, without a timeout of its own): the
        connection ends, with a 408 for a head that began."""
        if self.downstream.bytes_read != before and not self.context.stop_requested:
            raise ProtocolError(
                ErrorType.READ_TIMEDOUT,
                ErrorSource.DOWNSTREAM,
                status_hint=408,
                context=f"the request head did not arrive within {timeout:g} s",
            )

    async def _reject(self, error: ProtocolError, client_addr: Any) -> None:
        """Answer a head the strict checks refused with its status and `Connection: close`, then close."""
        logger.debug("request from %s refused: %s", client_addr, error)
        downstream = self.downstream
        status = status_for(error)
        self.runtime.counters.count_rejection(status)
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
        if self.h2 is not None:
            self.h2.drain()  # GOAWAY: the open streams finish within the grace period
            return
        # A connection waiting for its next request gets a last chance to send it; one in a request
        # finishes it (with keep-alive off).
        idle = self._idle
        armed = self._armed
        if idle is not None:
            idle.deadline = min(idle.deadline, trio.current_time() + DRAIN_LINGER)
        elif armed is not None:
            if trio.current_time() + DRAIN_LINGER < armed.deadline:
                deadlines = self.runtime.pool.deadlines
                deadlines.disarm(armed)
                self._armed = deadlines.arm(armed.sock, DRAIN_LINGER)
        elif self.downstream.response_header is None:
            self.downstream.set_keepalive(False)  # the response still to come says `Connection: close`

    async def _answer_crash(self) -> None:
        if self.h2 is None and self.downstream.response_header is None:
            with trio.move_on_after(1.0) as scope:
                scope.shield = True
                with contextlib.suppress(Error):
                    await self.downstream.write_response(_internal_error_response(), end=True)

    async def on_start(self) -> None:
        counters = self.runtime.counters
        counters.connections += 1
        counters.connections_open += 1

    async def on_stop(self, reason: ExitReason) -> None:
        self.runtime.counters.connections_open -= 1
        await self.downstream.abort() if reason.error is not None else await self.downstream.close()


# The bytes a peek must see before deciding: "PRI " starts only the HTTP/2 preface (RFC 9113 §3.4 makes PRI
# no HTTP/1.1 method a server should accept).
_PREFACE_DECIDES = 4
# Seconds between peeks while fewer than `_PREFACE_DECIDES` bytes are there (a client sending byte by byte).
_PEEK_INTERVAL = 0.005


async def _peek_preface(stream: SocketStream) -> bytes | None:
    """Look at the first bytes without taking them: b"" for the HTTP/2 preface, None for anything else (the
    HTTP/1.1 codec reads it)."""
    sock = stream.socket
    while True:
        await stream.wait_readable()
        try:
            seen = sock.recv(len(CONNECTION_PREFACE), _socket.MSG_PEEK)
        except BlockingIOError:
            continue
        except OSError:
            return None  # the codec's read meets the same error
        if not CONNECTION_PREFACE.startswith(seen) or not seen:
            return None
        if len(seen) >= _PREFACE_DECIDES:
            return b""
        await trio.sleep(_PEEK_INTERVAL)


def _internal_error_response() -> ResponseHeader:
    header = ResponseHeader.build(500)
    header.insert_header("Content-Length", "0")
    header.insert_header("Connection", "close")
    return header
