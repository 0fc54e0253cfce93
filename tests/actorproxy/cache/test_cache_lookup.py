"""The lookup decision (RFC 9111 §4, §5.2.1, §5.2.2; RFC 5861), one table row per rule."""

from __future__ import annotations

import pytest
from heads import NOW, request, stored

from actorproxy.cache import CachePolicy, Lookup, Outcome, XCache, lookup, stale_if_error

FRESH = Outcome.FRESH
STALE = Outcome.STALE
SWR = Outcome.STALE_WHILE_REVALIDATE
REVALIDATE = Outcome.MUST_REVALIDATE
MISS = Outcome.MISS
UNAVAILABLE = Outcome.UNAVAILABLE


def cc(value: str) -> tuple[str, str]:
    return ("Cache-Control", value)


@pytest.mark.parametrize(
    ("response_headers", "request_headers", "age", "outcome", "reason"),
    [
        # §4.2: fresh while age < lifetime
        ([cc("max-age=60")], [], 30, FRESH, "fresh"),
        ([cc("max-age=60")], [], 60, REVALIDATE, "stale"),
        # §5.2.2.4 / §5.2.1.4: no-cache always revalidates
        ([cc("max-age=60, no-cache")], [], 0, REVALIDATE, "no-cache in the response"),
        ([cc("max-age=60")], [cc("no-cache")], 0, REVALIDATE, "no-cache in the request"),
        # §5.2.1.1: the request's max-age
        ([cc("max-age=60")], [cc("max-age=10")], 30, REVALIDATE, "not as fresh as the request asks"),
        ([cc("max-age=60")], [cc("max-age=40")], 30, FRESH, "fresh"),
        # §5.2.1.3: min-fresh
        ([cc("max-age=60")], [cc("min-fresh=40")], 30, REVALIDATE, "not as fresh"),
        ([cc("max-age=60")], [cc("min-fresh=20")], 30, FRESH, "fresh"),
        # §5.2.1.2: max-stale
        ([cc("max-age=60")], [cc("max-stale=30")], 80, STALE, "max-stale"),
        ([cc("max-age=60")], [cc("max-stale=10")], 80, REVALIDATE, "stale"),
        ([cc("max-age=60")], [cc("max-stale")], 100_000, STALE, "max-stale"),
        # §5.2.2.2, §5.2.2.8, §5.2.2.10: no stale use after must-revalidate, proxy-revalidate, s-maxage
        ([cc("max-age=60, must-revalidate")], [cc("max-stale")], 80, REVALIDATE, "forbids"),
        ([cc("max-age=60, proxy-revalidate")], [cc("max-stale")], 80, REVALIDATE, "forbids"),
        ([cc("s-maxage=60")], [cc("max-stale")], 80, REVALIDATE, "forbids"),
        # RFC 5861 §3: stale-while-revalidate
        ([cc("max-age=60, stale-while-revalidate=30")], [], 80, SWR, "stale-while-revalidate"),
        ([cc("max-age=60, stale-while-revalidate=30")], [], 100, REVALIDATE, "stale"),
        ([cc("max-age=60, stale-while-revalidate=30, must-revalidate")], [], 80, REVALIDATE, "forbids"),
        ([cc("max-age=60, stale-while-revalidate=30")], [cc("max-age=70")], 80, REVALIDATE, "stale"),
        # §5.2.1.7: only-if-cached answers 504 when the stored response will not do
        ([cc("max-age=60")], [cc("only-if-cached")], 30, FRESH, "fresh"),
        ([cc("max-age=60")], [cc("only-if-cached")], 80, UNAVAILABLE, "stale"),
        ([cc("max-age=60")], [cc("only-if-cached, max-stale")], 80, STALE, "max-stale"),
        # §3.5: a request with Authorization reuses only what the response allows
        ([cc("max-age=60")], [("Authorization", "x")], 0, MISS, "Authorization"),
        ([cc("public, max-age=60")], [("Authorization", "x")], 0, FRESH, "fresh"),
    ],
)
def test_lookup(
    response_headers: list[tuple[str, str]],
    request_headers: list[tuple[str, str]],
    age: float,
    outcome: Outcome,
    reason: str,
) -> None:
    found = lookup(request("GET", "/", *request_headers), stored(*response_headers), NOW + age)
    assert (found.outcome, reason in found.reason) == (outcome, True), found
    assert found.age == age


def test_nothing_stored_is_a_miss_or_504_with_only_if_cached() -> None:
    assert lookup(request(), None, NOW).outcome is MISS
    assert lookup(request("GET", "/", cc("only-if-cached")), None, NOW).outcome is UNAVAILABLE


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS"])
def test_other_methods_bypass_the_cache(method: str) -> None:
    assert lookup(request(method), stored(cc("max-age=60")), NOW).outcome is Outcome.BYPASS


def test_head_is_answered_from_the_stored_get() -> None:  # RFC 9110 §9.3.2
    assert lookup(request("HEAD"), stored(cc("max-age=60")), NOW).outcome is FRESH


@pytest.mark.parametrize(
    ("vary", "request_headers", "outcome"),
    [
        ((("accept-encoding", "gzip"),), [("Accept-Encoding", "gzip")], FRESH),
        ((("accept-encoding", "gzip,br"),), [("Accept-Encoding", "gzip, br")], FRESH),  # normalised (§4.1)
        ((("accept-encoding", "gzip"),), [("Accept-Encoding", "br")], MISS),
        ((("accept-encoding", None),), [], FRESH),  # absent in both
        ((("accept-encoding", None),), [("Accept-Encoding", "gzip")], MISS),
    ],
)
def test_vary_selects_the_stored_response(
    vary: tuple[tuple[str, str | None], ...], request_headers: list[tuple[str, str]], outcome: Outcome
) -> None:
    found = lookup(request("GET", "/", *request_headers), stored(cc("max-age=60"), vary=vary), NOW)
    assert found.outcome is outcome


@pytest.mark.parametrize(
    ("outcome", "revalidated", "label"),
    [
        (FRESH, False, XCache.HIT),
        (STALE, False, XCache.STALE),
        (SWR, False, XCache.STALE),
        (REVALIDATE, False, XCache.MISS),
        (REVALIDATE, True, XCache.REVALIDATED),
        (MISS, False, XCache.MISS),
        (Outcome.BYPASS, False, XCache.BYPASS),
    ],
)
def test_x_cache_labels(outcome: Outcome, revalidated: bool, label: XCache) -> None:
    assert Lookup(outcome, "").x_cache(revalidated=revalidated) is label


@pytest.mark.parametrize(
    ("response_directives", "request_directives", "age", "allowed"),
    [
        ("max-age=60, stale-if-error=30", "", 80, True),  # RFC 5861 §4
        ("max-age=60, stale-if-error=30", "", 100, False),
        ("max-age=60", "stale-if-error=30", 80, True),  # in the request too
        ("max-age=60", "", 61, False),
        ("max-age=60, stale-if-error=30, must-revalidate", "", 80, False),
        ("s-maxage=60, stale-if-error=30", "", 80, False),
        ("max-age=60, stale-if-error=30, no-cache", "", 80, False),
    ],
)
def test_stale_if_error(response_directives: str, request_directives: str, age: float, allowed: bool) -> None:
    client = request("GET", "/", *([cc(request_directives)] if request_directives else []))
    assert stale_if_error(client, stored(cc(response_directives)), NOW + age) is allowed


def test_the_operators_stale_windows_stand_in_for_the_responses() -> None:  # RFC 9111 §4.2.4, RFC 5861
    policy = CachePolicy(stale_while_revalidate=30, stale_if_error=100)
    plain, own = stored(cc("max-age=60")), stored(cc("max-age=60, stale-while-revalidate=5"))
    assert lookup(request(), plain, NOW + 80, policy).outcome is SWR
    assert lookup(request(), plain, NOW + 100, policy).outcome is REVALIDATE
    assert lookup(request(), own, NOW + 80, policy).outcome is REVALIDATE  # the response's own wins
    assert lookup(request(), plain, NOW + 80).outcome is REVALIDATE  # without the policy
    assert stale_if_error(request(), plain, NOW + 150, policy)
    assert not stale_if_error(request(), plain, NOW + 200, policy)
    assert not stale_if_error(request(), stored(cc("max-age=60, must-revalidate")), NOW + 61, policy)
