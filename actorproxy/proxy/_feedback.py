"""How the engine tells a load balancer what became of the backend it picked.

Rules:
- `LoadBalancer.select` (and `select_with`) leaves a note in the request's task: which balancer picked which
  backend. The engine clears the note before each `upstream_peer` call and claims it after: when the peer
  returned connects to the picked backend's address, that attempt is tracked, so the guide's
  `HttpPeer(backend.addr, ...)` needs no extra code for least-connections counts or passive health.
- A tracked attempt counts as in flight from the claim until `finish`, which says how it ended; `finish`
  runs once, and the engine's `finally` ends a cancelled or abandoned attempt as `Outcome.ABANDONED`.
- Notes live in a `ContextVar`: each trio task (one per connection) has its own, so concurrent requests
  never see each other's picks. Everything here is synchronous and costs a few hundred nanoseconds.
"""

from __future__ import annotations

import enum
from contextvars import ContextVar
from typing import Any, Protocol

__all__ = ["NO_ATTEMPT", "Attempt", "Outcome", "Tracker", "claim", "clear", "note_pick"]


class Outcome(enum.Enum):
    """How one attempt at a backend ended, as the proxy saw it."""

    #: The backend answered with a status below 500 (or any status, when 5xx are not counted).
    SUCCESS = "success"
    #: No connection could be made (refused, timed out, TLS handshake failed).
    CONNECT_FAILURE = "connect_failure"
    #: The backend answered 5xx.
    SERVER_ERROR = "server_error"
    #: The connection broke after connecting: reset or closed early, a read or write timeout, bad HTTP.
    FAILURE = "failure"
    #: The client went away or the proxy gave up for its own reasons: no verdict on the backend.
    ABANDONED = "abandoned"


class Tracker(Protocol):
    """What keeps in-flight counts and outcomes: a `LoadBalancer`."""

    def begin(self, backend: Any) -> None: ...

    def finish(self, backend: Any, outcome: Any) -> None: ...


_picked: ContextVar[tuple[Tracker, Any] | None] = ContextVar("actorproxy_picked_backend", default=None)


def note_pick(tracker: Tracker, backend: Any) -> None:
    """Record that `tracker` picked `backend` for the request running in this task."""
    _picked.set((tracker, backend))


def clear() -> None:
    """Forget the last pick (before asking the application for a peer)."""
    if _picked.get() is not None:  # setting it anyway would copy the task's context, with no load balancer
        _picked.set(None)


class Attempt:
    """One tracked attempt at a backend: in flight until `finish`."""

    __slots__ = ("backend", "done", "tracker")

    def __init__(self, tracker: Tracker | None, backend: Any) -> None:
        self.tracker = tracker
        self.backend = backend
        self.done = tracker is None

    def finish(self, outcome: Any) -> None:
        """End the attempt with `outcome`; later calls do nothing."""
        if self.done:
            return
        self.done = True
        assert self.tracker is not None
        self.tracker.finish(self.backend, outcome)


#: The attempt of a peer no load balancer picked: `finish` does nothing.
NO_ATTEMPT = Attempt(None, None)


def claim(address: object) -> Attempt:
    """Start tracking the last pick if `address` is the picked backend's; else `NO_ATTEMPT`."""
    picked = _picked.get()
    if picked is None:
        return NO_ATTEMPT
    tracker, backend = picked
    if backend.addr != address:
        return NO_ATTEMPT
    tracker.begin(backend)
    return Attempt(tracker, backend)
