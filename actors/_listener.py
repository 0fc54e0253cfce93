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

import logging
import os
import ssl
from collections.abc import Callable
from functools import partial
from typing import Any

import attrs
import trio

from actorproxy import Actor, ActorRef, ExitReason
from supervisors import start_child_soon

from ._sockets import SocketStream, from_trio_stream

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


async def _open(endpoint: Endpoint) -> trio.SocketListener:
    if endpoint.path is not None:
        # A socket file left by a previous run would make bind fail.
        await trio.Path(endpoint.path).unlink(missing_ok=True)
        sock = trio.socket.socket(trio.socket.AF_UNIX, trio.socket.SOCK_STREAM)
        await sock.bind(endpoint.path)
        if endpoint.permissions is not None:
            os.chmod(endpoint.path, endpoint.permissions)
        sock.listen(1024)
        return trio.SocketListener(sock)
    [listener] = (await trio.open_tcp_listeners(endpoint.port, host=endpoint.host))[:1]
    return listener


async def _accept(listener: trio.SocketListener, ssl_context: ssl.SSLContext | None) -> trio.abc.Stream:
    stream = from_trio_stream(await listener.accept())
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
        self.listener: trio.SocketListener | None = None
        self.accepted = 0

    @property
    def address(self) -> Any:
        """The bound address (host, port) or socket path; useful with port 0."""
        assert self.listener is not None
        return self.listener.socket.getsockname()

    async def on_start(self) -> None:
        self.listener = await _open(self.endpoint)
        logger.info("listening on %s", self.endpoint)
        if self.on_bound is not None:
            self.on_bound(self.address)

    async def run(self) -> None:
        listener = self.listener
        assert listener is not None
        ssl_context = self.endpoint.ssl_context
        connections: ActorRef | None = self.system.whereis(self.connections_name)
        if connections is None:
            raise RuntimeError(f"no connection supervisor named {self.connections_name!r}")
        with self.context.cancel_on_stop():
            while True:
                stream = await _accept(listener, ssl_context)
                self.accepted += 1
                # Queue the decision and go back to accepting: waiting for each connection's start
                # handshake serialised bursts of new connections (measured: the 50th of a burst waited
                # ~0.9 s for its first byte).
                await start_child_soon(connections, stream, on_refused=partial(_close_now, stream))

    async def on_stop(self, reason: ExitReason) -> None:
        if self.listener is not None:
            await self.listener.aclose()
        if self.endpoint.path is not None:
            await trio.Path(self.endpoint.path).unlink(missing_ok=True)
