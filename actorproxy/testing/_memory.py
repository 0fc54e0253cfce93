"""An in-memory network for a proxy: `MemoryListener` on the client side, `MemoryNetwork` upstream.

Rules:
- Every connection is a `trio.testing.memory_stream_pair()`: unbounded buffers both ways, EOF after the
  other side's `send_eof` or `aclose` (so a lingering close works as over TCP), and a `send_all` to a side
  that closed fails with `trio.BrokenResourceError`, as a reset would. TLS is not simulated: an https peer
  gets a plain stream.
- `MemoryListener` is a `trio.abc.Listener` for `HttpProxyService.add_listener`. `connect()` returns the
  client's end at once and queues the server's end until the service accepts it, as the kernel's backlog
  does; `pending` counts those not accepted yet.
- `MemoryNetwork.connect(peer)` is the service's `connect` seam. It routes by `peer.address` to the handler
  `serve` registered for it, which runs on the server's end of a new pair; an address nobody serves raises
  the `Error` `connect_peer` raises for a refused TCP connect (CONNECT_REFUSED, source UPSTREAM, a
  `ConnectionRefusedError` as the cause). Connections are counted per address, so a test asserts that the
  pool reused one instead of opening another.
- The handlers run in the network's nursery: `open_memory_network()` is an `async with`, and leaving it
  cancels the handlers still running. A handler's exception propagates out of it and fails the test; its
  server end is closed when it returns.
"""

from __future__ import annotations

import errno
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import trio
import trio.testing

from actorproxy.http import Error, ErrorSource, ErrorType
from actorproxy.proxy import Address, HttpPeer, parse_address

__all__ = ["MemoryListener", "MemoryNetwork", "UpstreamHandler", "open_memory_network"]

#: Serves one upstream connection: called with the server's end of its stream.
UpstreamHandler = Callable[[trio.abc.Stream], Awaitable[object]]


class MemoryListener(trio.abc.Listener[trio.abc.Stream]):
    """Connections made in memory with `connect()`, accepted by a proxy service (`add_listener`).

    Args:
        name: shown in the repr, and so in the service's logs.
    """

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._incoming, self._backlog = trio.open_memory_channel[trio.abc.Stream](math.inf)
        #: Connections made with `connect()`, and those the service accepted.
        self.connected = 0
        self.accepted = 0

    def __repr__(self) -> str:
        return f"<MemoryListener {self.name} connected={self.connected} accepted={self.accepted}>"

    @property
    def pending(self) -> int:
        """Connections made but not accepted yet (waiting as in a kernel's backlog)."""
        return self.connected - self.accepted

    async def connect(
        self,
    ) -> trio.StapledStream[trio.testing.MemorySendStream, trio.testing.MemoryReceiveStream]:
        """A new connection: the client's end, returned before the service accepts the other.

        Raises:
            ConnectionRefusedError: the listener is closed.
        """
        await trio.lowlevel.checkpoint()
        client, server = trio.testing.memory_stream_pair()
        try:
            self._incoming.send_nowait(server)
        except trio.ClosedResourceError:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{self.name}: the listener is closed") from None
        self.connected += 1
        return client

    async def accept(self) -> trio.abc.Stream:
        """The server's end of the next connection, waiting for one.

        Raises:
            trio.ClosedResourceError: the listener is closed.
        """
        try:
            stream = await self._backlog.receive()
        except trio.EndOfChannel:
            raise trio.ClosedResourceError(f"{self.name}: the listener is closed") from None
        self.accepted += 1
        return stream

    async def aclose(self) -> None:
        """Refuse new connections; those still waiting are closed (their clients read EOF)."""
        self._incoming.close()
        while True:
            try:
                stream = self._backlog.receive_nowait()
            except (trio.WouldBlock, trio.EndOfChannel):
                break
            self.connected -= 1
            await trio.aclose_forcefully(stream)
        await trio.lowlevel.checkpoint()


class MemoryNetwork:
    """Upstream servers in memory, by address; `connect` is a proxy service's `connect` seam.

    Made by `open_memory_network()`, which runs the handlers.
    """

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._handlers: dict[Address, UpstreamHandler] = {}
        #: Connections opened, by address (normalized as `HttpPeer` does).
        self.connections: Counter[Address] = Counter()
        #: Connects refused (nobody serves the address), by address.
        self.refused: Counter[Address] = Counter()

    def __repr__(self) -> str:
        opened = sum(self.connections.values())
        return f"<MemoryNetwork serving {sorted(map(str, self._handlers))} opened={opened}>"

    def serve(self, address: object, handler: UpstreamHandler) -> Address:
        """Have `handler` serve each new connection to `address` (in any form `HttpPeer` takes).

        Returns:
            The address, normalized as `HttpPeer.address` is.

        Replaces the handler of an address served already; connections open stay with the old one.
        """
        key = parse_address(address)
        self._handlers[key] = handler
        return key

    def stop_serving(self, address: object) -> None:
        """Refuse new connections to `address` from now on (those open stay open)."""
        self._handlers.pop(parse_address(address), None)

    def opened(self, address: object) -> int:
        """How many connections were opened to `address`."""
        return self.connections[parse_address(address)]

    async def connect(self, peer: HttpPeer) -> trio.abc.Stream:
        """Open a connection to `peer`: the client's end, with its handler started on the other.

        Raises:
            Error: CONNECT_REFUSED, source UPSTREAM, when nobody serves `peer.address`.
        """
        await trio.lowlevel.checkpoint()
        handler = self._handlers.get(peer.address)
        if handler is None:
            self.refused[peer.address] += 1
            cause = ConnectionRefusedError(errno.ECONNREFUSED, "nobody serves this address in memory")
            raise Error.because(
                ErrorType.CONNECT_REFUSED, f"connecting to {peer.label()}", cause, ErrorSource.UPSTREAM
            )
        self.connections[peer.address] += 1
        client, server = trio.testing.memory_stream_pair()
        self._nursery.start_soon(_serve, handler, server)
        return client


async def _serve(handler: UpstreamHandler, stream: trio.abc.Stream) -> None:
    try:
        await handler(stream)
    finally:
        await trio.aclose_forcefully(stream)


@asynccontextmanager
async def open_memory_network() -> AsyncIterator[MemoryNetwork]:
    """A `MemoryNetwork` whose handlers run until the block ends (then the ones left are cancelled)."""
    async with trio.open_nursery() as nursery:
        yield MemoryNetwork(nursery)
        nursery.cancel_scope.cancel()
