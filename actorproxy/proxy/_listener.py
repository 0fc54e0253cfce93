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
- Connection limits: at `max_connections` connections open at once, the listener stops accepting until one
  closes (new connections wait in the kernel's backlog: none is refused for it); a client address that
  already has `max_connections_per_client` open gets a `503` and its connection closed at once.
- Each accepted socket becomes a `SocketStream` (syscall first, wait only when it would block; see
  `_sockets`), with TLS layered over it as a `trio.SSLStream` here, not by a `trio.SSLListener`.
- An endpoint may instead name a `trio.abc.Listener` (an in-memory one in tests): its streams are handed over
  as they come, under the same rules, except the per-client limit (a stream has no client address). With
  `max_connections`, each is wrapped to give its slot back when it closes, so a connection sees the wrapper,
  never a `trio.SSLStream`: terminate TLS with an endpoint's `ssl_context`, not in the listener. The
  listener is borrowed: stopping leaves it open for a restarted listener actor; its owner closes it.
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

from actors import Actor, ActorRef, ExitReason
from supervisors import start_child_soon

from ._listenfds import ListenFds, endpoint_key
from ._sockets import SocketStream

__all__ = ["Endpoint", "ListenerActor"]

logger = logging.getLogger("actorproxy.proxy")


def _limit(instance: object, attribute: attrs.Attribute[int | None], value: int | None) -> None:
    if value is not None and (type(value) is not int or value < 1):
        raise ValueError(f"{attribute.name}: must be an int >= 1 or None, got {value!r}")


# What a client over its per-address limit reads before its connection closes.
_TOO_MANY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\nRetry-After: 1\r\n\r\n"
)


class ConnectionSlots:
    """How many connections one listener has open, in all and per client address."""

    __slots__ = ("_room", "active", "by_client", "limit", "per_client")

    def __init__(self, limit: int | None, per_client: int | None) -> None:
        self.limit = limit
        self.per_client = per_client
        self.active = 0
        self.by_client: dict[object, int] = {}
        self._room = trio.Event()

    @property
    def full(self) -> bool:
        return self.limit is not None and self.active >= self.limit

    async def wait_for_room(self) -> None:
        while self.full:
            await self._room.wait()

    def admit(self, client: object) -> bool:
        """Take a slot for a connection from `client`; False when that address has too many already."""
        if self.per_client is not None:
            count = self.by_client.get(client, 0)
            if count >= self.per_client:
                return False
            self.by_client[client] = count + 1
        self.active += 1
        return True

    def release(self, client: object) -> None:
        self.active -= 1
        if self.per_client is not None:
            left = self.by_client.get(client, 1) - 1
            if left:
                self.by_client[client] = left
            else:
                self.by_client.pop(client, None)
        room, self._room = self._room, trio.Event()
        room.set()


def _refuse_now(conn: socket.socket) -> None:
    """Tell a client over its limit (best effort, never waiting), then close."""
    with contextlib.suppress(OSError):
        conn.setblocking(False)
        conn.send(_TOO_MANY)
    conn.close()


@attrs.frozen(kw_only=True)
class Endpoint:
    """Where a service listens: a TCP address, a Unix socket path, optionally TLS."""

    host: str | None = None
    port: int = 0
    path: str | None = None
    permissions: int | None = None
    ssl_context: ssl.SSLContext | None = attrs.field(default=None, eq=False)
    #: Connections open at once through this endpoint; None: no limit.
    max_connections: int | None = attrs.field(default=None, validator=_limit)
    #: Connections open at once from one client address; None: no limit.
    max_connections_per_client: int | None = attrs.field(default=None, validator=_limit)
    #: Accept from this listener instead of a socket of our own (nothing is bound, nothing goes in
    #: `ListenFds`).
    listener: trio.abc.Listener[trio.abc.Stream] | None = attrs.field(default=None, eq=False)
    #: Without TLS: accept HTTP/2 with prior knowledge too (a listener's streams: HTTP/2 only).
    h2c: bool = False

    @property
    def key(self) -> str:
        """The bind key in `ListenFds`: "host:port" or "unix:/path" (for a listener, its type and id)."""
        if self.listener is not None:
            return f"{type(self.listener).__name__}@{id(self.listener):#x}"
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


def _wrap(
    conn: socket.socket, ssl_context: ssl.SSLContext | None, on_close: Callable[[], object] | None = None
) -> trio.abc.Stream:
    stream = SocketStream(conn)
    stream.on_close = on_close
    if ssl_context is None:
        return stream
    # As trio.SSLListener would; the handshake happens on the connection's first read or write.
    return trio.SSLStream(stream, ssl_context, server_side=True, https_compatible=True)


class _Released(trio.abc.Stream):
    """A stream from a `trio.abc.Listener` that gives its connection slot back when it closes."""

    def __init__(self, stream: trio.abc.Stream, release: Callable[[], object]) -> None:
        self.transport_stream = stream
        self._release: Callable[[], object] | None = release

    def release(self) -> None:
        release, self._release = self._release, None
        if release is not None:
            release()

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.transport_stream.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.transport_stream.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.transport_stream.receive_some(max_bytes)

    async def aclose(self) -> None:
        self.release()
        await self.transport_stream.aclose()


class _ReleasedHalfCloseable(_Released, trio.abc.HalfCloseableStream):
    transport_stream: trio.abc.HalfCloseableStream

    async def send_eof(self) -> None:
        await self.transport_stream.send_eof()


def _released(stream: trio.abc.Stream, release: Callable[[], object]) -> _Released:
    if isinstance(stream, trio.abc.HalfCloseableStream):
        return _ReleasedHalfCloseable(stream, release)
    return _Released(stream, release)


def _close_now(stream: trio.abc.Stream) -> None:
    """Close an accepted socket nobody will serve, synchronously (TLS streams: their transport)."""
    if isinstance(stream, _Released):
        stream.release()  # a stream that is not a socket cannot be closed synchronously: dropped
        stream = stream.transport_stream
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
        #: Connections refused for their client address's limit.
        self.refused = 0
        self.slots = ConnectionSlots(endpoint.max_connections, endpoint.max_connections_per_client)
        # What a connection is started with besides its stream: whether it may speak h2c.
        self._extra: tuple[Any, ...] = (True,) if endpoint.h2c else ()

    @property
    def address(self) -> Any:
        """The bound address (host, port) or socket path; useful with port 0. An endpoint's listener."""
        if self.endpoint.listener is not None:
            return self.endpoint.listener
        assert self.socket is not None
        return self.socket.getsockname()

    async def on_start(self) -> None:
        if self.endpoint.listener is not None:
            logger.info("listening on %s", self.endpoint)
            if self.on_bound is not None:
                self.on_bound(self.address)
            return
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
        connections: ActorRef | None = self.system.whereis(self.connections_name)
        if connections is None:
            raise RuntimeError(f"no connection supervisor named {self.connections_name!r}")
        if self.endpoint.listener is not None:
            await self._accept_from(self.endpoint.listener, connections)
            return
        sock = self.socket
        assert sock is not None
        ssl_context = self.endpoint.ssl_context
        slots = self.slots
        limited = slots.limit is not None or slots.per_client is not None
        in_a_row = 0
        with self.context.cancel_on_stop():
            while True:
                if slots.full:
                    await slots.wait_for_room()  # connections wait in the kernel's backlog meanwhile
                # Drain the backlog without a schedule point per connection (trio's accept() yields even
                # when a connection is waiting): a burst of N connections costs one pass, not N.
                try:
                    conn, address = sock.accept()
                except BlockingIOError:
                    in_a_row = 0
                    await trio.lowlevel.wait_readable(sock)
                    continue
                except OSError as exc:
                    await self._accept_failed(exc)
                    continue
                self.accepted += 1
                release: Callable[[], object] | None = None
                if limited:
                    client = address[0] if isinstance(address, tuple) else address
                    if not slots.admit(client):
                        self.refused += 1
                        _refuse_now(conn)
                        continue
                    release = partial(slots.release, client)
                stream = _wrap(conn, ssl_context, release)
                # Queue the decision and go straight back to accepting: the connection starts when the
                # ConnectionSupervisor gets to it (waiting here only while its mailbox is full).
                await start_child_soon(
                    connections, stream, *self._extra, on_refused=partial(_close_now, stream)
                )
                in_a_row += 1
                if in_a_row >= ACCEPT_BATCH:
                    in_a_row = 0
                    await trio.lowlevel.checkpoint()

    async def _accept_from(self, listener: trio.abc.Listener[trio.abc.Stream], connections: ActorRef) -> None:
        """Accept from a `trio.abc.Listener` under the rules above (hand-over, stop, `max_connections`)."""
        slots = self.slots
        with self.context.cancel_on_stop():
            while True:
                if slots.full:
                    await slots.wait_for_room()
                stream = await listener.accept()
                self.accepted += 1
                if slots.limit is not None:
                    slots.admit(None)
                    stream = _released(stream, partial(slots.release, None))
                await start_child_soon(
                    connections, stream, *self._extra, on_refused=partial(_close_now, stream)
                )

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
