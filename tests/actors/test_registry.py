"""Named actors: unique names, released on exit, re-registered by a restart."""

from __future__ import annotations

import pytest
from helpers import Log, Worker

from actors import ActorSystem, NameTaken
from actors.testing import TestProbe
from supervisors import ChildRestarted, ChildSpec, Supervisor, which_children


async def test_duplicate_name_fails_and_a_released_name_can_be_reused(
    actor_system: ActorSystem, log: Log
) -> None:
    first = await actor_system.spawn(lambda: Worker("a", log), name="svc")
    with pytest.raises(NameTaken):
        await actor_system.spawn(lambda: Worker("b", log), name="svc")
    assert log.count("start", "b") == 0  # refused before anything started
    assert actor_system.whereis("svc") is first
    await first.stop()
    assert actor_system.whereis("svc") is None
    second = await actor_system.spawn(lambda: Worker("c", log), name="svc")
    assert actor_system.whereis("svc") is second


async def test_crashed_named_child_frees_its_name_before_the_restart_claims_it(
    actor_system: ActorSystem, log: Log, probe: TestProbe
) -> None:
    # Each incarnation finds the name already pointing at itself: the old holder released it before the
    # restart claimed it (a claim on a held name raises NameTaken, which would fail the restart).
    owns_name: list[bool] = []

    class Spy(Worker):
        async def on_start(self) -> None:
            owns_name.append(self.system.whereis("lb") is self.ref)
            await super().on_start()

    actor_system.events.subscribe(probe.ref, ChildRestarted)
    sup = await actor_system.spawn(Supervisor([ChildSpec(id="lb", name="lb", start=lambda: Spy("lb", log))]))
    old = actor_system.whereis("lb")
    assert old is not None
    await old.tell("crash")
    restarted: ChildRestarted = await probe.expect(ChildRestarted)
    assert owns_name == [True, True]
    assert actor_system.whereis("lb") is restarted.ref is not old
    [child] = await which_children(sup)
    assert child.ref is restarted.ref
