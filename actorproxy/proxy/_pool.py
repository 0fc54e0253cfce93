"""The upstream connection pool: idle connections keyed by peer identity, and the actor that watches them.

Rules:
- `ConnectionPool` is a plain object with synchronous methods. Checkout and checkin are decided in a
  synchronous step (docs/architecture.md) and I/O comes after; trio runs one task at a time between
  awaits, so there is no lock and no mailbox hop on the request path. Connection actors call `checkout` /
  `checkin` directly; `PeerPoolActor` owns the pool's lifetime: it sweeps idle connections on a timer and
  closes them when it stops. It also ends the reads on the pool's upstream connections that run out of
  time (`pool.deadlines`, see `_deadlines`), which then wait without a cancel scope each.
- Keys are `HttpPeer.reuse_key()`. Checkout is LIFO per key: the most recently returned connection is the
  warmest and the least likely to have hit the upstream's own idle timer.
- Capacity: `max_size` idle connections in all (Pingora's `upstream_keepalive_pool_size`, 128), and optionally
  `max_idle_per_key`. A checkin into a full pool (or a full key) evicts the least recently returned idle
  connection, Pingora's LRU, so the pool keeps the freshest ones. A checkin is refused (False: the caller
  closes the connection) when `idle_timeout` is 0, Pingora's way to disable reuse, or the pool is closed.
- An idle connection is dead once its socket is readable: either the upstream sent bytes it had no business
  sending (HTTP/1.1 servers speak only when asked; for TLS any record, close_notify included) or it closed
  (EOF, RST). The check is a zero-timeout poll(2) of the transport socket: one syscall at checkout for the
  connection handed out, and one per sweep for all idle connections together. Each pool reuses one poll
  object (register, poll, unregister; it saves little over a new one per check, ~10 ns of ~0.5 us). A
  `recv(MSG_PEEK | MSG_DONTWAIT)` on our `SocketStream` costs more when the connection is alive, as it
  mostly is (measured ~1.2 us: raising BlockingIOError is the dear part), so poll(2) it is. No task waits
  on each idle connection: that needs a nursery (only supervisors own nurseries) and a task per
  connection. The price is that a dead idle connection keeps its file descriptor until the next sweep or
  checkout.
- The poll at checkout stays even for a connection checked in a moment ago, though it is about 6% of a
  proxied tiny request's CPU (benchmarks/README.md): nothing else on the request path knows the socket's
  state at checkout (the connection waits in no epoll set while idle), and an origin that closed it after
  the last response would otherwise fail the next request. Only an idempotent request with its body whole
  in the retry buffer is retried after that (`error_while_proxy` turns `RetryType.REUSED_ONLY` into ALWAYS
  for it alone): a POST would fail, and the failure would count against the peer's passive health.
- Limitation: bytes already pulled off the socket into a buffer above it (trio's TLS read buffer, a codec's)
  are invisible to poll(2); decrypted TLS bytes are checked with `SSLObject.pending()`. The codec must not
  check in a connection holding unparsed bytes. A close_notify that arrived together with the last response
  record shows up only at the next read, which is the case `RetryType.REUSED_ONLY` retries.
- Dead, expired and evicted connections are closed synchronously by closing the transport socket (no TLS
  close_notify: they are broken or unwanted). A stream with no socket under it (memory streams in tests) is
  closed by the next sweep or by `aclose`.
- Connections checked out belong to their caller. `aclose` closes the idle ones (TLS peers get a close_notify,
  within `CLOSE_TIMEOUT`) and refuses later checkins until `reopen`.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import attrs
import trio

from actorproxy.config import DEFAULT_POOL_SIZE
from actors import DEFAULT_ASK_TIMEOUT, Actor, ActorRef, ExitReason, MailboxFull

from ._deadlines import Deadlines
from ._fds import (
    _POLL_EVENTS,
    _fileno,
    _new_poller,
    _readable_fds,
    _tls_buffered,
    _transport,
    stream_fileno,
)
from ._h2pool import H2Pool
from ._sockets import SocketStream

__all__ = [
    "CLOSE_TIMEOUT",
    "IDLE_SWEEP_INTERVAL",
    "ConnectionPool",
    "ExpireDeadlines",
    "GetPoolStatistics",
    "PeerPoolActor",
    "PoolStatistics",
    "PooledConnection",
    "SweepIdle",
    "get_pool_statistics",
    "stream_fileno",
]

# How often PeerPoolActor reaps expired and dead idle connections: one poll(2) over all idle sockets per
# sweep; a dead connection holds its descriptor at most this long (checkout never hands one out).
IDLE_SWEEP_INTERVAL = 1.0
# Seconds to close idle connections politely (TLS close_notify) at shutdown before the rest are cut.
CLOSE_TIMEOUT = 1.0


@attrs.define(kw_only=True, eq=False)
class PooledConnection:
    """An idle upstream connection as the pool sees it: opaque `conn`, the `stream` under it, bookkeeping.

    `checkin` builds one; `checkout` hands it back (take `.conn`); `discard` closes one.

    Args:
        conn: what the caller needs back at checkout (the engine's upstream codec); the pool never uses it.
        stream: the connection's byte stream; the pool closes it and polls the socket under it.
        key: the `reuse_key()` it was checked in under.
        fd: the transport socket's descriptor; found from `stream` by default, -1 when there is no socket.
    """

    conn: Any
    stream: trio.abc.Stream
    key: Hashable = None
    fd: int = attrs.field(default=attrs.Factory(lambda self: stream_fileno(self.stream), takes_self=True))
    #: trio time of the checkin.
    idle_since: float = 0.0
    #: Seconds it may stay idle; None: until evicted or dead.
    idle_timeout: float | None = None

    def expired(self, now: float) -> bool:
        return self.idle_timeout is not None and now - self.idle_since >= self.idle_timeout

    def _watch_fd(self) -> int | None:
        """The descriptor to poll; -1 if the socket is closed already; None if there is nothing to poll."""
        transport = _transport(self.stream)
        if transport is not None:
            return _fileno(transport)  # live, so a descriptor number reused after a close is never polled
        return self.fd if self.fd >= 0 else None

    def looks_alive(self, poller: Any = None) -> bool:
        """False if the idle connection has received bytes, been closed, or failed (one poll(2) call).

        Args:
            poller: a `select.poll` object to reuse (the pool's); a new one when None.
        """
        stream = self.stream
        fd: int | None
        if type(stream) is SocketStream:
            fd = stream.socket.fileno()  # the usual transport, as `_watch_fd` finds it without its steps
        else:
            if _tls_buffered(stream):
                return False
            fd = self._watch_fd()
            if fd is None:
                return True  # nothing to poll (a memory stream); the next read tells
        if fd < 0:
            return False
        if poller is None:
            return not _readable_fds((fd,))
        # Inlined _readable_fds for the one descriptor of a checkout: this is on the request path.
        poller.register(fd, _POLL_EVENTS)
        try:
            return not poller.poll(0)
        finally:
            poller.unregister(fd)

    def close_nowait(self) -> bool:
        """Close the transport socket now (no TLS close_notify); False if there is no socket to close."""
        transport = _transport(self.stream)
        if transport is None:
            return False
        if isinstance(transport, SocketStream):
            transport.close_nowait()
        else:
            transport.socket.close()
        return True

    async def aclose(self) -> None:
        """Close the stream (politely when there is time); a peer that is gone is not an error."""
        try:
            await self.stream.aclose()
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError):
            self.close_nowait()


@attrs.frozen(kw_only=True)
class PoolStatistics:
    """A snapshot of a `ConnectionPool`."""

    max_size: int
    idle: int
    idle_per_key: Mapping[Hashable, int]
    #: Checkouts that found a live idle connection, and those that found none.
    hits: int
    misses: int
    #: Idle connections closed for exceeding their idle timeout.
    reaped: int
    #: Idle connections closed because the upstream sent bytes or closed them.
    dead: int
    #: Idle connections closed to make room for a newer one.
    evictions: int
    #: Checkins refused (idle_timeout 0, or the pool closed).
    rejected: int


class ConnectionPool:
    """Idle upstream connections by reuse key; synchronous, for the request path (see the module rules).

    Args:
        max_size: idle connections kept in all (Pingora's `upstream_keepalive_pool_size`); 0 disables pooling.
        max_idle_per_key: idle connections kept per key; None: only `max_size` applies.
        default_idle_timeout: used when a checkin gives None; None keeps connections until evicted or dead.
        clock: the time source; trio's clock by default, so tests run on virtual time.
    """

    __slots__ = (
        "_clock",
        "_closed",
        "_dead",
        "_evictions",
        "_hits",
        "_idle",
        "_misses",
        "_order",
        "_poller",
        "_reaped",
        "_rejected",
        "_retired",
        "deadlines",
        "default_idle_timeout",
        "h2",
        "max_idle_per_key",
        "max_size",
    )

    def __init__(
        self,
        max_size: int = DEFAULT_POOL_SIZE,
        *,
        max_idle_per_key: int | None = None,
        default_idle_timeout: float | None = None,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        if max_size < 0:
            raise ValueError(f"max_size: must be >= 0, got {max_size}")
        if max_idle_per_key is not None and max_idle_per_key < 1:
            raise ValueError(f"max_idle_per_key: must be >= 1 or None, got {max_idle_per_key}")
        if default_idle_timeout is not None and not default_idle_timeout >= 0:
            raise ValueError(
                f"default_idle_timeout: must be >= 0 seconds or None, got {default_idle_timeout}"
            )
        self.max_size = max_size
        self.max_idle_per_key = max_idle_per_key
        self.default_idle_timeout = default_idle_timeout
        self._clock = clock
        # Per key, idle connections in checkin order (dicts keep insertion order; popitem() is LIFO).
        self._idle: dict[Hashable, dict[PooledConnection, None]] = {}
        # All idle connections, least recently checked in first: the eviction order.
        self._order: dict[PooledConnection, None] = {}
        # Taken out of the pool but not closable synchronously (no socket); closed by `close_retired`.
        self._retired: list[PooledConnection] = []
        self._closed = False
        # Reused by every liveness check (see the module rules); None without poll(2) (Windows).
        self._poller = _new_poller()
        #: The read timeouts of the connections to the pool's peers, enforced by `PeerPoolActor`.
        self.deadlines = Deadlines()
        #: The multiplexed HTTP/2 connections, shared rather than checked out (`_h2pool`).
        self.h2 = H2Pool()
        self._hits = self._misses = self._reaped = self._dead = self._evictions = self._rejected = 0

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return (
            f"<ConnectionPool {state} idle={len(self._order)}/{self.max_size} keys={len(self._idle)} "
            f"hits={self._hits} misses={self._misses}>"
        )

    def __len__(self) -> int:
        return len(self._order)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- the request path ------------------------------------------------------------------------------------

    def checkout(self, key: Hashable) -> PooledConnection | None:
        """Take the most recently returned live idle connection for `key`, or None.

        Expired and dead connections met on the way are closed and counted, never handed out.
        """
        idle = self._idle.get(key)
        if idle:
            while idle:
                connection = idle.popitem()[0]
                del self._order[connection]
                if connection.idle_timeout is not None and connection.expired(self._clock()):
                    self._reaped += 1
                    self._retire(connection)
                elif not connection.looks_alive(self._poller):
                    self._dead += 1
                    self._retire(connection)
                else:
                    if not idle:
                        del self._idle[key]
                    self._hits += 1
                    return connection
            del self._idle[key]
        self._misses += 1
        return None

    def checkin(
        self, key: Hashable, conn: Any, stream: trio.abc.Stream, idle_timeout: float | None = None
    ) -> bool:
        """Keep `conn` (over `stream`) idle under `key` for up to `idle_timeout` s (None: the pool's default).

        Args:
            key: the peer's `reuse_key()`.
            conn: what `checkout` hands back as `.conn` (the engine's upstream codec).
            stream: the byte stream under `conn`; the pool polls the socket under it and closes it.
            idle_timeout: seconds it may stay idle; 0 refuses it.

        Returns:
            False if refused (idle_timeout 0, max_size 0, or the pool is closed): the caller closes it.
        """
        if idle_timeout is None:
            idle_timeout = self.default_idle_timeout
        if self._closed or self.max_size == 0 or (idle_timeout is not None and idle_timeout <= 0):
            self._rejected += 1
            return False
        idle = self._idle.get(key)
        if idle is not None and self.max_idle_per_key is not None:
            while len(idle) >= self.max_idle_per_key:
                self._evict(next(iter(idle)))
        while len(self._order) >= self.max_size:
            self._evict(next(iter(self._order)))
        idle = self._idle.get(key)
        if idle is None:
            idle = self._idle[key] = {}
        connection = PooledConnection(
            conn=conn,
            stream=stream,
            key=key,
            # The usual transport's descriptor, as the default finds it without its steps.
            fd=stream.socket.fileno() if type(stream) is SocketStream else stream_fileno(stream),
            # Read only to expire it: a connection kept until evicted or dead needs no clock reading.
            idle_since=0.0 if idle_timeout is None else self._clock(),
            idle_timeout=idle_timeout,
        )
        idle[connection] = None
        self._order[connection] = None
        return True

    def discard(self, connection: PooledConnection) -> None:
        """Close `connection` and forget it, whether idle in the pool or held by the caller."""
        if connection in self._order:
            self._remove(connection)
        self._retire(connection)

    # -- housekeeping --------------------------------------------------------------------------------------

    def sweep(self) -> int:
        """Close idle connections past their idle timeout or dead (see the module rules); return how many."""
        if not self._order:
            return 0
        now = self._clock()
        expired: list[PooledConnection] = []
        dead: list[PooledConnection] = []
        polled: dict[int, PooledConnection] = {}
        for connection in self._order:
            if connection.expired(now):
                expired.append(connection)
            elif _tls_buffered(connection.stream):
                dead.append(connection)
            else:
                fd = connection._watch_fd()
                if fd is None:
                    continue
                if fd < 0:
                    dead.append(connection)
                else:
                    polled[fd] = connection
        dead.extend(polled[fd] for fd in _readable_fds(polled, self._poller))
        for connection in expired:
            self._remove(connection)
            self._retire(connection)
        for connection in dead:
            self._remove(connection)
            self._retire(connection)
        self._reaped += len(expired)
        self._dead += len(dead)
        return len(expired) + len(dead)

    async def close_retired(self) -> None:
        """Close the connections taken out of the pool that had no socket to close synchronously."""
        while self._retired:
            await self._retired.pop().aclose()

    async def aclose(self) -> None:
        """Close every idle connection and refuse checkins until `reopen`; shielded, within CLOSE_TIMEOUT."""
        self._closed = True
        await self.h2.aclose()
        connections = [*self._order, *self._retired]
        self._idle.clear()
        self._order.clear()
        self._retired.clear()
        deadline = trio.current_time() + CLOSE_TIMEOUT
        # Shielded: closing is cleanup that must finish. Past the deadline each aclose is cancelled at once,
        # which by trio's contract still closes the stream, abruptly.
        with trio.CancelScope(shield=True):
            for connection in connections:
                with trio.move_on_at(deadline):
                    await connection.aclose()

    def reopen(self) -> None:
        """Accept checkins again after `aclose` (a restarted PeerPoolActor reuses its pool)."""
        self._closed = False
        self.h2.reopen()

    def statistics(self) -> PoolStatistics:
        return PoolStatistics(
            max_size=self.max_size,
            idle=len(self._order),
            idle_per_key={key: len(idle) for key, idle in self._idle.items()},
            hits=self._hits,
            misses=self._misses,
            reaped=self._reaped,
            dead=self._dead,
            evictions=self._evictions,
            rejected=self._rejected,
        )

    # -- internals -------------------------------------------------------------------------------------------

    def _remove(self, connection: PooledConnection) -> None:
        del self._order[connection]
        idle = self._idle[connection.key]
        del idle[connection]
        if not idle:
            del self._idle[connection.key]

    def _evict(self, connection: PooledConnection) -> None:
        self._remove(connection)
        self._evictions += 1
        self._retire(connection)

    def _retire(self, connection: PooledConnection) -> None:
        if not connection.close_nowait():
            self._retired.append(connection)


# -- the actor ---------------------------------------------------------------------------------------------


@attrs.frozen
class SweepIdle:
    """Close expired and dead idle connections (PeerPoolActor's own timer sends it)."""


@attrs.frozen
class GetPoolStatistics:
    """Ask for the pool's `PoolStatistics`."""


@attrs.frozen
class ExpireDeadlines:
    """End the upstream reads past their deadline (`Deadlines.expire`), and look again at the next one."""


class PeerPoolActor(Actor):
    """Owns a `ConnectionPool`'s lifetime: sweeps it every `sweep_interval` s and closes it on stop, and
    ends the upstream reads that run out of time (`pool.deadlines`, see `_deadlines`).

    Connection actors use `actor.pool` (or the pool they were given) directly, without messages.

    Args:
        pool: the pool to watch; a new `ConnectionPool()` when omitted. A restarted actor is usually built
            with the same pool, which it reopens.
        sweep_interval: seconds between sweeps.
    """

    def __init__(self, pool: ConnectionPool | None = None, *, sweep_interval: float = IDLE_SWEEP_INTERVAL):
        if not sweep_interval > 0:
            raise ValueError(f"sweep_interval: must be > 0 seconds, got {sweep_interval}")
        self.pool = ConnectionPool() if pool is None else pool
        self.sweep_interval = sweep_interval

    async def on_start(self) -> None:
        self.pool.reopen()
        self.timers.start_periodic("sweep", SweepIdle(), self.sweep_interval)
        self.pool.deadlines.attach(self._poke)

    def _poke(self) -> None:
        # An earlier deadline than the next look: look now. A full mailbox (it never is: this is rare and
        # tiny) would leave it to the next look, at the latest at the next sweep.
        with contextlib.suppress(MailboxFull):
            self.ref.tell_nowait(ExpireDeadlines())

    async def receive(self, message: Any) -> Any:
        if isinstance(message, ExpireDeadlines):
            self._expire()
            return None
        if isinstance(message, SweepIdle):
            self._expire()
            self.pool.sweep()
            await self.pool.close_retired()
            for conn in self.pool.h2.sweep(trio.current_time(), self.pool.default_idle_timeout):
                await conn.aclose()
            return None
        if isinstance(message, GetPoolStatistics):
            return self.pool.statistics()
        return await super().receive(message)

    def _expire(self) -> None:
        deadlines = self.pool.deadlines
        now = trio.current_time()
        deadlines.expire(now)
        deadlines.wake_at = next_deadline = deadlines.next_deadline()
        if next_deadline < math.inf:
            self.timers.start_single("deadlines", ExpireDeadlines(), max(0.0, next_deadline - now))
        else:
            self.timers.cancel("deadlines")

    async def on_stop(self, reason: ExitReason) -> None:
        self.pool.deadlines.detach()
        await self.pool.aclose()


async def get_pool_statistics(ref: ActorRef, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> PoolStatistics:
    """Ask a `PeerPoolActor` for its pool's statistics."""
    statistics = await ref.ask(GetPoolStatistics(), timeout=timeout)
    assert isinstance(statistics, PoolStatistics)
    return statistics
