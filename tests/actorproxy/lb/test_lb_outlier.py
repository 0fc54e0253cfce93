"""Passive health: outcomes of real requests eject failing backends; time or an active check brings them back.

`OutlierTracker` is pure (times are passed in); the `Backends` / `LoadBalancer` / actor tests run on the
autojump clock.
"""

from __future__ import annotations

import random
from collections import Counter
from typing import Any

import attrs
import pytest
import trio
import trio.lowlevel
import trio.testing

from actorproxy.lb import (
    Backend,
    Backends,
    LeastConnections,
    LoadBalancer,
    LoadBalancerActor,
    Outcome,
    OutlierDetection,
    OutlierTracker,
    PowerOfTwoChoices,
    Static,
)
from actors import ActorSystem

B = [Backend(f"127.0.0.1:{9001 + i}") for i in range(10)]
FAIL = Outcome.CONNECT_FAILURE


def tracker(**kwargs: Any) -> OutlierTracker:
    return OutlierTracker(OutlierDetection(**kwargs))


# -- the pure tracker ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 3, 5])
def test_ejects_after_exactly_n_failures_in_a_row(n: int) -> None:
    t = tracker(consecutive_failures=n)
    for _ in range(n - 1):
        assert not t.record(B[0], FAIL, 0.0, 10)
    assert t.record(B[0], FAIL, 0.0, 10)
    assert t.ejected() == {B[0]}


def test_a_success_starts_the_streak_over() -> None:
    t = tracker(consecutive_failures=3)
    t.record(B[0], FAIL, 0.0, 10)
    t.record(B[0], Outcome.FAILURE, 0.0, 10)
    t.record(B[0], Outcome.SUCCESS, 0.0, 10)
    t.record(B[0], FAIL, 0.0, 10)
    assert not t.record(B[0], FAIL, 0.0, 10)
    assert t.record(B[0], FAIL, 0.0, 10)


def test_abandoned_attempts_say_nothing() -> None:
    t = tracker(consecutive_failures=2)
    t.record(B[0], FAIL, 0.0, 10)
    t.record(B[0], Outcome.ABANDONED, 0.0, 10)  # neither resets nor counts
    assert t.record(B[0], FAIL, 0.0, 10)


@pytest.mark.parametrize(("count_5xx", "ejected"), [(True, True), (False, False)])
def test_server_errors_count_when_configured(count_5xx: bool, ejected: bool) -> None:
    t = tracker(consecutive_failures=2, count_server_errors=count_5xx)
    t.record(B[0], Outcome.SERVER_ERROR, 0.0, 10)
    assert t.record(B[0], Outcome.SERVER_ERROR, 0.0, 10) is ejected


def test_cool_down_grows_with_each_ejection_up_to_the_cap() -> None:
    t = tracker(consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=25.0)
    now = 0.0
    for expected in (10.0, 20.0, 25.0, 25.0):
        assert t.record(B[0], FAIL, now, 10)
        assert t.next_return() == now + expected
        assert t.sweep(now + expected - 0.001) == []
        now += expected
        assert t.sweep(now) == [B[0]]
        assert t.ejected() == frozenset()


def test_the_count_shrinks_while_the_backend_behaves() -> None:
    t = tracker(consecutive_failures=1, base_ejection_time=10.0, max_ejection_time=100.0)
    for now in (0.0, 10.0):  # ejected twice in a row: 10 s, then 20 s
        t.record(B[0], FAIL, now, 10)
        t.sweep(now + 10.0 * t.ejections(B[0]))
    assert t.ejections(B[0]) == 2
    back = 30.0
    t.sweep(back + 9.0)
    assert t.ejections(B[0]) == 2
    t.sweep(back + 10.0)
    assert t.ejections(B[0]) == 1
    t.sweep(back + 20.0)
    assert t.ejections(B[0]) == 0
    t.record(B[0], FAIL, back + 21.0, 10)
    assert t.next_return() == back + 31.0  # back to the base time


@pytest.mark.parametrize(
    ("size", "percent", "cap"),
    [(1, 100, 0), (2, 10, 1), (2, 100, 1), (3, 10, 1), (3, 50, 1), (10, 10, 1), (10, 50, 5), (10, 100, 9)],
)
def test_never_more_than_the_allowed_fraction_and_never_all(size: int, percent: float, cap: int) -> None:
    t = tracker(consecutive_failures=1, max_ejection_percent=percent)
    for backend in B[:size]:
        t.record(backend, FAIL, 0.0, size)
    assert len(t.ejected()) == cap


def test_a_capped_backend_is_ejected_on_its_next_failure_once_there_is_room() -> None:
    t = tracker(consecutive_failures=2, base_ejection_time=5.0)
    t.record(B[0], FAIL, 0.0, 2)
    t.record(B[0], FAIL, 0.0, 2)
    t.record(B[1], FAIL, 0.0, 2)
    assert not t.record(B[1], FAIL, 0.0, 2)  # one of two is out already
    t.sweep(5.0)
    assert t.record(B[1], FAIL, 5.0, 2)  # the streak went on


def test_uneject_and_retain() -> None:
    t = tracker(consecutive_failures=1)
    t.record(B[0], FAIL, 0.0, 10)
    assert t.uneject(B[0], 1.0)
    assert not t.uneject(B[0], 1.0)
    t.record(B[1], FAIL, 0.0, 10)
    t.retain([B[0]])
    assert t.ejected() == frozenset()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"consecutive_failures": 0}, "consecutive_failures: must be an int >= 1"),
        ({"base_ejection_time": 0}, "base_ejection_time: must be > 0"),
        ({"max_ejection_percent": 101}, "max_ejection_percent: must be between 0 and 100"),
        ({"base_ejection_time": 10, "max_ejection_time": 5}, "max_ejection_time: must be >= base_ejection"),
    ],
)
def test_bad_settings_name_the_field(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        OutlierDetection(**kwargs)


# -- the table and the load balancer ------------------------------------------------------------------------

PASSIVE = OutlierDetection(consecutive_failures=3, base_ejection_time=10.0, max_ejection_percent=50)


def balancer(n: int = 3, **kwargs: Any) -> LoadBalancer:
    lb = LoadBalancer(Backends(B[:n]), **kwargs)
    lb.set_outlier_detection(PASSIVE)
    return lb


def picks(lb: LoadBalancer, n: int = 60) -> Counter[Backend | None]:
    return Counter(lb.select(b"", 256) for _ in range(n))


def fail(lb: LoadBalancer, backend: Backend, times: int, outcome: Outcome = FAIL) -> None:
    for _ in range(times):
        lb.begin(backend)
        lb.finish(backend, outcome)


async def test_an_ejected_backend_is_never_selected_until_its_time_is_up(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lb = balancer()
    fail(lb, B[1], 2)
    assert lb.ready(B[1])
    fail(lb, B[1], 1)
    assert not lb.ready(B[1]) and lb.backends().ejected() == {B[1]}
    assert set(picks(lb)) == {B[0], B[2]}
    await trio.sleep(9.9)
    assert lb.sweep_ejections() == []
    await trio.sleep(0.1)
    assert lb.sweep_ejections() == [B[1]]
    assert set(picks(lb)) == {B[0], B[1], B[2]}


async def test_the_request_path_brings_a_backend_back_without_a_sweep(
    autojump_clock: trio.testing.MockClock,
) -> None:
    lb = balancer()
    fail(lb, B[1], 3)
    await trio.sleep(10.0)
    assert not lb.ready(B[1])
    fail(lb, B[0], 1, Outcome.SUCCESS)  # any report past the return time sweeps
    assert lb.ready(B[1])


async def test_a_passing_active_check_brings_an_ejected_backend_back(
    autojump_clock: trio.testing.MockClock,
) -> None:
    @attrs.define
    class Passing:
        consecutive_success: int = 1
        consecutive_failure: int = 1
        health_changed: Any = None

        async def check(self, backend: Backend) -> None:
            await trio.lowlevel.checkpoint()

    lb = balancer()
    lb.set_health_check(Passing())
    fail(lb, B[2], 3)
    assert not lb.ready(B[2])
    await lb.run_health_check()
    assert lb.ready(B[2])


async def test_turning_passive_health_off_ends_every_ejection() -> None:
    lb = balancer()
    fail(lb, B[0], 3)
    assert not lb.ready(B[0])
    lb.set_outlier_detection(None)
    assert lb.ready(B[0])
    fail(lb, B[0], 10)  # without outlier detection, outcomes change nothing
    assert lb.ready(B[0])


async def test_outcomes_for_backends_discovery_removed_are_ignored() -> None:
    lb = balancer()
    fail(lb, B[7], 5)
    assert lb.backends().ejected() == frozenset()


async def test_a_restarted_actor_sweeps_on_its_interval(
    actor_system: ActorSystem, autojump_clock: trio.testing.MockClock
) -> None:
    lb = balancer()
    await actor_system.spawn(LoadBalancerActor(lb), name="lb")
    fail(lb, B[0], 3)
    assert not lb.ready(B[0])
    await trio.sleep(10.5)  # the actor sweeps every second: back within one interval of its return
    assert lb.ready(B[0])


# -- in-flight counts ---------------------------------------------------------------------------------------


def test_inflight_counts_follow_begin_and_finish() -> None:
    lb = LoadBalancer(Backends(B[:2]))
    lb.begin(B[0])
    lb.begin(B[0])
    lb.begin(B[1])
    assert lb.inflight == {B[0]: 2, B[1]: 1}
    lb.finish(B[0], Outcome.SUCCESS)
    lb.finish(B[1], Outcome.ABANDONED)
    assert lb.inflight == {B[0]: 1}


async def test_least_connections_prefers_the_idle_backend_and_keeps_counts_across_updates() -> None:
    discovery = Static(B[:3])
    lb = LoadBalancer(discovery, selection=LeastConnections)
    await lb.update()
    for _ in range(3):
        lb.begin(lb.select(b"", 256) or B[9])
    assert lb.inflight == {B[0]: 1, B[1]: 1, B[2]: 1}
    lb.finish(B[1], Outcome.SUCCESS)
    assert lb.select(b"", 256) == B[1]
    lb.begin(B[1])
    discovery.add(B[3])
    assert await lb.update()  # a new selector, the same counts
    assert lb.select(b"", 256) == B[3]
    lb.begin(B[3])
    lb.finish(B[2], Outcome.SUCCESS)
    assert lb.select(b"", 256) == B[2]


def test_power_of_two_choices_reads_the_balancers_counts() -> None:
    lb = LoadBalancer.from_backends_with_config(
        Backends(B[:2]), {"rng": random.Random(7)}, selection=PowerOfTwoChoices
    )
    lb.begin(B[0])
    assert picks(lb, 20) == Counter({B[1]: 20})


async def test_a_check_that_started_before_the_ejection_does_not_end_it(
    autojump_clock: trio.testing.MockClock,
) -> None:
    gate = trio.Event()

    @attrs.define
    class Slow:
        consecutive_success: int = 1
        consecutive_failure: int = 1
        health_changed: Any = None

        async def check(self, backend: Backend) -> None:
            await gate.wait()  # the probe connected before the backend died; its verdict comes late

    lb = balancer()
    lb.set_health_check(Slow())
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lb.run_health_check)
        await trio.sleep(1.0)
        fail(lb, B[2], 3)
        assert not lb.ready(B[2])
        gate.set()
    assert not lb.ready(B[2])
    await lb.run_health_check()  # a round that starts after the ejection may end it
    assert lb.ready(B[2])
