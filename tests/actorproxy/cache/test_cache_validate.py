"""Revalidation (RFC 9111 §4.3): the conditional request upstream, the 304 merged into the stored
response, and the client's own conditional request answered from the cache."""

from __future__ import annotations

import pytest
from heads import NOW, date, request, response, stored

from actorproxy.cache import (
    conditional_request,
    current_age,
    fill_request,
    freshen,
    freshness_lifetime,
    not_modified,
    serve,
)


def test_the_conditional_request_carries_the_stored_validators_instead_of_the_clients() -> None:  # §4.3.1
    client = request(
        "HEAD",
        "/page",
        ("If-None-Match", '"client"'),
        ("If-Modified-Since", date(-5)),
        ("Range", "bytes=0-1"),
        ("If-Range", '"client"'),
        ("Accept", "text/html"),
    )
    upstream = conditional_request(client, stored(("ETag", '"v1"'), ("Last-Modified", date(-100))))
    assert upstream is not None
    assert upstream.method == "GET"  # a 200 refills the stored GET
    assert upstream.headers.get_all("if-none-match") == ['"v1"']
    assert upstream.headers.get_all("if-modified-since") == [date(-100)]
    assert "range" not in upstream.headers and "if-range" not in upstream.headers
    assert upstream.headers.get("accept") == "text/html"
    assert client.headers.get("if-none-match") == '"client"'  # the client's request is left alone


def test_a_response_without_validators_cannot_be_revalidated() -> None:
    assert conditional_request(request(), stored()) is None
    fill = fill_request(request("GET", "/", ("If-None-Match", '"x"'), ("Range", "bytes=0-0")))
    assert "if-none-match" not in fill.headers and "range" not in fill.headers


def test_a_304_freshens_the_stored_response() -> None:  # §4.3.4, §3.2
    old = stored(
        ("Cache-Control", "max-age=60"),
        ("ETag", '"v1"'),
        ("Content-Length", "1000"),
        ("X-Kept", "yes"),
        response_time=NOW - 600,
        request_time=NOW - 601,
    )
    answer = response(
        304,
        ("Date", date()),
        ("Cache-Control", "max-age=120"),
        ("ETag", '"v1"'),
        ("Content-Length", "0"),
        ("Connection", "close"),
    )
    new = freshen(old, answer, request_time=NOW - 1, response_time=NOW)
    assert new is not None
    assert new.header_values("cache-control") == ["max-age=120"]
    assert new.header("content-length") == "1000"  # §3.2: not updated
    assert new.header("x-kept") == "yes"
    assert new.header("connection") is None
    assert new.header_values("date") == [date()]
    assert (current_age(new, NOW), freshness_lifetime(new)) == (1, 120)


def test_a_304_without_date_is_dated_when_it_arrived() -> None:  # RFC 9110 §6.6.1
    old = stored(
        ("Cache-Control", "max-age=60"), ("ETag", '"v1"'), ("Date", date(-600)), response_time=NOW - 600
    )
    new = freshen(old, response(304, ("ETag", '"v1"')), request_time=NOW, response_time=NOW)
    assert new is not None
    assert new.header_values("date") == [date()]
    assert current_age(new, NOW) == 0


@pytest.mark.parametrize(
    ("stored_validators", "answer_validators", "selected"),
    [
        ([("ETag", '"v1"')], [("ETag", '"v1"')], True),
        ([("ETag", '"v1"')], [("ETag", '"v2"')], False),
        ([("ETag", 'W/"v1"')], [("ETag", '"v1"')], False),  # a strong validator needs a strong match
        ([("ETag", 'W/"v1"')], [("ETag", 'W/"v1"')], True),
        ([("ETag", '"v1"')], [("ETag", 'W/"v1"')], True),  # a weak one, a weak match
        ([("Last-Modified", date(-9))], [("Last-Modified", date(-9))], True),
        ([("Last-Modified", date(-9))], [("Last-Modified", date(-8))], False),
        ([("ETag", '"v1"')], [], True),  # the answer to our own conditional request
    ],
)
def test_which_stored_response_a_304_selects(
    stored_validators: list[tuple[str, str]], answer_validators: list[tuple[str, str]], selected: bool
) -> None:
    new = freshen(
        stored(*stored_validators), response(304, *answer_validators), request_time=NOW, response_time=NOW
    )
    assert (new is not None) is selected


def test_freshen_takes_only_a_304() -> None:
    with pytest.raises(ValueError, match="304"):
        freshen(stored(), response(200), request_time=NOW, response_time=NOW)


@pytest.mark.parametrize(
    ("method", "headers", "expected"),
    [
        ("GET", [("If-None-Match", '"v1"')], True),
        ("GET", [("If-None-Match", '"v0", W/"v1"')], True),  # weak comparison (RFC 9110 §13.1.2)
        ("GET", [("If-None-Match", "*")], True),
        ("GET", [("If-None-Match", '"v0"')], False),
        ("GET", [("If-None-Match", '"v0"'), ("If-Modified-Since", date())], False),  # INM wins (§13.2.2)
        ("GET", [("If-Modified-Since", date(-100))], True),  # Last-Modified is date(-100)
        ("GET", [("If-Modified-Since", date(-101))], False),
        ("GET", [("If-Modified-Since", "garbage")], False),
        ("HEAD", [("If-None-Match", '"v1"')], True),
        ("POST", [("If-None-Match", '"v1"')], False),
    ],
)
def test_a_clients_conditional_request(method: str, headers: list[tuple[str, str]], expected: bool) -> None:
    entry = stored(("ETag", '"v1"'), ("Last-Modified", date(-100)))
    assert not_modified(request(method, "/", *headers), entry) is expected


def test_if_modified_since_falls_back_on_date() -> None:
    assert not_modified(request("GET", "/", ("If-Modified-Since", date())), stored())


def test_the_cache_answers_304_with_the_required_fields_and_age() -> None:  # RFC 9110 §15.4.5
    entry = stored(
        ("ETag", '"v1"'),
        ("Cache-Control", "max-age=60"),
        ("Content-Type", "text/html"),
        ("Vary", "Accept"),
        ("Content-Length", "10"),
    )
    served = serve(request("GET", "/", ("If-None-Match", '"v1"')), entry, 10, NOW + 5)
    assert served.body is None
    assert served.header.status == 304
    assert [name for name, _ in served.header.headers] == ["ETag", "Cache-Control", "Vary", "Date", "Age"]
    assert served.header.headers.get("age") == "5"
