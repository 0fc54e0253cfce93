"""Health bookkeeping: flips after exactly N consecutive verdicts, callbacks on flips, run_checks rounds."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

from actorproxy.lb import Backend, HealthTracker, HttpHealthCheck, TcpHealthCheck, run_checks

A = Backend("10.0.0.1:80")
B = Backend("10.0.0.2:80")
C = Backend("10.0.0.3:80")


def _record_all(tracker: HealthTracker, verdicts: list[bool]) -> list[bool | None]:
    return [tracker.record(A, ok) for ok in verdicts]


@pytest.mark.parametrize("n", [1, 3])
def test_becomes_unhealthy_after_exactly_n_failures(n: int) -> None:
    tracker = HealthTracker(consecutive_failure=n, consecutive_success=5)
    assert tracker.healthy(A)
    results = _record_all(tracker, [False] * n)
    assert results == [None] * (n - 1) + [False]
    assert not tracker.healthy(A)
    # Further failures agree with the health: no more flips.
    assert tracker.record(A, False) is None


@pytest.mark.parametrize("n", [1, 3])
def test_becomes_healthy_after_exactly_n_successes(n: int) -> None:
    tracker = HealthTracker(consecutive_success=n, initially_healthy=False)
    assert not tracker.healthy(A)
    results = _record_all(tracker, [True] * n)
    assert results == [None] * (n - 1) + [True]
    assert tracker.healthy(A)


def test_interrupted_streak_starts_over() -> None:
    tracker = HealthTracker(consecutive_failure=3, consecutive_success=3)
    assert _record_all(tracker, [False, False, True, False, False]) == [None] * 5
    assert tracker.healthy(A)
    assert tracker.record(A, False) is False
    assert _record_all(tracker, [True, True, False, True, True]) == [None] * 5
    assert not tracker.healthy(A)
    assert tracker.record(A, True) is True


def test_backends_are_tracked_separately() -> None:
    tracker = HealthTracker(consecutive_failure=2)
    assert tracker.record(A, False) is None
    assert tracker.record(B, False) is None
    assert tracker.record(A, False) is False
    assert tracker.healthy(B)


def test_callback_on_flips_only() -> None:
    calls: list[tuple[Backend, bool]] = []
    tracker = HealthTracker(
        consecutive_failure=2, consecutive_success=2, health_changed=lambda b, ok: calls.append((b, ok))
    )
    for ok in [True, False, True, False, False, False, True, True, True]:
        tracker.record(A, ok)
    assert calls == [(A, False), (A, True)]


def test_forget_and_retain() -> None:
    tracker = HealthTracker(initially_healthy=True)
    for backend in (A, B, C):
        tracker.record(backend, False)
    tracker.forget([A])
    assert tracker.healthy(A)  # back to the initial health
    tracker.retain([B])
    assert tracker.healthy(C)
    assert not tracker.healthy(B)


def test_for_check_takes_thresholds_and_callback() -> None:
    calls: list[tuple[Backend, bool]] = []
    check = TcpHealthCheck(
        consecutive_failure=2, consecutive_success=3, health_changed=lambda *a: calls.append(a)
    )
    tracker = HealthTracker.for_check(check)
    assert (tracker.consecutive_success, tracker.consecutive_failure) == (3, 2)
    tracker.record(A, False)
    tracker.record(A, False)
    assert calls == [(A, False)]


@pytest.mark.parametrize("kwargs", [{"consecutive_success": 0}, {"consecutive_failure": -1}])
def test_thresholds_must_be_positive(kwargs: dict[str, int]) -> None:
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HealthTracker(**kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        TcpHealthCheck(**kwargs)
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        HttpHealthCheck("h", **kwargs)


@attrs.define
class ScriptedCheck:
    """Fails the backends in `down`; finishes in reverse order of `delays` so parallel order differs."""

    down: set[Backend]
    delays: dict[Backend, float]
    consecutive_success: int = 1
    consecutive_failure: int = 2
    health_changed: None = None
    running: int = 0
    max_running: int = 0

    async def check(self, backend: Backend) -> None:
        self.running += 1
        self.max_running = max(self.max_running, self.running)
        try:
            await trio.sleep(self.delays[backend])
        finally:
            self.running -= 1
        if backend in self.down:
            raise OSError(f"{backend} is down")


@pytest.mark.parametrize("parallel", [False, True])
async def test_run_checks_flips(parallel: bool, autojump_clock: trio.testing.MockClock) -> None:
    check = ScriptedCheck(down={A, C}, delays={A: 3.0, B: 2.0, C: 1.0})
    tracker = HealthTracker.for_check(check)
    assert await run_checks(check, [A, B, C], tracker, parallel=parallel) == {}
    start = trio.current_time()
    flips = await run_checks(check, [A, B, C], tracker, parallel=parallel)
    assert flips == {A: False, C: False}
    assert list(flips) == [A, C]
    assert trio.current_time() - start == (3.0 if parallel else 6.0)
    assert check.max_running == (3 if parallel else 1)
    check.down = set()
    assert await run_checks(check, [A, B, C], tracker, parallel=parallel) == {A: True, C: True}


async def test_run_checks_lets_cancellation_through(autojump_clock: trio.testing.MockClock) -> None:
    check = ScriptedCheck(down=set(), delays={A: 10.0})
    tracker = HealthTracker()
    with trio.move_on_after(1.0) as scope:
        await run_checks(check, [A], tracker, parallel=True)
    assert scope.cancelled_caught
    assert tracker.healthy(A)
