"""Which responses a shared cache may store (RFC 9111 §3, §3.5), and what storing keeps (§3.1)."""

from __future__ import annotations

import pytest
from heads import NOW, date, request, response

from actorproxy.cache import CachePolicy, StoredResponse, prepare_for_storage, storable

AUTH = ("Authorization", "Bearer x")


@pytest.mark.parametrize(
    ("method", "status", "headers", "request_headers", "ok", "reason"),
    [
        ("GET", 200, [], [], True, "heuristically cacheable"),  # RFC 9110 §15.1
        ("GET", 404, [], [], True, "heuristically cacheable"),
        ("GET", 302, [], [], False, "not heuristically cacheable"),
        ("GET", 302, [("Cache-Control", "max-age=60")], [], True, "explicit"),
        ("GET", 500, [("Expires", date(60))], [], True, "Expires"),
        ("GET", 307, [("Cache-Control", "public")], [], True, "explicit"),
        ("POST", 200, [("Cache-Control", "max-age=60")], [], False, "method POST"),  # §3: method understood
        ("HEAD", 200, [], [], False, "method HEAD"),
        ("GET", 100, [], [], False, "not final"),
        ("GET", 206, [("Cache-Control", "max-age=60")], [], False, "206 is not stored"),
        ("GET", 304, [], [], False, "304 is not stored"),
        ("GET", 200, [("Cache-Control", "no-store")], [], False, "no-store"),  # §5.2.2.5
        ("GET", 200, [], [("Cache-Control", "no-store")], False, "request says no-store"),  # §5.2.1.5
        ("GET", 200, [("Cache-Control", "private, max-age=60")], [], False, "private"),  # §5.2.2.7
        ("GET", 200, [("Cache-Control", 'private="set-cookie"')], [], True, "heuristically"),
        ("GET", 200, [("Cache-Control", "no-cache")], [], True, "heuristically"),  # stored, revalidated
        ("GET", 200, [("Cache-Control", "must-understand, no-store, max-age=60")], [], True, "explicit"),
        ("GET", 299, [("Cache-Control", "must-understand, no-store")], [], False, "not understood"),
        ("GET", 200, [("Cache-Control", "max-age=60")], [AUTH], False, "Authorization"),  # §3.5
        ("GET", 200, [("Cache-Control", "public")], [AUTH], True, "explicit"),
        ("GET", 200, [("Cache-Control", "must-revalidate, max-age=60")], [AUTH], True, "explicit"),
        ("GET", 200, [("Cache-Control", "s-maxage=60")], [AUTH], True, "explicit"),
        ("GET", 200, [("Vary", "Accept, *")], [], False, "Vary: *"),  # §4.1
    ],
)
def test_storable(  # noqa: PLR0917  # one argument per column of the table
    method: str,
    status: int,
    headers: list[tuple[str, str]],
    request_headers: list[tuple[str, str]],
    ok: bool,
    reason: str,
) -> None:
    verdict = storable(request(method, "/", *request_headers), response(status, *headers))
    assert (bool(verdict), reason in verdict.reason) == (ok, True), verdict


def test_a_policy_may_store_more_methods() -> None:
    policy = CachePolicy(cacheable_methods=frozenset({"GET", "POST"}))
    assert storable(request("POST"), response(200, ("Cache-Control", "max-age=5")), policy)


def test_storing_drops_hop_by_hop_connection_named_and_private_fields_and_adds_date() -> None:  # §3.1
    upstream = response(
        200,
        ("Connection", "keep-alive, X-Hop"),
        ("Keep-Alive", "timeout=5"),
        ("Transfer-Encoding", "chunked"),
        ("X-Hop", "1"),
        ("Cache-Control", 'private="X-Secret", max-age=60'),
        ("X-Secret", "token"),
        ("Vary", "Accept-Encoding, Accept"),
        ("ETag", '"v1"'),
    )
    client = request("GET", "/", ("Accept-Encoding", "gzip,  br"), ("accept-encoding", "zstd"))
    kept = prepare_for_storage(client, upstream, request_time=NOW - 1, response_time=NOW)
    names = [name for name, _ in kept.headers]
    assert names == ["Cache-Control", "Vary", "ETag", "Date"]
    assert kept.header("date") == date()
    assert kept.vary == (("accept", None), ("accept-encoding", "gzip,br,zstd"))
    assert StoredResponse.from_bytes(kept.to_bytes()) == kept


def test_a_stored_response_keeps_its_own_date() -> None:
    kept = prepare_for_storage(
        request(), response(200, ("Date", date(-30))), request_time=NOW, response_time=NOW
    )
    assert kept.header_values("date") == [date(-30)]


def test_a_private_date_is_dropped_and_the_cache_dates_the_response() -> None:
    upstream = response(200, ("Date", date(-30)), ("Cache-Control", 'private="Date", max-age=60'))
    kept = prepare_for_storage(request(), upstream, request_time=NOW, response_time=NOW)
    assert kept.header_values("date") == [date()]


@pytest.mark.parametrize(
    "stored",
    [
        StoredResponse(
            status=200,
            reason="OK then",
            headers=(
                ("Content-Type", "text/plain"),
                ("X-Empty", ""),
                ("X-Colon", "a: b"),
                ("X-Utf8", "é\udcff"),
            ),
            request_time=NOW - 0.123456789,
            response_time=NOW,
            vary=(("accept", None), ("accept-encoding", ""), ("x-a", "1:2")),
            lifetime=3600.5,
        ),
        StoredResponse(status=404, request_time=NOW, response_time=NOW),  # no reason, no lifetime
    ],
)
def test_a_head_is_stored_as_lines_and_read_back_the_same(stored: StoredResponse) -> None:
    data = stored.to_bytes()
    assert data.startswith(b"R1 ")
    assert StoredResponse.from_bytes(data) == stored


def test_a_head_lines_cannot_hold_is_stored_as_json_and_read_back_the_same() -> None:
    for odd in [(("X-Bad", "a\nb"),), (("X:Bad", "v"),)]:
        stored = StoredResponse(status=200, headers=odd, request_time=NOW, response_time=NOW)
        data = stored.to_bytes()
        assert data.startswith(b"{")
        assert StoredResponse.from_bytes(data) == stored


def test_a_head_stored_as_json_before_the_line_format_is_read() -> None:
    data = (
        b'{"status":200,"reason":"OK","headers":[["ETag","\\"v1\\""]],"request_time":1.5,'
        b'"response_time":2.0,"vary":[["accept",null]],"lifetime":null}'
    )
    stored = StoredResponse.from_bytes(data)
    assert stored.headers == (("ETag", '"v1"'),) and stored.vary == (("accept", None),)
    assert stored.response_time == 2.0 and stored.lifetime is None


@pytest.mark.parametrize("data", [b"", b"{}", b"[1]", b'{"status": "x"}', b"R1 x", b"R1 200 1 2 -", b"\xff"])
def test_meta_that_is_not_a_stored_response_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a stored response"):
        StoredResponse.from_bytes(data)
