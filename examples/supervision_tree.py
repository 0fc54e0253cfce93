"""Supervision: a worker that crashes is restarted, until it crashes too often and the supervisor gives up.

The supervisor allows 2 restarts within 5 seconds (OTP's MaxR / MaxT). The first two crashes are restarts;
the third exceeds the intensity, so the supervisor stops and exits with `Escalation`, which its parent sees
as the supervisor's own crash. A small actor subscribed to supervisor events narrates along the way.

Run it with `python examples/supervision_tree.py`.
"""

from __future__ import annotations

import logging
from typing import Any

import attrs
import trio

from actors import Actor, ActorRef, ExitKind, open_actor_system
from supervisors import (
    ChildCrashed,
    ChildRestarted,
    ChildSpec,
    ChildStarted,
    Escalation,
    Strategy,
    Supervisor,
    SupervisorEvent,
    which_children,
)

# Restarts the supervisor tolerates within PERIOD seconds; the next crash makes it escalate.
INTENSITY = 2
PERIOD = 5.0


class WorkerCrashed(Exception):
    """The failure the worker is told to have."""


@attrs.frozen
class Crash:
    """Fail now."""


@attrs.frozen
class GetEvents:
    """Answer with every event recorded so far."""


class WorkerActor(Actor):
    """Does nothing but crash when told to."""

    async def receive(self, message: Any) -> Any:
        if isinstance(message, Crash):
            raise WorkerCrashed(f"{self.context.path} told to crash")
        return await super().receive(message)


class EventLogActor(Actor):
    """Prints and keeps every supervisor event it is sent."""

    def __init__(self) -> None:
        self.events: list[SupervisorEvent] = []

    async def receive(self, message: Any) -> Any:
        if isinstance(message, SupervisorEvent):
            print(f"  event-log: {type(message).__name__}")
            self.events.append(message)
            return None
        if isinstance(message, GetEvents):
            return list(self.events)
        return await super().receive(message)


@attrs.frozen(kw_only=True)
class TreeReport:
    """What happened to the tree: worker incarnations, their crashes, and the escalation."""

    worker_starts: int
    worker_crashes: int
    escalation: Escalation


async def crash(worker: ActorRef) -> None:
    """Make `worker` crash and wait until this incarnation has exited."""
    await worker.tell(Crash())
    await worker.join()


async def current_worker(supervisor: ActorRef) -> ActorRef:
    """The ref of the worker's running incarnation (a restart makes a new ref)."""
    [worker] = await which_children(supervisor)
    print(f"worker: {worker.state}, restarts={worker.restarts}")
    assert worker.ref is not None
    return worker.ref


async def main() -> TreeReport:
    """Crash the worker INTENSITY + 1 times and report what the supervisor did."""
    async with open_actor_system("supervision") as system:
        log = await system.spawn(EventLogActor, name="event-log")
        system.events.subscribe(log, SupervisorEvent)
        supervisor = await system.spawn(
            Supervisor(
                [ChildSpec(id="worker", start=WorkerActor)],
                strategy=Strategy.ONE_FOR_ONE,
                intensity=INTENSITY,
                period=PERIOD,
            ),
            name="supervisor",
        )
        for _ in range(INTENSITY + 1):
            # The exit notice reaches the supervisor's control lane before `join` returns, and control
            # messages are read before asks, so `which_children` already sees the restarted worker.
            await crash(await current_worker(supervisor))

        # A spawned supervisor's crash ends only itself; `system.run` would raise it in the caller instead.
        reason = await supervisor.join()
        assert reason.kind is ExitKind.CRASHED and isinstance(reason.error, Escalation)
        print(f"supervisor exited: {reason.error}")
        # The ask queues behind the events already told to the log, so it answers with all of them.
        events = await log.ask(GetEvents())
    return TreeReport(
        worker_starts=sum(isinstance(e, ChildStarted | ChildRestarted) for e in events),
        worker_crashes=sum(isinstance(e, ChildCrashed) for e in events),
        escalation=reason.error,
    )


if __name__ == "__main__":
    # Every crash here is on purpose: keep the kernel's crash logs (a traceback each) out of the story.
    logging.getLogger("actorproxy").setLevel(logging.CRITICAL)
    trio.run(main)
