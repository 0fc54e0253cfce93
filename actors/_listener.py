"""`ListenerActor`: one endpoint's accept loop, handing each socket to the ConnectionSupervisor.

Rules:
- The listening socket is borrowed from the server's `ListenFds`: one bound before the event loop started
  or handed over by the previous server on an upgrade is taken as it is; otherwise `on_start` binds it (a
  port in use fails the start, and the supervisor sees it at once) and registers it there.
- Accepting stops on a stop request; `on_stop` gives the socket back to `ListenFds`, which keeps it open for
  a restarted listener while the server runs and closes it once the server drains. Connections already
  handed over are the ConnectionSupervisor's to drain.
- The accept loop never waits for a connection to start: it queues the start with the
  ConnectionSupervisor (waiting only when that mailbox is full: backpressure). A connection that cannot be
  started is closed; the accept loop goes on.
- Each accepted socket becomes a `SocketStream` (syscall first, wait only when it would block; see
  `actors._sockets`), with TLS layered over it as a `trio.SSLStream` here, not by a `trio.SSLListener`.
"""

from __future__ import annotations

import contextlib
import errno
import ipaddress
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
from supervisors import ListenFds, endpoint_key, start_child_soon

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

    @property
    def key(self) -> str:
        """The bind key in `ListenFds`: "host:port" or "unix:/path"."""
        return endpoint_key(self.host, self.port, self.path)

    def __str__(self) -> str:
        return f"{'tls://' if self.ssl_context else ''}{self.key}"


# accept() errors that concern one aborted connection, not the listening socket (trio ignores the same).
_IGNORED_ACCEPT_ERRORS = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.EINTR})
# Out of descriptors or memory: stop accepting for a moment rather than spin (or crash the listener).
_RESOURCE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RESOURCE_BACKOFF = 0.1
# Connections accepted back to back before the accept loop yields to the rest of the process.
ACCEPT_BATCH = 64


# The kernel caps it at net.core.somaxconn; ask for as much as it allows, as trio does.
LISTEN_BACKLOG = 0xFFFF


def bind_endpoint(endpoint: Endpoint) -> socket.socket:
    """Bind and listen on `endpoint`; return the listening socket, non-blocking.

    Blocking only to resolve a host name; call it off the event loop unless the host is an IP literal.

    Raises:
        OSError: the address is in use, not local, or not allowed.
    """
    if endpoint.path is not None:
        # A socket file left by a previous run would make bind fail.
        with contextlib.suppress(FileNotFoundError):
            os.unlink(endpoint.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(endpoint.path)
            if endpoint.permissions is not None:
                os.chmod(endpoint.path, endpoint.permissions)
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
    else:
        family, kind, proto, _, address = socket.getaddrinfo(
            endpoint.host, endpoint.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(LISTEN_BACKLOG)
        except BaseException:
            sock.close()
            raise
    sock.setblocking(False)
    return sock


def _is_ip_literal(host: str | None) -> bool:
    try:
        ipaddress.ip_address((host or "").partition("%")[0])
    except ValueError:
        return False
    return True


async def _open(endpoint: Endpoint) -> socket.socket:
    if endpoint.path is not None or _is_ip_literal(endpoint.host):
        return bind_endpoint(endpoint)
    return await trio.to_thread.run_sync(bind_endpoint, endpoint)


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
    """Accepts on `endpoint` and starts a connection child per socket under `connections`.

    Args:
        endpoint: where to listen.
        connections: the registered name of the ConnectionSupervisor.
        on_bound: called with the bound address once listening.
        listen_fds: where the socket is borrowed from and given back to; a private table that closes it on
            stop when omitted.
    """

    def __init__(
        self,
        endpoint: Endpoint,
        connections: str,
        on_bound: Callable[[Any], object] | None = None,
        listen_fds: ListenFds | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.connections_name = connections
        self.on_bound = on_bound
        self.listen_fds = listen_fds if listen_fds is not None else ListenFds(closing=True)
        self.socket: socket.socket | None = None
        self._key = endpoint.key
        self.accepted = 0

    @property
    def address(self) -> Any:
        """The bound address (host, port) or socket path; useful with port 0."""
        assert self.socket is not None
        return self.socket.getsockname()

    async def on_start(self) -> None:
        fds = self.listen_fds
        sock = fds.take(self._key)
        if sock is None:
            sock = await _open(self.endpoint)
            if self.endpoint.path is None and self.endpoint.port == 0:
                host, port = sock.getsockname()[:2]
                self._key = endpoint_key(host, port, None)  # port 0 is never inherited: key the real one
            fds.register(self._key, sock)
            logger.info("listening on %s", self.endpoint)
        else:
            logger.info("listening on %s (inherited socket)", self.endpoint)
        self.socket = sock
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
            self.listen_fds.release(self._key, self.socket)
            self.socket = None
