"""GCRA: bursts, refill at the rate, what a refusal says, stale state, and the quota's spelling."""

from __future__ import annotations

import pytest

from actorproxy.limits import Quota, gcra

NOW = 5000.0


def run(quota: Quota, times: list[float]) -> list[bool]:
    """Admissions of one key for requests at `times`."""
    tat = None
    admitted = []
    for now in times:
        new_tat, decision = gcra(quota, tat, now)
        if new_tat is not None:
            tat = new_tat
        admitted.append(decision.allowed)
    return admitted


def test_a_fresh_key_gets_its_burst_at_once_then_one_request_per_interval() -> None:
    quota = Quota.parse("2/s", burst=3)  # one every 0.5 s
    assert run(quota, [NOW] * 4) == [True, True, True, False]
    assert run(quota, [NOW, NOW, NOW, NOW + 0.5, NOW + 0.5, NOW + 1.0]) == [True] * 4 + [False, True]


def test_the_decision_says_what_is_left_and_when_to_come_back() -> None:
    quota = Quota.parse("10/s", burst=2)
    tat, first = gcra(quota, None, NOW)
    assert (first.allowed, first.limit, first.remaining) == (True, 2, 1)
    tat, second = gcra(quota, tat, NOW)
    assert (second.remaining, second.reset_after) == (0, pytest.approx(0.2))
    unchanged, refused = gcra(quota, tat, NOW)
    assert unchanged is None  # a refusal does not push the key's recovery out
    assert (refused.allowed, refused.remaining) == (False, 0)
    assert refused.retry_after == pytest.approx(0.1)


def test_a_steady_client_at_the_rate_is_never_refused() -> None:
    quota = Quota.parse("100/min", burst=1)
    assert all(run(quota, [NOW + 0.6 * n for n in range(50)]))


def test_a_timestamp_from_another_clock_is_no_state() -> None:
    quota = Quota.parse("1/min", burst=1)
    _, decision = gcra(quota, NOW + 10 * 86400, NOW)  # written before a reboot, say
    assert decision.allowed


@pytest.mark.parametrize(
    ("rate", "burst", "expected"),
    [("100/s", None, (100, 1.0, 100)), ("6000/min", 50, (6000, 60.0, 50)), ("3 / hour", 1, (3, 3600.0, 1))],
)
def test_quotas_parse_from_the_files_spelling(
    rate: str, burst: int | None, expected: tuple[int, float, int]
) -> None:
    quota = Quota.parse(rate, burst)
    assert (quota.count, quota.period, quota.burst) == expected


@pytest.mark.parametrize("rate", ["100", "100/fortnight", "0/s", "-1/s", "1.5/s", ""])
def test_a_rate_that_does_not_parse_says_the_form(rate: str) -> None:
    with pytest.raises(ValueError, match="count"):
        Quota.parse(rate)
