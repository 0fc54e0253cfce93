"""`H2Pool`: the multiplexed HTTP/2 connections to upstream peers, by reuse key.

Rules:
- Unlike an HTTP/1.1 connection, an h2 connection is shared, not checked out: `checkout` hands out a slot
  on a connection with room (`H2ClientConnection.has_room`: fewer streams than min(the peer's
  SETTINGS_MAX_CONCURRENT_STREAMS, max_h2_streams)), and the stream gives its slot back when it closes.
  Every connection of a key full (or none): the caller opens another and `add`s it. Synchronous, like the
  HTTP/1.1 pool: trio runs one task at a time between awaits.
- A connection with no stream open is idle; one idle for longer than its idle timeout, or retired (a
  GOAWAY, a failure) with no stream left, is closed by `sweep` (the pool's actor calls it with the idle
  sweep). An idle connection whose socket is readable is retired at checkout rather than used: nobody
  reads an idle connection, so what is there (a GOAWAY, an EOF, a PING) is unknown.
- `aclose` closes them all (their streams fail); the pool refuses `add` until it is reopened.
"""

from __future__ import annotations

from collections.abc import Hashable

import trio

from actorproxy.http.h2 import H2ClientConnection

from ._fds import _readable_fds, stream_fileno

__all__ = ["H2Pool"]


class H2Pool:
    """Shared h2 connections by peer reuse key (see the module rules)."""

    __slots__ = ("_by_key", "_closed", "opened", "pending")

    def __init__(self) -> None:
        #: Keys a connection is being opened for, with the event set once it is (or failed).
        self.pending: dict[Hashable, trio.Event] = {}
        self._by_key: dict[Hashable, list[tuple[H2ClientConnection, float | None]]] = {}
        self._closed = False
        #: Connections added in all (tests check reuse with it).
        self.opened = 0

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_key.values())

    def connections(self, key: Hashable) -> list[H2ClientConnection]:
        """The connections kept for `key`."""
        return [conn for conn, _ in self._by_key.get(key, ())]

    def checkout(self, key: Hashable) -> H2ClientConnection | None:
        """A connection for `key` with room for one more stream, or None."""
        entries = self._by_key.get(key)
        if not entries:
            return None
        for conn, _ in entries:
            if not conn.has_room:
                continue
            if not conn.active and not _looks_alive(conn.stream):
                conn.retired = True
                continue
            return conn
        return None

    def add(self, key: Hashable, conn: H2ClientConnection, idle_timeout: float | None) -> bool:
        """Keep `conn` for `key`; False when the pool is closed (the caller closes it when done)."""
        if self._closed:
            return False
        self._by_key.setdefault(key, []).append((conn, idle_timeout))
        self.opened += 1
        return True

    def sweep(self, now: float, default_idle_timeout: float | None = None) -> list[H2ClientConnection]:
        """Take out the connections to close: idle past their timeout, or retired with no stream left."""
        done: list[H2ClientConnection] = []
        for key in list(self._by_key):
            kept = []
            for conn, own_timeout in self._by_key[key]:
                timeout = default_idle_timeout if own_timeout is None else own_timeout
                idle = not conn.active
                expired = idle and timeout is not None and now - conn.idle_since >= timeout
                if idle and (conn.retired or conn.error is not None or expired):
                    done.append(conn)
                else:
                    kept.append((conn, own_timeout))
            if kept:
                self._by_key[key] = kept
            else:
                del self._by_key[key]
        return done

    async def aclose(self) -> None:
        """Close every connection and refuse new ones until `reopen`."""
        self._closed = True
        entries = [conn for entries in self._by_key.values() for conn, _ in entries]
        self._by_key.clear()
        with trio.CancelScope(shield=True):
            for conn in entries:
                await conn.aclose()

    def reopen(self) -> None:
        self._closed = False


def _looks_alive(stream: trio.abc.Stream) -> bool:
    """False when the socket under `stream` has anything to read (or is gone): one poll(2)."""
    if isinstance(stream, trio.SSLStream) and stream.pending():
        return False
    fd = stream_fileno(stream)
    return fd < 0 or not _readable_fds((fd,))
