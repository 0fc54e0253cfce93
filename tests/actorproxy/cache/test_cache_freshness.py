"""Freshness lifetime (RFC 9111 §4.2.1, §4.2.2) and age (§4.2.3, §5.1)."""

from __future__ import annotations

import attrs
import pytest
from heads import NOW, date, stored

from actorproxy.cache import CachePolicy, StoredResponse, age_header, current_age, freshness_lifetime


@pytest.mark.parametrize(
    ("headers", "status", "lifetime"),
    [
        ([("Cache-Control", "max-age=60")], 200, 60),
        ([("Cache-Control", "max-age=60, s-maxage=10")], 200, 10),  # shared cache: s-maxage first
        ([("Cache-Control", "max-age=60"), ("Expires", date(3600))], 200, 60),  # max-age over Expires
        ([("Expires", date(120))], 200, 120),  # Expires - Date
        ([("Expires", date(-10))], 200, 0),
        ([("Expires", "0")], 200, 0),  # §5.3: invalid means in the past
        ([("Expires", date(60)), ("Expires", date(90))], 200, 0),  # §4.2.1: conflicting: stale
        ([("Last-Modified", date(-1000))], 200, 100),  # §4.2.2: 10% of the time since Last-Modified
        ([("Last-Modified", date(-1000))], 302, 0),  # not heuristically cacheable
        ([("Last-Modified", date(-1000)), ("Cache-Control", "public")], 302, 100),
        ([("Last-Modified", date(-10_000_000))], 200, 86400),  # capped at a day
        ([("Last-Modified", date(100))], 200, 0),  # in the future: no heuristic
        ([], 200, 0),
    ],
)
def test_freshness_lifetime(headers: list[tuple[str, str]], status: int, lifetime: float) -> None:
    assert freshness_lifetime(stored(*headers, status=status)) == lifetime


def test_the_heuristic_follows_the_policy() -> None:
    policy = CachePolicy(heuristic_fraction=0.5, max_heuristic_lifetime=300)
    assert freshness_lifetime(stored(("Last-Modified", date(-100))), policy) == 50
    assert freshness_lifetime(stored(("Last-Modified", date(-1000))), policy) == 300


def test_a_lifetime_the_cache_decided_replaces_the_responses() -> None:
    decided = attrs.evolve(stored(("Cache-Control", "max-age=60")), lifetime=5.0)
    assert freshness_lifetime(decided) == 5
    assert StoredResponse.from_bytes(decided.to_bytes()) == decided


def test_expires_is_measured_from_date_not_from_receipt() -> None:
    # The origin's clock is 100 s behind: Date says NOW-100, Expires NOW-40: 60 s of life.
    response = stored(("Date", date(-100)), ("Expires", date(-40)))
    assert freshness_lifetime(response) == 60


@pytest.mark.parametrize(
    ("headers", "request_time", "now", "age"),
    [
        ([], NOW, NOW, 0),
        ([], NOW, NOW + 30, 30),  # resident time
        ([("Age", "50")], NOW, NOW + 30, 80),  # Age field counts
        ([("Age", "50")], NOW - 2, NOW, 52),  # corrected by the response delay
        ([("Date", date(-20))], NOW, NOW, 20),  # apparent age from Date
        ([("Date", date(-20)), ("Age", "5")], NOW, NOW, 20),  # the larger of the two
        ([("Date", date(+20))], NOW, NOW, 0),  # a Date in the future: no negative age
        ([("Age", "junk")], NOW, NOW + 1, 1),
    ],
)
def test_current_age(headers: list[tuple[str, str]], request_time: float, now: float, age: float) -> None:
    assert current_age(stored(*headers, request_time=request_time), now) == age


def test_a_response_without_date_is_dated_when_received() -> None:
    assert current_age(stored(dated=False), NOW + 7) == 7


@pytest.mark.parametrize(("age", "text"), [(0.0, "0"), (12.9, "12"), (-3.0, "0"), (1e12, "2147483648")])
def test_the_age_header(age: float, text: str) -> None:  # §5.1
    assert age_header(age) == text
