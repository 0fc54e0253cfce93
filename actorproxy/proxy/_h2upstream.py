"""`connect_h2`: a connection for a request to a peer whose `alpn` allows HTTP/2.

Rules:
- In order: a slot on a pooled h2 connection with room; an idle HTTP/1.1 connection to the same peer
  (an `H2H1` peer whose ALPN picked http/1.1 before); a new connection. Over TLS the peer's ALPN answer
  decides what the new connection speaks; in cleartext `ALPN.H2` speaks h2c with prior knowledge (RFC 9113
  §3.3) and `H2H1` speaks HTTP/1.1 (there is no negotiation without TLS here: no `Upgrade: h2c`).
- A new h2 connection is added to the pool at once, so the requests that come while it carries this one
  share it; the requests that come while it is being opened wait for it (`H2Pool.pending`) rather than
  open one each (a burst of first requests would open a connection per request otherwise).
- A request that upgrades (WebSocket) always goes over HTTP/1.1: its peer is asked for http/1.1 alone.
- The h2 settings are the service's, with the peer's `max_h2_streams` when it sets one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import attrs
import trio

from actorproxy.config import Http2Settings
from actorproxy.http import ClientSide, Codec
from actorproxy.http.h2 import H2ClientConnection

from ._peer import ALPN, HttpPeer
from ._pool import ConnectionPool
from ._sockets import SocketStream

__all__ = ["connect_h2"]


async def connect_h2(
    pool: ConnectionPool,
    connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]],
    codec: Codec,
    settings: Http2Settings,
    peer: HttpPeer,
    *,
    upgrade: bool,
) -> tuple[ClientSide, bool]:
    """A connection (an h2 stream or an HTTP/1.1 connection) for one request to `peer`, and whether it was
    reused (see the module rules)."""
    options = peer.options
    key = peer.reuse_key()
    h2pool = pool.h2
    if not upgrade:
        shared = h2pool.checkout(key)
        if shared is None and (opening := h2pool.pending.get(key)) is not None:
            await opening.wait()
            shared = h2pool.checkout(key)
        if shared is not None:
            return shared.open_stream(options.read_timeout, options.write_timeout), True
    pooled = pool.checkout(key)
    if pooled is not None:
        reused: ClientSide = pooled.conn
        return reused, True
    if upgrade:
        return await _connect_h1(pool, connect, codec, peer.with_options(attrs.evolve(options, alpn=ALPN.H1)))
    opened = h2pool.pending[key] = trio.Event()
    try:
        return await _connect(pool, connect, codec, settings, peer)
    finally:
        if h2pool.pending.get(key) is opened:
            del h2pool.pending[key]
        opened.set()


async def _connect_h1(
    pool: ConnectionPool,
    connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]],
    codec: Codec,
    peer: HttpPeer,
) -> tuple[ClientSide, bool]:
    stream = await connect(peer)
    if type(stream) is SocketStream:
        stream.deadlines = pool.deadlines
    options = peer.options
    return codec.client(stream, read_timeout=options.read_timeout, write_timeout=options.write_timeout), False


async def _connect(
    pool: ConnectionPool,
    connect: Callable[[HttpPeer], Awaitable[trio.abc.Stream]],
    codec: Codec,
    settings: Http2Settings,
    peer: HttpPeer,
) -> tuple[ClientSide, bool]:
    options = peer.options
    stream = await connect(peer)
    if type(stream) is SocketStream:
        stream.deadlines = pool.deadlines
    if isinstance(stream, trio.SSLStream):
        speaks_h2 = stream.selected_alpn_protocol() == "h2"
    else:
        speaks_h2 = options.alpn is ALPN.H2
    if not speaks_h2:
        return codec.client(
            stream, read_timeout=options.read_timeout, write_timeout=options.write_timeout
        ), False
    if options.max_h2_streams is not None:
        settings = attrs.evolve(settings, max_h2_streams=options.max_h2_streams)
    conn = H2ClientConnection(stream, settings, scheme=peer.scheme)
    try:
        await conn.start()
    except BaseException:
        with trio.CancelScope(shield=True):
            await conn.aclose()
        raise
    conn.orphan = not pool.h2.add(peer.reuse_key(), conn, options.idle_timeout)
    return conn.open_stream(options.read_timeout, options.write_timeout), False
