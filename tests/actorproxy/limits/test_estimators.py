"""Pingora's estimators, ported: `Estimator` (count-min sketch), `Rate` (windows) and `Inflight` (guards)."""

from __future__ import annotations

import gc
import random

import pytest

from actorproxy.limits import PROPORTIONAL_RATE_ESTIMATE_CALC_FN, Estimator, Inflight, Rate, RateComponents


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_estimator_counts_up_and_down_per_key() -> None:
    est = Estimator(8, 8)
    assert (est.incr("a", 1), est.incr("b", 1), est.incr("a", 2), est.incr("b", 2)) == (1, 1, 3, 3)
    est.decr("a", 1)
    assert (est.get("a"), est.get("b")) == (2, 3)
    est.reset()
    assert (est.get("a"), est.get("b")) == (0, 0)


def test_the_estimator_rows_are_independent() -> None:
    # Two keys share a counter in one row of 8 slots one time in 8, in all 8 rows once in 16 million.
    random.seed(3)  # the rows' multipliers; int keys hash the same in every process
    shared_one, shared_all = 0, 0
    for pair in range(4000):
        est = Estimator(8, 8)
        rows = list(zip(est.indexes(2 * pair), est.indexes(2 * pair + 1), strict=True))
        shared_one += rows[0][0] == rows[0][1]
        shared_all += all(a == b for a, b in rows)
    assert 350 < shared_one < 650 and shared_all == 0


def test_the_estimator_never_counts_below_the_truth_and_keeps_its_size() -> None:
    est = Estimator(4, 64)
    truth: dict[int, int] = {}
    rng = random.Random(7)
    for _ in range(5000):
        key = rng.randrange(2000)  # far more keys than counters
        truth[key] = truth.get(key, 0) + 1
        est.incr(key)
    assert all(est.get(key) >= count for key, count in truth.items())
    assert [len(row) for row in est._rows] == [64] * 4


def test_rate_observes_the_current_window_and_reports_the_last() -> None:
    clock = Clock()
    rate = Rate(1.0, clock=clock)
    assert (rate.observe("k", 3), rate.observe("k", 2)) == (3, 5)
    assert rate.rate("k") == 0.0  # no window is complete yet
    clock.now += 1.0
    assert rate.observe("k", 4) == 4
    assert rate.rate("k") == 5.0
    clock.now += 1.0
    assert rate.rate("k") == 4.0
    clock.now += 1.0
    assert rate.rate("k") == 0.0  # nothing in the last two seconds


def test_rate_with_a_custom_function_sees_both_windows() -> None:
    clock = Clock()
    rate = Rate(1.0, clock=clock)

    def ninety_ten(c: RateComponents) -> float:
        return (c.prev_samples * 0.1 + c.curr_samples * 0.9) / c.interval

    rate.observe("k", 5)
    assert rate.rate_with("k", ninety_ten) == pytest.approx(4.5)
    clock.now += 1.0
    rate.observe("k", 4)
    assert rate.rate_with("k", ninety_ten) == pytest.approx(0.5 + 3.6)
    clock.now += 1.0
    assert rate.rate_with("k", ninety_ten) == pytest.approx(0.4)
    clock.now += 1.0
    assert rate.rate_with("k", ninety_ten) == 0.0


def test_the_proportional_rate_weights_the_last_window_by_what_is_left_of_it() -> None:
    clock = Clock()
    rate = Rate(1.0, clock=clock)
    rate.observe("k", 5)
    clock.now += 1.0
    rate.observe("k", 4)
    clock.now += 0.75
    assert rate.rate_with("k", PROPORTIONAL_RATE_ESTIMATE_CALC_FN) == pytest.approx(5 * 0.25 + 4)


def test_a_rate_needs_a_positive_window() -> None:
    with pytest.raises(ValueError, match="positive"):
        Rate(0)


def test_inflight_guards_count_until_released() -> None:
    inflight = Inflight()
    g1 = inflight.incr("a", 1)
    assert g1.count == 1
    g2 = inflight.incr("a", 2)
    assert g2.count == 3
    g1.release()
    g1.release()  # a second release changes nothing
    assert g2.get() == 2
    with g2:
        pass
    assert inflight.incr("a").count == 1  # the guard just made is the only one


def test_a_guard_is_released_by_its_with_block_whatever_way_it_ends() -> None:
    inflight = Inflight()
    with pytest.raises(RuntimeError), inflight.incr("a") as guard:
        assert guard.get() == 1
        raise RuntimeError
    assert inflight.get("a") == 0


def test_a_forgotten_guard_is_released_when_collected() -> None:
    inflight = Inflight()
    inflight.incr("a")  # dropped at once, as a Rust guard would be
    gc.collect()
    assert inflight.get("a") == 0
