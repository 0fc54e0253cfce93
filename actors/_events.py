"""A publish/subscribe stream of system events (supervisor decisions, for logs and admin views).

Delivery never blocks the publisher: a subscriber whose mailbox is full misses the event (a dead letter),
and a subscriber that exited is dropped.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._errors import MailboxFull

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["EventStream"]


class EventStream:
    """Subscribers by event type; `publish` tells each matching subscriber."""

    __slots__ = ("_subscribers",)

    def __init__(self) -> None:
        self._subscribers: list[tuple[ActorRef, tuple[type, ...]]] = []

    def subscribe(self, ref: ActorRef, *types: type) -> None:
        """Deliver events that are instances of `types` (all events if none) to `ref`."""
        self._subscribers.append((ref, types or (object,)))

    def unsubscribe(self, ref: ActorRef) -> None:
        self._subscribers = [(r, t) for r, t in self._subscribers if r is not ref]

    def publish(self, event: Any) -> None:
        if not self._subscribers:
            return
        alive = []
        for ref, types in self._subscribers:
            if not ref.is_alive:
                continue
            alive.append((ref, types))
            if isinstance(event, types):
                try:
                    ref.tell_nowait(event)
                except MailboxFull:
                    ref._context.system.dead_letters.record(ref.path, event, "subscriber mailbox full")
        self._subscribers = alive
