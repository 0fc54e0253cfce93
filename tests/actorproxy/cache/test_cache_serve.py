"""Answering from a stored response: Age, HEAD from a stored GET, and single byte ranges from the whole
stored body (RFC 9110 §14; several ranges are answered 200 whole)."""

from __future__ import annotations

import pytest
from heads import NOW, date, request, stored

from actorproxy.cache import plan_range, serve

SIZE = 1000


@pytest.mark.parametrize(
    ("value", "status", "start", "end"),
    [
        ("bytes=0-99", 206, 0, 100),
        ("bytes=100-", 206, 100, SIZE),
        ("bytes=-100", 206, 900, SIZE),
        ("bytes=-5000", 206, 0, SIZE),  # a suffix longer than the body is the whole body
        ("bytes=900-5000", 206, 900, SIZE),  # a last position past the end is the end
        ("BYTES=0-0", 206, 0, 1),  # the unit is case-insensitive
        ("bytes=1000-", 416, 0, 0),  # first position at the end: unsatisfiable (§14.1.1)
        ("bytes=-0", 416, 0, 0),
        ("bytes=0-1,5-6", 200, 0, SIZE),  # several ranges: the whole body (our choice)
        ("bytes=0-1,2000-", 200, 0, SIZE),
        ("bytes=5-1", 200, 0, SIZE),  # invalid: ignored (§14.2)
        ("bytes=x-1", 200, 0, SIZE),
        ("items=0-1", 200, 0, SIZE),  # an unknown unit is ignored
        ("bytes=", 200, 0, SIZE),
    ],
)
def test_range(value: str, status: int, start: int, end: int) -> None:
    plan = plan_range(request("GET", "/", ("Range", value)), stored(("ETag", '"v1"')), SIZE)
    assert (plan.status, plan.start, plan.end) == (status, start, end)


def test_an_empty_body_satisfies_no_range() -> None:
    assert plan_range(request("GET", "/", ("Range", "bytes=0-")), stored(), 0).status == 416


@pytest.mark.parametrize(
    ("if_range", "status"),
    [
        ('"v1"', 206),
        ('"v2"', 200),
        ('W/"v1"', 200),  # If-Range needs a strong match (RFC 9110 §13.1.5)
        (date(-100), 206),  # Last-Modified, a strong date (before Date by a second or more)
        (date(-99), 200),
    ],
)
def test_if_range(if_range: str, status: int) -> None:
    entry = stored(("ETag", '"v1"'), ("Last-Modified", date(-100)))
    plan = plan_range(request("GET", "/", ("Range", "bytes=0-9"), ("If-Range", if_range)), entry, SIZE)
    assert plan.status == status


def test_a_range_applies_to_a_stored_200_only() -> None:
    assert plan_range(request("GET", "/", ("Range", "bytes=0-9")), stored(status=404), SIZE).status == 200


def test_a_hit_carries_age_and_the_stored_length() -> None:
    entry = stored(("Cache-Control", "max-age=60"), ("Content-Length", "999"), request_time=NOW - 1)
    served = serve(request(), entry, SIZE, NOW + 10)
    assert served.header.status == 200
    assert served.header.headers.get("age") == "11"
    assert served.header.headers.get_all("content-length") == [str(SIZE)]
    assert served.body == (0, SIZE)


def test_a_partial_hit() -> None:
    served = serve(request("GET", "/", ("Range", "bytes=10-19")), stored(), SIZE, NOW)
    assert served.header.status == 206
    assert served.header.headers.get("content-range") == "bytes 10-19/1000"
    assert served.header.headers.get("content-length") == "10"
    assert served.body == (10, 20)


def test_an_unsatisfiable_range() -> None:
    served = serve(request("GET", "/", ("Range", "bytes=5000-")), stored(), SIZE, NOW)
    assert (served.header.status, served.body) == (416, None)
    assert served.header.headers.get("content-range") == "bytes */1000"


def test_head_gets_the_get_head_without_a_body() -> None:  # RFC 9110 §9.3.2
    served = serve(request("HEAD"), stored(("Content-Type", "text/plain")), SIZE, NOW)
    assert (served.header.status, served.body) == (200, None)
    assert served.header.headers.get("content-length") == str(SIZE)


def test_a_stored_204_has_no_length_and_no_body() -> None:
    served = serve(request(), stored(status=204), 0, NOW)
    assert served.body is None and "content-length" not in served.header.headers
