"""ConnectionPool and PeerPoolActor: LIFO reuse, caps, no-reuse, dead and expired idle connections, shutdown.

Connections are socketpairs (no network): the far end plays the upstream, closing or talking out of turn.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
import trustme

from actorproxy.config import DEFAULT_POOL_SIZE
from actorproxy.proxy._pool import ConnectionPool, PeerPoolActor, get_pool_statistics, stream_fileno
from actors import ActorSystem

KEY = ("10.0.0.1", 80)
OTHER = ("10.0.0.2", 80)


class Pair:
    """Our side (`stream`, what the pool holds) and the upstream's side (`upstream`) of one connection."""

    def __init__(self) -> None:
        ours, theirs = trio.socket.socketpair()
        self.stream = trio.SocketStream(ours)
        self.upstream = trio.SocketStream(theirs)
        self.conn = object()  # stands in for the engine's codec

    @property
    def closed(self) -> bool:
        return self.stream.socket.fileno() == -1


@pytest.fixture
async def pairs() -> AsyncIterator[list[Pair]]:
    made: list[Pair] = []
    yield made
    for pair in made:  # closing trio sockets needs the trio run, hence an async fixture
        pair.stream.socket.close()
        pair.upstream.socket.close()


def _pair(pairs: list[Pair]) -> Pair:
    pair = Pair()
    pairs.append(pair)
    return pair


async def test_checkout_is_lifo_per_key(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    first, second, other = _pair(pairs), _pair(pairs), _pair(pairs)
    assert pool.checkin(KEY, first.conn, first.stream)
    assert pool.checkin(KEY, second.conn, second.stream)
    assert pool.checkin(OTHER, other.conn, other.stream)
    assert pool.statistics().idle_per_key == {KEY: 2, OTHER: 1}

    taken = pool.checkout(KEY)
    assert taken is not None and taken.conn is second.conn and taken.stream is second.stream
    assert taken.key == KEY and taken.fd == second.stream.socket.fileno()
    taken = pool.checkout(KEY)
    assert taken is not None and taken.conn is first.conn
    assert pool.checkout(KEY) is None
    stats = pool.statistics()
    assert (stats.hits, stats.misses, stats.idle, stats.idle_per_key) == (2, 1, 1, {OTHER: 1})
    assert not any(pair.closed for pair in pairs)  # handed out, not closed


async def test_a_full_pool_evicts_the_least_recently_returned(pairs: list[Pair]) -> None:
    pool = ConnectionPool(max_size=2)
    oldest, middle, newest = _pair(pairs), _pair(pairs), _pair(pairs)
    pool.checkin(KEY, oldest.conn, oldest.stream)
    pool.checkin(OTHER, middle.conn, middle.stream)
    assert pool.checkin(KEY, newest.conn, newest.stream)
    assert oldest.closed and not middle.closed and not newest.closed
    stats = pool.statistics()
    assert (stats.idle, stats.evictions) == (2, 1)
    assert stats.idle_per_key == {KEY: 1, OTHER: 1}


async def test_the_per_key_cap_evicts_within_the_key(pairs: list[Pair]) -> None:
    pool = ConnectionPool(max_idle_per_key=1)
    old, new, other = _pair(pairs), _pair(pairs), _pair(pairs)
    pool.checkin(OTHER, other.conn, other.stream)
    pool.checkin(KEY, old.conn, old.stream)
    pool.checkin(KEY, new.conn, new.stream)
    assert old.closed and not new.closed and not other.closed
    assert pool.statistics().idle_per_key == {KEY: 1, OTHER: 1}


async def test_pingora_default_size() -> None:
    assert ConnectionPool().max_size == DEFAULT_POOL_SIZE == 128


@pytest.mark.parametrize(
    ("pool_args", "idle_timeout"),
    [({}, 0.0), ({"default_idle_timeout": 0.0}, None), ({"max_size": 0}, 60.0)],
    ids=["idle_timeout=0", "default_idle_timeout=0", "max_size=0"],
)
async def test_reuse_disabled_refuses_the_checkin(
    pairs: list[Pair], pool_args: dict[str, Any], idle_timeout: float | None
) -> None:
    pool = ConnectionPool(**pool_args)
    pair = _pair(pairs)
    assert not pool.checkin(KEY, pair.conn, pair.stream, idle_timeout)
    assert not pair.closed  # the caller closes what was refused
    assert pool.checkout(KEY) is None
    assert pool.statistics().rejected == 1


async def test_a_connection_the_upstream_closed_is_not_handed_out(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    alive, closed = _pair(pairs), _pair(pairs)
    pool.checkin(KEY, alive.conn, alive.stream)
    pool.checkin(KEY, closed.conn, closed.stream)
    await closed.upstream.aclose()
    taken = pool.checkout(KEY)
    assert taken is not None and taken.conn is alive.conn  # skipped the dead one, LIFO otherwise
    assert closed.closed
    assert pool.statistics().dead == 1


async def test_a_connection_that_received_stray_bytes_is_not_handed_out(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    pair = _pair(pairs)
    pool.checkin(KEY, pair.conn, pair.stream)
    await pair.upstream.send_all(b"HTTP/1.1 408 Request Timeout\r\n\r\n")
    assert pool.checkout(KEY) is None
    assert pair.closed
    stats = pool.statistics()
    assert (stats.dead, stats.misses, stats.idle) == (1, 1, 0)


async def test_an_expired_connection_is_not_handed_out(pairs: list[Pair], autojump_clock: Any) -> None:
    pool = ConnectionPool()
    pair = _pair(pairs)
    pool.checkin(KEY, pair.conn, pair.stream, idle_timeout=5.0)
    await trio.sleep(4.9)
    taken = pool.checkout(KEY)
    assert taken is not None
    pool.checkin(KEY, taken.conn, taken.stream, idle_timeout=5.0)  # idle time restarts at checkin
    await trio.sleep(5.0)
    assert pool.checkout(KEY) is None
    assert pair.closed and pool.statistics().reaped == 1


async def test_discard_closes_a_connection_that_turned_out_bad(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    bad, kept = _pair(pairs), _pair(pairs)
    pool.checkin(KEY, kept.conn, kept.stream)
    pool.checkin(KEY, bad.conn, bad.stream)
    taken = pool.checkout(KEY)
    assert taken is not None and taken.conn is bad.conn
    pool.discard(taken)  # e.g. the first write on the reused connection failed
    assert bad.closed and not kept.closed
    assert pool.statistics().idle_per_key == {KEY: 1}


# -- TLS -----------------------------------------------------------------------------------------------------


async def _tls_pair(pairs: list[Pair]) -> tuple[Pair, trio.SSLStream[Any], trio.SSLStream[Any]]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    pair = _pair(pairs)
    client = trio.SSLStream(pair.stream, client_context, server_hostname="upstream.example")
    server = trio.SSLStream(pair.upstream, server_context, server_side=True)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.do_handshake)
        nursery.start_soon(client.do_handshake)
    # One exchange, as a real request would: the client's read also takes in the TLS 1.3 session tickets.
    await server.send_all(b"response")
    assert await client.receive_some() == b"response"
    return pair, client, server


async def test_tls_connections_are_watched_through_the_tls_layer(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    pair, client, server = await _tls_pair(pairs)
    assert stream_fileno(client) == pair.stream.socket.fileno()
    pool.checkin(KEY, pair.conn, client)
    taken = pool.checkout(KEY)
    assert taken is not None and taken.stream is client

    pool.checkin(KEY, pair.conn, client)
    await server.aclose()  # close_notify: bytes on an idle connection
    assert pool.checkout(KEY) is None
    assert pair.closed


async def test_unread_decrypted_bytes_make_a_tls_connection_dead(pairs: list[Pair]) -> None:
    pool = ConnectionPool()
    pair, client, server = await _tls_pair(pairs)
    await server.send_all(b"0123456789")
    assert await client.receive_some(4) == b"0123"  # the rest sits decrypted in the SSL object
    pool.checkin(KEY, pair.conn, client)
    assert pool.checkout(KEY) is None
    assert pool.statistics().dead == 1


# -- the actor -----------------------------------------------------------------------------------------------


async def test_the_actor_reaps_idle_connections_past_their_timeout(
    actor_system: ActorSystem, pairs: list[Pair], autojump_clock: Any
) -> None:
    pool = ConnectionPool()
    ref = await actor_system.spawn(PeerPoolActor(pool, sweep_interval=1.0))
    short, long = _pair(pairs), _pair(pairs)
    pool.checkin(KEY, short.conn, short.stream, idle_timeout=5.0)
    pool.checkin(OTHER, long.conn, long.stream, idle_timeout=50.0)
    await trio.sleep(4.5)
    assert not short.closed and len(pool) == 2
    await trio.sleep(1.0)  # the sweep at t=5 is due
    assert short.closed and not long.closed
    stats = await get_pool_statistics(ref)
    assert (stats.idle, stats.reaped, stats.idle_per_key) == (1, 1, {OTHER: 1})


async def test_the_actor_drops_idle_connections_that_die(
    actor_system: ActorSystem, pairs: list[Pair], autojump_clock: Any
) -> None:
    pool = ConnectionPool()
    await actor_system.spawn(PeerPoolActor(pool, sweep_interval=1.0))
    closed, talked, quiet = _pair(pairs), _pair(pairs), _pair(pairs)
    for pair in (closed, talked, quiet):
        pool.checkin(KEY, pair.conn, pair.stream)
    await closed.upstream.aclose()
    await talked.upstream.send_all(b"unexpected")
    await trio.sleep(1.5)
    assert closed.closed and talked.closed and not quiet.closed
    assert pool.statistics().dead == 2 and len(pool) == 1


async def test_connections_without_a_socket_are_closed_by_the_sweep(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    pool = ConnectionPool()
    await actor_system.spawn(PeerPoolActor(pool, sweep_interval=1.0))
    ours, theirs = trio.testing.memory_stream_pair()
    assert stream_fileno(ours) == -1
    pool.checkin(KEY, "conn", ours, idle_timeout=2.0)
    await trio.sleep(3.0)
    assert len(pool) == 0 and pool.statistics().reaped == 1
    assert await theirs.receive_some() == b""  # closed by the actor, asynchronously


async def test_stopping_the_actor_closes_idle_connections_and_refuses_checkins(
    actor_system: ActorSystem, pairs: list[Pair]
) -> None:
    pool = ConnectionPool()
    ref = await actor_system.spawn(PeerPoolActor(pool))
    idle, busy = _pair(pairs), _pair(pairs)
    pool.checkin(KEY, idle.conn, idle.stream)
    await ref.stop()
    assert idle.closed and len(pool) == 0 and pool.closed
    assert not pool.checkin(KEY, busy.conn, busy.stream)  # a request finishing during shutdown
    assert not busy.closed  # checked-out connections are their holder's to close

    await actor_system.spawn(PeerPoolActor(pool))  # a restart reopens the same pool
    assert pool.checkin(KEY, busy.conn, busy.stream)


async def test_repr_shows_live_state(pairs: list[Pair]) -> None:
    pool = ConnectionPool(max_size=4)
    pair = _pair(pairs)
    pool.checkin(KEY, pair.conn, pair.stream)
    pool.checkout(OTHER)
    assert repr(pool) == "<ConnectionPool open idle=1/4 keys=1 hits=0 misses=1>"
