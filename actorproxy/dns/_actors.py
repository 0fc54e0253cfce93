"""The DNS server's actors: the sockets' owner, the UDP loop, the TCP accept loop and connections, and one
actor per query waiting upstream.

Rules:
- `DnsSocketsActor` binds UDP and TCP on one port and closes both when it stops; the loops after it (the
  service is rest_for_one) borrow them, so a crashed loop restarts on the same port.
- The UDP loop never waits on anything but its socket: a local or cached answer is sent at once; a query
  for upstream is handed to a `ForwardActor` started under the "forwards" dynamic supervisor (at most
  `max_inflight` at once; over that the query is answered SERVFAIL at once). Sending is non-blocking: a
  datagram the kernel cannot take now is dropped, as the network could have dropped it.
- A TCP connection serves its queries in order (RFC 7766 allows it), forwarding inline, and closes after
  `TCP_IDLE_TIMEOUT` seconds without a query, on a malformed length or message, or at `TCP_MAX_QUERIES`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from functools import partial
from typing import TYPE_CHECKING, Any

import trio

from actors import Actor, ActorRef, ExitReason
from supervisors import start_child_soon

from ._responder import HEADER_SIZE, Forward

if TYPE_CHECKING:
    from ._service import DnsRuntime

__all__ = [
    "DnsSocketsActor",
    "DnsTcpConnectionActor",
    "DnsTcpListenerActor",
    "DnsUdpActor",
    "ForwardActor",
    "bind_dns_sockets",
]

logger = logging.getLogger("actorproxy.dns")

# RFC 7766 section 6.2.3: servers close idle connections; BIND's tcp-idle-timeout is 30 s, ours less.
TCP_IDLE_TIMEOUT = 10.0
# Queries one TCP connection may send before it is closed (bounds what one client holds).
TCP_MAX_QUERIES = 1000
# A datagram's largest size.
MAX_DATAGRAM = 65535
# Binding TCP on port 0 and then UDP on the same number fails only if that UDP port is taken: rare.
BIND_ATTEMPTS = 20
# Datagrams handled back to back before the UDP loop yields to the rest of the process.
DATAGRAM_BATCH = 64
# The kernel's listen backlog for TCP (small: DNS over TCP is the exception).
TCP_BACKLOG = 128


def bind_dns_sockets(host: str, port: int) -> tuple[socket.socket, socket.socket]:
    """Bind UDP and TCP on `host`:`port` (port 0: one free for both); both non-blocking.

    Blocking only to resolve a host name.

    Raises:
        OSError: the address is in use or not allowed (naming it).
    """
    family, _, _, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE
    )[0]
    last: OSError | None = None
    for _ in range(BIND_ATTEMPTS if port == 0 else 1):
        tcp = socket.socket(family, socket.SOCK_STREAM)
        udp = socket.socket(family, socket.SOCK_DGRAM)
        try:
            tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                tcp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                udp.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            tcp.bind(address)
            bound = tcp.getsockname()
            udp.bind(bound)
            tcp.listen(TCP_BACKLOG)
        except OSError as exc:
            tcp.close()
            udp.close()
            last = exc
            continue
        tcp.setblocking(False)
        udp.setblocking(False)
        return udp, tcp
    assert last is not None
    raise OSError(last.errno, f"DNS: cannot listen on {host}:{port}: {last.strerror}") from last


class DnsSocketsActor(Actor):
    """Owns the service's UDP and TCP sockets: binds them on start, closes them on stop."""

    def __init__(self, runtime: DnsRuntime) -> None:
        self.runtime = runtime

    async def on_start(self) -> None:
        host, port = self.runtime.listen
        udp, tcp = await trio.to_thread.run_sync(bind_dns_sockets, host, port)
        self.runtime.udp, self.runtime.tcp = udp, tcp
        logger.info("DNS listening on %s:%d (UDP and TCP)", *udp.getsockname()[:2])

    async def on_stop(self, reason: ExitReason) -> None:
        runtime = self.runtime
        for sock in (runtime.udp, runtime.tcp):
            if sock is not None:
                trio.lowlevel.notify_closing(sock)
                sock.close()
        runtime.udp = runtime.tcp = None


def send_datagram(sock: socket.socket, data: bytes, address: Any) -> bool:
    """Send without waiting; False when the kernel refused it (full buffer, unreachable: dropped)."""
    try:
        sock.sendto(data, address)
    except OSError:
        return False
    return True


class DnsUdpActor(Actor):
    """Answers each datagram, or hands it to a `ForwardActor` (see the module rules).

    Args:
        runtime: the service's shared state.
        forwards: the registered name of the forwards supervisor.
    """

    def __init__(self, runtime: DnsRuntime, forwards: str) -> None:
        self.runtime = runtime
        self.forwards_name = forwards

    async def run(self) -> None:
        runtime = self.runtime
        sock = runtime.udp
        forwards: ActorRef | None = self.system.whereis(self.forwards_name)
        if sock is None or forwards is None:
            raise RuntimeError("DNS: the UDP loop started before its socket or its forwards supervisor")
        responder = runtime.responder
        in_a_row = 0
        with self.context.cancel_on_stop():
            while True:
                try:
                    data, address = sock.recvfrom(MAX_DATAGRAM)
                except BlockingIOError:
                    in_a_row = 0
                    await trio.lowlevel.wait_readable(sock)
                    continue
                except OSError:
                    continue  # an ICMP error for an earlier answer (Windows, some BSDs): nothing to do
                result = responder.handle(data, address[0], tcp=False)
                if isinstance(result, Forward):
                    await start_child_soon(
                        forwards,
                        result,
                        address,
                        on_refused=partial(self._overloaded, result, address),
                    )
                elif result is not None and not send_datagram(sock, result, address):
                    runtime.counters.answered -= 1
                in_a_row += 1
                if in_a_row >= DATAGRAM_BATCH:
                    in_a_row = 0
                    await trio.lowlevel.checkpoint()

    def _overloaded(self, forward: Forward, address: tuple[str, int]) -> None:
        runtime = self.runtime
        runtime.counters.overloaded += 1
        reply = runtime.responder.encode(
            runtime.responder.relay(forward.query, None), forward.query, address[0], tcp=False
        )
        if reply is not None and runtime.udp is not None:
            send_datagram(runtime.udp, reply, address)


class ForwardActor(Actor):
    """Resolves one UDP query upstream and sends the answer (a temporary child of "forwards")."""

    def __init__(self, runtime: DnsRuntime, forward: Forward, address: tuple[str, int]) -> None:
        self.runtime = runtime
        self.forward = forward
        self.address = address

    async def run(self) -> None:
        runtime = self.runtime
        forward = self.forward
        answer = await runtime.forwarder.resolve(forward)
        if answer is not None:
            runtime.responder.remember(forward, answer)
        responder = runtime.responder
        reply = responder.encode(
            responder.relay(forward.query, answer), forward.query, self.address[0], tcp=False
        )
        if reply is not None and runtime.udp is not None:
            send_datagram(runtime.udp, reply, self.address)


class DnsTcpListenerActor(Actor):
    """Accepts TCP connections and starts a `DnsTcpConnectionActor` for each."""

    def __init__(self, runtime: DnsRuntime, connections: str) -> None:
        self.runtime = runtime
        self.connections_name = connections

    async def run(self) -> None:
        sock = self.runtime.tcp
        connections: ActorRef | None = self.system.whereis(self.connections_name)
        if sock is None or connections is None:
            raise RuntimeError("DNS: the TCP loop started before its socket or its connections supervisor")
        with self.context.cancel_on_stop():
            while True:
                try:
                    conn, address = sock.accept()
                except BlockingIOError:
                    await trio.lowlevel.wait_readable(sock)
                    continue
                except OSError as exc:
                    logger.warning("DNS: accept failed: %s", exc)
                    await trio.sleep(0.1)  # out of descriptors, most likely: do not spin
                    continue
                self.runtime.counters.tcp_connections += 1
                await start_child_soon(connections, conn, address, on_refused=conn.close)


class DnsTcpConnectionActor(Actor):
    """Serves the queries of one TCP connection, in order (see the module rules)."""

    def __init__(self, runtime: DnsRuntime, conn: socket.socket, address: tuple[str, int]) -> None:
        self.runtime = runtime
        self.stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        self.client = address[0]

    async def run(self) -> None:
        runtime = self.runtime
        runtime.responder.clients.verify(self.client)
        buffer = bytearray()
        with self.context.cancel_on_stop():
            for _ in range(TCP_MAX_QUERIES):
                message = await self._next_message(buffer)
                if message is None:
                    return
                result = runtime.responder.handle(message, self.client, tcp=True)
                if result is None:
                    return  # garbage on a stream: close it (nothing after it can be trusted to frame)
                if isinstance(result, Forward):
                    answer = await runtime.forwarder.resolve(result)
                    if answer is not None:
                        runtime.responder.remember(result, answer)
                    response = runtime.responder.relay(result.query, answer)
                    reply = runtime.responder.encode(response, result.query, self.client, tcp=True)
                    assert reply is not None  # TCP answers are never rate limited
                    result = reply
                try:
                    await self.stream.send_all(result)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return

    async def _next_message(self, buffer: bytearray) -> bytes | None:
        while True:
            if len(buffer) >= 2:
                size = int.from_bytes(buffer[:2], "big")
                if size < HEADER_SIZE:
                    self.runtime.counters.malformed += 1
                    return None
                if len(buffer) >= 2 + size:
                    message = bytes(buffer[2 : 2 + size])
                    del buffer[: 2 + size]
                    return message
            with trio.move_on_after(TCP_IDLE_TIMEOUT):
                try:
                    data = await self.stream.receive_some(MAX_DATAGRAM)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    return None
                if not data:
                    return None
                buffer += data
                continue
            return None  # idle too long

    async def on_stop(self, reason: ExitReason) -> None:
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self.stream.aclose()
