"""`LoadBalancer` and its actor: select reads the published snapshot; the actor owns discovery and health.

All on the autojump clock with a fake health check whose verdicts the test controls.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel

from actorproxy.lb import (
    Backend,
    Backends,
    Consistent,
    FNVHash,
    LoadBalancer,
    LoadBalancerActor,
    Random,
    RoundRobin,
    RunHealthCheck,
    SelectBackend,
    SetEnable,
    Static,
    UpdateBackends,
    Weighted,
)
from actorproxy.lb import LoadBalancer as PublicLoadBalancer
from actorproxy.server import background_service
from actors import ActorRef, ActorSystem
from supervisors import Supervisor, which_children

ADDRS = ["127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"]
B0, B1, B2 = (Backend(addr) for addr in ADDRS)


@attrs.define
class FakeCheck:
    """Fails the backends in `down`; with `gate` set, every probe waits for it first."""

    down: set[Backend] = attrs.Factory(set)
    consecutive_success: int = 1
    consecutive_failure: int = 1
    health_changed: Any = None
    gate: trio.Event | None = None
    probes: int = 0

    async def check(self, backend: Backend) -> None:
        self.probes += 1
        if self.gate is not None:
            await self.gate.wait()
        await trio.lowlevel.checkpoint()
        if backend in self.down:
            raise ConnectionRefusedError(f"{backend} is down")


def picks(lb: LoadBalancer, n: int = 60, key: bytes = b"") -> Counter[Backend | None]:
    return Counter(lb.select(key, 256) for _ in range(n))


async def start(system: ActorSystem, lb: LoadBalancer) -> ActorRef:
    return await system.spawn(LoadBalancerActor(lb), name="lb")


def test_public_names() -> None:
    assert PublicLoadBalancer is LoadBalancer


@pytest.mark.parametrize("selection", [RoundRobin, Random, FNVHash, Consistent])
def test_try_from_iter_is_ready_at_once(selection: Any) -> None:
    lb = LoadBalancer.try_from_iter(ADDRS, selection=selection)
    assert lb.backends().get_backend() == {B0, B1, B2}
    assert lb.ready_backends() == {B0, B1, B2}
    assert lb.select(b"key", 256) in {B0, B1, B2}


def test_selection_factory_and_bad_selection() -> None:
    lb = LoadBalancer.try_from_iter(ADDRS, selection=lambda backends: Weighted(backends, RoundRobin()))
    assert set(picks(lb, 3)) == {B0, B1, B2}
    with pytest.raises(TypeError, match="selection"):
        LoadBalancer.try_from_iter(ADDRS, selection=42)
    with pytest.raises(ValueError, match=r"backends\[1\]"):
        LoadBalancer.try_from_iter(["127.0.0.1:1", "nonsense"])


async def test_select_never_returns_a_disabled_or_unhealthy_backend() -> None:
    lb = LoadBalancer.try_from_iter(ADDRS)
    lb.set_health_check(FakeCheck(down={B1}))
    assert await lb.run_health_check() == {B1: False}
    assert lb.set_enable(B2, False)
    assert not lb.set_enable(B2, False)
    assert picks(lb) == {B0: 60}
    # select_with decides alone, as Pingora's: it is told readiness and may ignore it.
    seen: list[tuple[Backend, bool]] = []

    def accept(backend: Backend, ready: bool) -> bool:
        seen.append((backend, ready))
        return backend == B1

    assert lb.select_with(b"", 256, accept) == B1
    assert (B1, False) in seen
    assert lb.set_enable(B0, False)
    assert lb.select(b"", 256) is None


async def test_health_flips_land_in_the_snapshot_after_the_next_interval(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    check = FakeCheck(consecutive_failure=2, consecutive_success=2)
    lb = LoadBalancer.try_from_iter(ADDRS)
    lb.set_health_check(check)
    lb.health_check_frequency = 1.0
    await start(actor_system, lb)  # t=0: first round, all healthy
    assert check.probes == 3
    check.down.add(B1)
    await trio.sleep(1.5)  # round at t=1: one failure, below the threshold
    assert lb.ready(B1)
    first = lb.snapshot
    await trio.sleep(1.0)  # round at t=2: the second failure flips it
    assert not lb.ready(B1)
    assert lb.snapshot is not first and lb.snapshot.version > first.version
    assert lb.snapshot.selector is first.selector  # a health flip does not rebuild the selector
    assert B1 not in picks(lb)
    check.down.clear()
    await trio.sleep(1.0)  # t=3: one success
    assert not lb.ready(B1)
    await trio.sleep(1.0)  # t=4: the second one
    assert lb.ready(B1)
    assert set(picks(lb)) == {B0, B1, B2}


async def test_update_keeps_the_health_of_kept_backends(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    b3 = Backend("127.0.0.1:9004")
    discovery = Static([B0, B1, B2])
    lb = LoadBalancer.from_backends(discovery)
    assert lb.backends().get_backend() == frozenset() and lb.select(b"", 256) is None
    check = FakeCheck(down={B1})
    lb.set_health_check(check)  # health_check_frequency None: one round at start only
    ref = await start(actor_system, lb)
    assert lb.ready_backends() == {B0, B2}
    discovery.set([B1, B2, b3])
    check.down.clear()  # no round runs: what is kept must come from the table
    before = lb.snapshot
    assert await ref.ask(UpdateBackends()) is True
    assert lb.backends().get_backend() == {B1, B2, b3}
    assert lb.ready_backends() == {B2, b3}
    assert lb.snapshot.selector is not before.selector
    assert await ref.ask(UpdateBackends()) is False
    assert await ref.ask(RunHealthCheck()) == {B1: True}
    assert lb.ready_backends() == {B1, B2, b3}


async def test_periodic_discovery_and_set_enable_messages(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    discovery = Static([B0])
    lb = LoadBalancer.from_backends(discovery)
    lb.update_frequency = 1.0
    ref = await start(actor_system, lb)
    assert lb.backends().get_backend() == {B0}
    discovery.add(B1)
    await trio.sleep(1.5)
    assert lb.backends().get_backend() == {B0, B1}
    assert await ref.ask(SetEnable(B0, False)) is True
    assert await ref.ask(SelectBackend(b"", 256)) == B1
    assert picks(lb) == {B1: 60}


async def test_from_backends_takes_a_table() -> None:
    table = Backends([B0, B1])
    table.set_enable(B0, False)
    lb = LoadBalancer.from_backends(table)
    assert lb.backends().get_backend() == {B0, B1}
    assert picks(lb, 5) == {B1: 5}
    assert await lb.update() is False


class FailingDiscovery:
    def __init__(self) -> None:
        self.fail = False

    async def discover(self) -> tuple[frozenset[Backend], dict[Backend, bool]]:
        if self.fail:
            raise ValueError("discovery is broken")
        return frozenset({B0}), {}


async def test_failed_discovery_fails_only_the_first_start(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    discovery = FailingDiscovery()
    discovery.fail = True
    lb = LoadBalancer.from_backends(discovery)
    with pytest.raises(Exception, match="discovery is broken"):
        await start(actor_system, lb)
    discovery.fail = False
    ref = await actor_system.spawn(LoadBalancerActor(lb), name="lb-2")
    discovery.fail = True
    assert await ref.ask(UpdateBackends()) is False  # logged; the last set is kept
    assert lb.backends().get_backend() == {B0}


async def test_a_restarted_actor_leaves_select_on_the_last_snapshot(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    check = FakeCheck(down={B1})
    lb = LoadBalancer.try_from_iter(ADDRS)
    lb.set_health_check(check)
    lb.health_check_frequency = 1.0
    bg = background_service("lb", lb)
    assert bg.task() is lb
    sup = await actor_system.spawn(Supervisor([bg.actor_spec()], intensity=5))
    [child] = await which_children(sup)
    assert child.ref is not None
    snapshot = lb.snapshot
    assert snapshot.ready == {B0, B2}
    # The next incarnation's start blocks in its health round: requests must not notice.
    check.gate = trio.Event()
    await child.ref.tell("not a message the actor handles")  # a crash
    await trio.sleep(5)
    assert lb.snapshot is snapshot
    assert set(picks(lb)) == {B0, B2}
    check.gate.set()
    await trio.sleep(0.5)
    [child2] = await which_children(sup)
    assert child2.ref is not None and child2.ref != child.ref
    assert await child2.ref.ask(SelectBackend(b"", 256)) in {B0, B2}
    check.down = {B0}
    await trio.sleep(1.0)  # the restarted actor's timers run rounds again
    assert lb.ready_backends() == {B1, B2}


async def test_a_crash_inside_a_round_keeps_table_and_tracker_agreed(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    def boom(backend: Backend, healthy: bool) -> None:
        raise RuntimeError("health_changed failed")

    lb = LoadBalancer.try_from_iter(ADDRS)
    lb.set_health_check(FakeCheck(down={B2}, health_changed=boom))
    with pytest.raises(RuntimeError):
        await lb.run_health_check()
    assert lb.ready_backends() == {B0, B1}
