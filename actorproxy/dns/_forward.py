"""`Forwarder`: names outside the local zones, resolved by the upstream servers, with failover.

Rules:
- The upstream query is the client's question asked afresh: a new random id, RD set, EDNS 0 with our
  payload size, DO copied from the client. An answer counts only when it comes from the server asked (a
  connected socket), carries the id sent and repeats the question (RFC 5452's checks against spoofing).
- Servers are asked one at a time, in the configured order, each for `query_timeout` seconds. A server
  that does not answer in time (or refuses the connection) is marked down for `DOWN_PERIOD` seconds and
  asked after the others meanwhile, so one dead resolver costs one timeout, not one per query. A SERVFAIL
  or REFUSED answer moves on to the next server too, and is the answer when no server does better.
- A truncated UDP answer is asked again over TCP of the same server; a client that asked over TCP is
  resolved over TCP.
- Each timeout is logged as a warning (Pingora's guideline: the system recovered), the failure of every
  server as an error.
"""

from __future__ import annotations

import logging
import secrets
import socket
from collections.abc import Awaitable, Callable

import dns.exception
import dns.flags
import dns.message
import dns.rcode
import trio

from ._responder import EDNS_PAYLOAD, Forward
from ._stats import DnsCounters

__all__ = ["DOWN_PERIOD", "Exchange", "Forwarder", "exchange"]

logger = logging.getLogger("actorproxy.dns")

# How long a server that timed out is asked last (BIND's "lame server" memory is ten minutes; a resolver on
# a laptop that changes networks needs to come back sooner).
DOWN_PERIOD = 30.0
# The largest DNS message (RFC 1035 section 4.2.2).
MAX_MESSAGE_SIZE = 65535

#: Sends one query (wire) to (ip, port) over UDP or TCP and returns the answer's wire; the seam tests fill.
Exchange = Callable[[tuple[str, int], bytes, bool], Awaitable[bytes]]


async def exchange(server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
    """Send `wire` to `server` and return the first answer carrying the same id (no timeout of its own).

    Raises:
        OSError: the server cannot be reached (over UDP: the port answered "unreachable").
        EOFError: a TCP server closed the connection before answering.
    """
    if tcp:
        stream = await trio.open_tcp_stream(*server)
        async with stream:
            await stream.send_all(len(wire).to_bytes(2, "big") + wire)
            buffer = bytearray()
            while len(buffer) < 2 or len(buffer) < 2 + int.from_bytes(buffer[:2], "big"):
                data = await stream.receive_some(MAX_MESSAGE_SIZE)
                if not data:
                    raise EOFError(f"{server[0]}:{server[1]} closed the connection without an answer")
                buffer += data
            return bytes(buffer[2 : 2 + int.from_bytes(buffer[:2], "big")])
    family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
    with trio.socket.socket(family, socket.SOCK_DGRAM) as sock:
        # Connected: the kernel drops datagrams from any other address.
        await sock.connect(server)
        await sock.send(wire)
        while True:
            data = await sock.recv(MAX_MESSAGE_SIZE)
            if data[:2] == wire[:2]:
                return data


def _upstream_query(query: dns.message.Message) -> dns.message.Message:
    question = query.question[0]
    upstream = dns.message.make_query(
        question.name,
        question.rdtype,
        question.rdclass,
        use_edns=0,
        payload=EDNS_PAYLOAD,
        want_dnssec=bool(query.ednsflags & dns.flags.DO),
    )
    upstream.id = secrets.randbelow(0x10000)
    upstream.flags |= query.flags & dns.flags.CD
    return upstream


class Forwarder:
    """Resolves queries with the upstream servers, in order, with failover (see the module rules).

    Args:
        servers: (ip, port) of each upstream server, primary first.
        query_timeout: seconds each server gets.
        counters: where timeouts and failovers are counted.
        exchange: how a query travels (real sockets by default).
    """

    def __init__(
        self,
        servers: list[tuple[str, int]],
        *,
        query_timeout: float,
        counters: DnsCounters,
        exchange: Exchange = exchange,
    ) -> None:
        self.servers = list(servers)
        self.query_timeout = query_timeout
        self.counters = counters
        self.exchange = exchange
        self._down_until: dict[tuple[str, int], float] = {}

    def order(self) -> list[tuple[str, int]]:
        """The servers in the order the next query asks them: those up, then those marked down."""
        now = trio.current_time()
        down = self._down_until
        up = [server for server in self.servers if down.get(server, 0.0) <= now]
        return up + [server for server in self.servers if server not in up]

    async def resolve(self, forward: Forward) -> dns.message.Message | None:
        """The best upstream answer to `forward`'s query, or None when no server answered."""
        upstream = _upstream_query(forward.query)
        wire = upstream.to_wire()
        fallback: dns.message.Message | None = None
        for attempt, server in enumerate(self.order()):
            answer = await self._ask(server, upstream, wire, tcp=forward.tcp)
            if answer is None:
                continue
            if answer.rcode() in (dns.rcode.SERVFAIL, dns.rcode.REFUSED):
                fallback = fallback or answer
                continue
            if attempt:
                self.counters.upstream_failovers += 1
            return answer
        if fallback is None:
            self.counters.upstream_failures += 1
            name = forward.query.question[0].name
            logger.error("no upstream DNS server answered %s (asked %s)", name, _servers(self.servers))
        return fallback

    async def _ask(
        self, server: tuple[str, int], upstream: dns.message.Message, wire: bytes, *, tcp: bool
    ) -> dns.message.Message | None:
        with trio.move_on_after(self.query_timeout):
            try:
                answer = await self._exchange(server, upstream, wire, tcp=tcp)
                if answer is not None and answer.flags & dns.flags.TC and not tcp:
                    answer = await self._exchange(server, upstream, wire, tcp=True)
            except (OSError, EOFError) as exc:
                self._down(server, f"unreachable ({exc})")
                return None
            return answer
        self.counters.upstream_timeouts += 1
        self._down(server, f"no answer within {self.query_timeout:g} s")
        return None

    async def _exchange(
        self, server: tuple[str, int], upstream: dns.message.Message, wire: bytes, *, tcp: bool
    ) -> dns.message.Message | None:
        data = await self.exchange(server, wire, tcp)
        try:
            answer = dns.message.from_wire(data)
        except dns.exception.DNSException:
            return None
        if (
            answer.id != upstream.id
            or answer.question != upstream.question
            or not answer.flags & dns.flags.QR
        ):
            return None
        return answer

    def _down(self, server: tuple[str, int], why: str) -> None:
        self._down_until[server] = trio.current_time() + DOWN_PERIOD
        logger.warning("upstream DNS %s:%d: %s; asking the next server", server[0], server[1], why)


def _servers(servers: list[tuple[str, int]]) -> str:
    return ", ".join(f"{ip}:{port}" for ip, port in servers)
