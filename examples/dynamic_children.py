"""Dynamic children: a `DynamicSupervisor` starts 1,000 short-lived jobs on demand; some of them crash.

Jobs are TEMPORARY children: never restarted, forgotten once they exit, so their crashes are counted but
never spend the supervisor's restart intensity. This is how a listener runs one actor per connection.

Run it with `python examples/dynamic_children.py`.
"""

from __future__ import annotations

import logging

import attrs
import trio

from actors import Actor, ExitKind, open_actor_system
from supervisors import (
    ChildSpec,
    DynamicSupervisor,
    Restart,
    count_children,
    start_child,
    supervisor_statistics,
)


class JobFailed(Exception):
    """The failure a job is started to have."""


class JobActor(Actor):
    """One unit of work: its `run` returns at once (a normal exit), or raises (a crash) if told to fail."""

    def __init__(self, number: int, fail: bool) -> None:
        self.number = number
        self.fail = fail

    async def run(self) -> None:
        if self.fail:
            raise JobFailed(f"job {self.number} failed")


@attrs.frozen(kw_only=True)
class JobsReport:
    """How the jobs ended, as the jobs themselves and their supervisor saw it."""

    started: int
    finished: int
    crashed: int
    supervisor_crashes: int
    supervisor_restarts: int
    children_left: int


async def main(jobs: int = 1000, crash_every: int = 10) -> JobsReport:
    """Start `jobs` jobs, every `crash_every`th of which crashes; wait for all to end and report."""
    async with open_actor_system("dynamic") as system:
        supervisor = await system.spawn(
            DynamicSupervisor(ChildSpec(id="job", start=JobActor, restart=Restart.TEMPORARY)),
            name="jobs",
        )
        refs = [await start_child(supervisor, n, n % crash_every == 0) for n in range(1, jobs + 1)]
        print(f"started {len(refs)} jobs")

        kinds = [(await ref.join()).kind for ref in refs]
        finished = kinds.count(ExitKind.NORMAL)
        crashed = kinds.count(ExitKind.CRASHED)
        print(f"{finished} finished normally, {crashed} crashed")

        # Every job has exited, and each exit notice is read before these asks, so none is still counted.
        counts = await count_children(supervisor)
        stats = await supervisor_statistics(supervisor)
        print(f"supervisor: {stats.crashes} crashes, {stats.restarts} restarts, {counts.specs} children left")
    return JobsReport(
        started=len(refs),
        finished=finished,
        crashed=crashed,
        supervisor_crashes=stats.crashes,
        supervisor_restarts=stats.restarts,
        children_left=counts.specs,
    )


if __name__ == "__main__":
    # Every crash here is on purpose: keep the kernel's crash logs (a traceback each) off the console.
    logging.getLogger("actorproxy").setLevel(logging.CRITICAL)
    trio.run(main)
