"""Cache-Control parsing (RFC 9111 §5.2) and the field syntax under it (RFC 9110 §5.6)."""

from __future__ import annotations

import pytest

from actorproxy.cache import (
    ANY_STALENESS,
    MAX_DELTA_SECONDS,
    CacheControl,
    list_items,
    parse_http_date,
    strong_match,
    weak_match,
)
from actorproxy.http import Headers


def directives(*values: str) -> CacheControl:
    return CacheControl.parse(Headers([("Cache-Control", value) for value in values]))


@pytest.mark.parametrize(
    ("values", "name", "expected"),
    [
        (["max-age=60"], "max-age", 60),
        (["MAX-AGE=60"], "max-age", 60),  # §5.2: names are case-insensitive
        (['max-age="60"'], "max-age", 60),  # §5.2: quoted form accepted
        (["public, max-age=60", "s-maxage=30"], "s-maxage", 30),  # several field lines
        (["max-age=60, max-age=60"], "max-age", 60),  # a repeat with the same value does not conflict
        (["max-age=60, max-age=120"], "max-age", 0),  # §4.2.1: conflicting values: stale
        (["max-age=abc"], "max-age", 0),  # not delta-seconds: stale
        (["max-age=99999999999999"], "max-age", MAX_DELTA_SECONDS),  # §1.2.2: capped at 2^31
        (["no-cache"], "max-age", None),
    ],
)
def test_delta_seconds(values: list[str], name: str, expected: int | None) -> None:
    assert directives(*values).seconds(name) == expected


def test_flags_and_qualified_forms() -> None:
    parsed = directives('private="Set-Cookie, X-Secret", no-cache="x-a", must-revalidate, Proxy-Revalidate')
    assert not parsed.private  # qualified: stored without those fields (§5.2.2.7)
    assert parsed.fields("private") == {"set-cookie", "x-secret"}
    assert parsed.no_cache  # qualified no-cache is taken as unqualified (§5.2.2.4)
    assert parsed.must_revalidate and parsed.proxy_revalidate
    assert directives("private").private
    assert directives("no-store, public").no_store


@pytest.mark.parametrize(
    ("value", "expected"),
    [("max-stale", ANY_STALENESS), ("max-stale=30", 30.0), ("max-stale=x", None), ("no-cache", None)],
)
def test_request_max_stale(value: str, expected: float | None) -> None:  # §5.2.1.2
    assert directives(value).max_stale == expected


def test_request_directives() -> None:  # §5.2.1
    parsed = directives("max-age=5, min-fresh=10, only-if-cached, stale-if-error=60")
    assert (parsed.request_max_age, parsed.min_fresh, parsed.only_if_cached) == (5, 10, True)
    assert parsed.stale_if_error == 60
    assert directives("max-age=bad").request_max_age is None


def test_list_items_respect_quoted_strings() -> None:  # RFC 9110 §5.6.1
    assert list(list_items(['a, b="x, \\"y", , c', " d "])) == ["a", 'b="x, \\"y"', "c", "d"]


@pytest.mark.parametrize(
    "text",
    ["Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994"],
    ids=["IMF-fixdate", "rfc850", "asctime"],
)
def test_http_dates_in_all_three_forms(text: str) -> None:  # RFC 9110 §5.6.7
    assert parse_http_date(text) == 784111777.0


@pytest.mark.parametrize("text", ["0", "", "yesterday", None])
def test_unreadable_dates(text: str | None) -> None:
    assert parse_http_date(text) is None


@pytest.mark.parametrize(
    ("a", "b", "weak", "strong"),
    [
        ('"1"', '"1"', True, True),
        ('W/"1"', '"1"', True, False),
        ('W/"1"', 'W/"1"', True, False),
        ('"1"', '"2"', False, False),
    ],
)
def test_entity_tag_comparison(a: str, b: str, weak: bool, strong: bool) -> None:  # RFC 9110 §8.8.3.2
    assert (weak_match(a, b), strong_match(a, b)) == (weak, strong)
