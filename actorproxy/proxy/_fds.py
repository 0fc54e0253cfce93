"""The sockets under upstream streams: their descriptors, and whether they have anything to read.

Rules:
- One poll(2) call answers for many descriptors at once (the idle sweep), or one (a checkout); a poll
  object may be reused (register, poll, unregister). See `_pool` for why poll(2) and not a peek.
- A stream's socket is found through its TLS layers; a stream with none (memory streams) has descriptor -1.
"""

from __future__ import annotations

import select
from collections.abc import Iterable
from typing import Any

import trio

from ._sockets import SocketStream

__all__ = ["stream_fileno"]

_HAS_POLL = hasattr(select, "poll")
# POLLHUP, POLLERR and POLLNVAL are always reported; POLLRDHUP (Linux) flags a half-close without data.
_POLL_EVENTS = (select.POLLIN | select.POLLPRI | getattr(select, "POLLRDHUP", 0)) if _HAS_POLL else 0


def _transport(stream: trio.abc.Stream) -> SocketStream | trio.SocketStream | None:
    """The socket stream under `stream` (through TLS layers), or None if there is none."""
    while isinstance(stream, trio.SSLStream):
        stream = stream.transport_stream
    if isinstance(stream, (SocketStream, trio.SocketStream)):
        return stream
    return None


def _fileno(transport: SocketStream | trio.SocketStream) -> int:
    return transport.socket.fileno()


def stream_fileno(stream: trio.abc.Stream) -> int:
    """The file descriptor of the socket under `stream` (through TLS layers), or -1 if there is none."""
    transport = _transport(stream)
    return -1 if transport is None else _fileno(transport)


def _new_poller() -> Any:
    return select.poll() if _HAS_POLL else None


def _readable_fds(fds: Iterable[int], poller: Any = None) -> set[int]:
    """The descriptors among `fds` with anything to report: data, EOF, an error, or not open at all.

    `poller`: a `select.poll` object to reuse; it is left with nothing registered.
    """
    fds = list(fds)
    if not fds:
        return set()
    if _HAS_POLL:
        if poller is None:
            poller = select.poll()
        registered: list[int] = []
        try:
            for fd in fds:
                poller.register(fd, _POLL_EVENTS)
                registered.append(fd)
            return {fd for fd, _ in poller.poll(0)}
        finally:
            for fd in registered:
                poller.unregister(fd)
    readable, _, errored = select.select(fds, [], fds, 0)  # pragma: no cover (no poll: Windows)
    return set(readable) | set(errored)  # pragma: no cover


def _tls_buffered(stream: trio.abc.Stream) -> bool:
    # Decrypted bytes nobody asked for; `pending` is forwarded to the SSLObject once the handshake is done.
    return isinstance(stream, trio.SSLStream) and bool(stream.pending())
