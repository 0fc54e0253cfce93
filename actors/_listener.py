"""`ListenerActor`: one endpoint's accept loop, handing each socket to the ConnectionSupervisor.

Rules:
- Binding happens in `on_start`, so a port in use fails the start and the supervisor sees it at once.
- Accepting stops on a stop request (the listening socket closes in `on_stop`); connections already handed
  over are the ConnectionSupervisor's to drain.
- The accept loop never waits for a connection to start: it queues the start with the
  ConnectionSupervisor (waiting only when that mailbox is full: backpressure). A connection that cannot be
  started is closed; the accept loop goes on.
- Each accepted socket becomes a `SocketStream` (syscall first, wait only when it would block; see
  `actors._sockets`), with TLS layered over it as a `trio.SSLStream` here, not by a `trio.SSLListener`.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from actorproxy import Actor, ActorRef, ExitReason
from supervisors import start_child_soon

from ._sockets import SocketStream

__all__ = ["Endpoint", "ListenerActor"]

logger = logging.getLogger("actorproxy.proxy")


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where a service listens: a TCP address, a Unix socket path, optionally TLS."""

    host: str | None = None
    port: int = 0
    path: str | None = None
    permissions: int | None = None
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False)

    def __str__(self) -> str:
        where = f"unix:{self.path}" if self.path else f"{self.host}:{self.port}"
        return f"{'tls://' if self.ssl_context else ''}{where}"


# accept() errors that concern one aborted connection, not the listening socket (trio ignores the same).
_IGNORED_ACCEPT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR})
# Out of descriptors or memory: stop accepting for a moment rather than spin (or crash the listener).
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_BACKOFF = 0.1
# Connections accepted back to back before the accept loop yields to the rest of the process.
ACCEPT_BATCH = 64


async def _open(endpoint: Endpoint) -> socket.socket:
    """Bind and listen; return the listening socket as a non-blocking stdlib socket."""
    if endpoint.path is not None:
        # A socket file left by a previous run would make bind fail.
        await trio.Path(endpoint.path).unlink(missing_ok=True)
        listening = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await listening.bind(endpoint.path)
        if endpoint.permissions is not None:
            os.chmod(endpoint.path, endpoint.permissions)
        listening.listen(1024)
    else:
        [listener] = (await trio.open_tcp_listeners(endpoint.port, host=endpoint.host))[:1]
        listening = listener.socket
    family, kind, proto = listening.family, listening.type, listening.proto
    sock = socket.socket(family, kind, proto, fileno=listening.detach())
    sock.setblocking(False)
    return sock


def _wrap(conn: socket.socket, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    stream = SocketStream(conn)
    if ssl_context is None:
        return stream
    # As trio.SSLListener would; the handshake happens on the connection's first read or write.
    return trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)


def _close_now(stream: trio.abc.Stream) -> None:
    """Close an accepted socket nobody will serve, synchronously (TLS streams: their transport)."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, SocketStream):
        stream.close_nowait()
    elif isinstance(stream, trio.SocketStream):
        stream.socket.close()


class ListenerActor(Actor):
    """Accepts on `endpoint` and starts a connection child per socket under `connections`."""

    def __init__(
        self, endpoint: Endpoint, connections: str, on_bound: Callable[[Any], object] | None = None
    ) -> None:
        self.endpoint = endpoint
        self.connections_name = connections
        self.on_bound = on_bound
        self.socket: socket.socket | None = None
        self.accepted = 0

    @property
    def address(self) -> Any:
        """The bound address (host, port) or socket path; useful with port 0."""
        assert self.socket is not None
        return self.socket.getsockname()

    async def on_start(self) -> None:
        self.socket = await _open(self.endpoint)
        logger.info("listening on %s", self.endpoint)
        if self.on_bound is not None:
            self.on_bound(self.address)

    async def run(self) -> None:
        sock = self.socket
        assert sock is not None
        ssl_context = self.endpoint.ssl_context
        connections: ActorRef | None = self.system.whereis(self.connections_name)
        if connections is None:
            raise RuntimeError(f"no connection supervisor named {self.connections_name!r}")
        in_a_row = 0
        with self.context.cancel_on_stop():
            while True:
                # Drain the backlog without a schedule point per connection (trio's accept() yields even
                # when a connection is waiting): a burst of N connections costs one pass, not N.
                try:
                    conn, _ = sock.accept()
                except BlockingIOError:
                    in_a_row = 0
                    await trio.lowlevel.wait_readable(sock)
                    continue
                except OSError as exc:
                    await self._accept_failed(exc)
                    continue
                self.accepted += 1
                stream = _wrap(conn, ssl_context)
                # Queue the decision and go straight back to accepting: the connection starts when the
                # ConnectionSupervisor gets to it (waiting here only while its mailbox is full).
                await start_child_soon(connections, stream, on_refused=partial(_close_now, stream))
                in_a_row += 1
                if in_a_row >= ACCEPT_BATCH:
                    in_a_row = 0
                    await trio.lowlevel.checkpoint()

    async def _accept_failed(self, exc: OSError) -> None:
        if exc.errno in _IGNORED_ACCEPT_ERRORS:
            return
        if exc.errno in _RESOURCE_ERRORS:
            logger.error("%s: cannot accept (%s); pausing %g s", self.endpoint, exc, RESOURCE_BACKOFF)
            await trio.sleep(RESOURCE_BACKOFF)
            return
        raise exc

    async def on_stop(self, reason: ExitReason) -> None:
        if self.socket is not None:
            trio.lowlevel.notify_closing(self.socket)
            self.socket.close()
        if self.endpoint.path is not None:
            await trio.Path(self.endpoint.path).unlink(missing_ok=True)
