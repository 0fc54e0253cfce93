"""`ListenFds`: the listening sockets of a server process, by bind key (Pingora's `ListenFds`).

Rules:
- The table owns the listening sockets; listeners borrow them. A key is the bind address as configured:
  "host:port" or "unix:/path" (`endpoint_key`).
- Sockets come from three places: bound by a listener when it starts (`register`), bound before the event
  loop starts (`bind_listeners`, so worker processes inherit them and privileges can be dropped after), or
  handed over by the previous server on an upgrade (`adopt`). A listener asks `take(key)` first and binds
  only when nothing is there.
- A listener that stops gives its socket back (`release`). While the server runs, the socket stays open,
  so a restarted listener takes it again and connections wait in the backlog meanwhile: none is refused.
  Once the server drains (`closing`), a released socket is closed: new connections are refused from then
  on. After a handover (`handed_over`) the successor owns the sockets: closing our copy leaves theirs open,
  and a Unix socket's file is left in place.
- A table made for a service run outside a `Server` is `closing` from the start: stopping its listener
  closes the socket, as it always did.
"""

from __future__ import annotations

import logging
import os
import socket

__all__ = ["ListenFds", "endpoint_key"]

logger = logging.getLogger("actorproxy.server")


def endpoint_key(host: str | None, port: int, path: str | None) -> str:
    """The key of a bind address: "host:port" ("[v6]:port") or "unix:/path"."""
    if path is not None:
        return f"unix:{path}"
    assert host is not None
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class ListenFds:
    """Listening sockets by bind key.

    Args:
        closing: close sockets as soon as their listener releases them (no server keeps them).
    """

    def __init__(self, *, closing: bool = False) -> None:
        self._idle: dict[str, socket.socket] = {}  # open, not borrowed by a listener
        self._lent: dict[str, socket.socket] = {}
        self.closing = closing
        self.handed_over = False

    def __repr__(self) -> str:
        return (
            f"<ListenFds idle={sorted(self._idle)} lent={sorted(self._lent)}"
            f"{' closing' if self.closing else ''}{' handed over' if self.handed_over else ''}>"
        )

    def __contains__(self, key: object) -> bool:
        return key in self._idle or key in self._lent

    def keys(self) -> list[str]:
        return sorted(self._idle.keys() | self._lent.keys())

    def adopt(self, sockets: dict[str, socket.socket]) -> None:
        """Add sockets bound elsewhere (before the loop, or by the previous server); they are ours now."""
        for key, sock in sockets.items():
            old = self._idle.pop(key, None)
            if old is not None:
                old.close()
            sock.setblocking(False)
            self._idle[key] = sock

    def take(self, key: str) -> socket.socket | None:
        """Borrow the socket bound at `key`, if there is one."""
        sock = self._idle.pop(key, None)
        if sock is not None:
            self._lent[key] = sock
        return sock

    def register(self, key: str, sock: socket.socket) -> None:
        """Record a socket a listener bound itself (it is borrowed by that listener)."""
        self._lent[key] = sock

    def release(self, key: str, sock: socket.socket) -> None:
        """A listener stopped: keep its socket for the next one, or close it when the server is draining."""
        if self._lent.get(key) is sock:
            del self._lent[key]
        if self.closing:
            self._close(key, sock)
        else:
            self._idle[key] = sock

    def addresses(self) -> dict[str, object]:
        """Every open socket's bound address by key."""
        return {key: sock.getsockname() for key, sock in (self._idle | self._lent).items()}

    def fds(self) -> dict[str, int]:
        """Every open socket's descriptor by key (what a handover sends)."""
        return {key: sock.fileno() for key, sock in (self._idle | self._lent).items()}

    def close_idle(self) -> None:
        """Close every socket no listener has borrowed (at the end of a drain)."""
        for key, sock in list(self._idle.items()):
            del self._idle[key]
            self._close(key, sock)

    def _close(self, key: str, sock: socket.socket) -> None:
        sock.close()
        if key.startswith("unix:") and not self.handed_over:
            # The successor of a handover serves the same path: its file must stay.
            try:
                os.unlink(key[len("unix:") :])
            except FileNotFoundError:
                pass
            except OSError as exc:
                logger.warning("could not remove %s: %s", key, exc)
