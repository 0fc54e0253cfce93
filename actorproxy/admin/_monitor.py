"""`AdminMonitorActor`: samples the services' counters every second and records supervisor events, into an
`AdminState` that the admin's requests and WebSockets read.

Rules:
- The monitor is the only writer of the state; readers (requests, WebSockets, on the same trio thread) read
  it without a message and wait on `wait_changed` for the next version. A version is published on every
  sample and on every supervisor event that is news to an operator (a crash, a restart, an escalation): the
  page hears of a crash at once, of everything else within a sample interval.
- Events come from the system's event stream, which never blocks its publisher: if the monitor's mailbox
  is full, the event is a dead letter and the page misses it (the tree still shows the restart count).
- Connection actors start and stop with every connection: those events are not subscribed to, so a busy
  proxy does not pay a message per connection; the tree shows them at the next sample.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import attrs
import trio

from actorproxy.proxy import ProxyCounters
from actors import Actor, ExitReason
from supervisors import ChildCrashed, ChildRestarted, RestartFailed, SupervisorEscalated, SupervisorShutdown

from ._history import SAMPLE_INTERVAL, History
from ._views import event_view

__all__ = ["MAX_EVENTS", "WATCHED_EVENTS", "AdminMonitorActor", "AdminState", "TakeSample"]

#: Events kept for the page's log.
MAX_EVENTS = 100
#: The supervisor events the monitor subscribes to: the ones an operator wants to see at once.
WATCHED_EVENTS: tuple[type, ...] = (
    ChildCrashed,
    ChildRestarted,
    RestartFailed,
    SupervisorEscalated,
    SupervisorShutdown,
)
_SAMPLE_TIMER = "sample"


class AdminState:
    """What the admin serves besides the live objects: counter history, recent events, a version."""

    def __init__(self, history: History | None = None) -> None:
        self.history = history or History()
        self.events: deque[dict[str, Any]] = deque(maxlen=MAX_EVENTS)
        self.version = 0
        #: Set when the server drains: WebSockets close (1001) instead of holding the drain up.
        self.closing = False
        self._changed = trio.Event()

    def publish(self) -> None:
        """A new version: wake whoever waits for one."""
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    def record_event(self, event: Any, time: float) -> None:
        self.events.append(event_view(event, time))
        self.publish()

    def close(self) -> None:
        """The server is draining: tell every waiting WebSocket."""
        self.closing = True
        self.publish()

    async def wait_changed(self, version: int, timeout: float) -> None:
        """Return once the version differs from `version`, or after `timeout` seconds."""
        if self.version != version:
            return
        with trio.move_on_after(timeout):
            await self._changed.wait()


@attrs.frozen
class TakeSample:
    """Sample every service's counters now (the monitor's timer sends it every `SAMPLE_INTERVAL`)."""


class AdminMonitorActor(Actor):
    """Keeps `state` up to date: counter samples on a timer, supervisor events as they come.

    Args:
        state: where to publish.
        counters: the services' counters to sample, by name (called at each sample: services come and go).
        interval: seconds between samples.
    """

    def __init__(
        self,
        state: AdminState,
        counters: Callable[[], Iterable[tuple[str, ProxyCounters]]],
        interval: float = SAMPLE_INTERVAL,
    ) -> None:
        self.state = state
        self.counters = counters
        self.interval = interval

    async def on_start(self) -> None:
        self.system.events.subscribe(self.ref, *WATCHED_EVENTS)
        self._sample()
        self.timers.start_periodic(_SAMPLE_TIMER, TakeSample(), self.interval)

    async def receive(self, message: Any) -> Any:
        if isinstance(message, TakeSample):
            self._sample()
            return None
        if isinstance(message, WATCHED_EVENTS):
            self.state.record_event(message, trio.current_time())
            return None
        return await super().receive(message)

    async def on_stop(self, reason: ExitReason) -> None:
        self.system.events.unsubscribe(self.ref)

    def _sample(self) -> None:
        self.state.history.record(trio.current_time(), self.counters())
        self.state.publish()
