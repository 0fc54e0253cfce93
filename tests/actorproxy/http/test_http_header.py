"""Headers, RequestHeader and ResponseHeader: case kept, lookups case-insensitive, Pingora's methods."""

from __future__ import annotations

import pytest

from actorproxy.http import Headers, RequestHeader, ResponseHeader, trust_if_writable


def test_names_keep_their_case_and_lookups_ignore_it() -> None:
    headers = Headers([("X-Request-ID", "a1"), ("content-TYPE", "text/plain")])
    assert headers.get("x-request-id") == "a1"
    assert headers.get("CONTENT-type") == "text/plain"
    assert "X-REQUEST-ID" in headers
    assert "x-missing" not in headers
    assert headers.get("x-missing") is None
    assert headers.get("x-missing", "default") == "default"
    assert list(headers) == [("X-Request-ID", "a1"), ("content-TYPE", "text/plain")]
    assert headers.raw() == [(b"X-Request-ID", b"a1"), (b"content-TYPE", b"text/plain")]


def test_repeated_names_are_kept_in_order() -> None:
    headers = Headers()
    headers.add("Set-Cookie", "a=1")
    headers.add("Via", "1.1 proxy")
    headers.add("set-cookie", "b=2")
    assert headers.get("SET-COOKIE") == "a=1"
    assert headers.get_all("set-cookie") == ["a=1", "b=2"]
    assert headers.get_all("nothing") == []
    assert len(headers) == 3


def test_set_replaces_every_field_at_the_first_ones_position() -> None:
    headers = Headers([("A", "1"), ("X-Tag", "x"), ("B", "2"), ("x-tag", "y"), ("C", "3")])
    assert headers.get("a") == "1"  # builds the lowercase index before the change
    headers.set("X-TAG", "z")
    assert headers.items() == [("A", "1"), ("X-TAG", "z"), ("B", "2"), ("C", "3")]
    assert headers.get_all("x-tag") == ["z"]
    assert headers.get("c") == "3"  # the index followed the removal
    headers.set("New", "n")
    assert headers.items()[-1] == ("New", "n")


def test_remove_takes_every_field_and_says_whether_there_was_one() -> None:
    headers = Headers([("Connection", "close"), ("Host", "h"), ("connection", "te")])
    assert headers.remove("CONNECTION") is True
    assert headers.items() == [("Host", "h")]
    assert headers.remove("connection") is False
    headers.add("Te", "trailers")
    assert headers.get("te") == "trailers"  # added after the index was built


def test_raw_round_trip_is_latin1_exact() -> None:
    raw = [(b"X-Bin", b"caf\xe9"), (b"Host", b"example.com")]
    headers = Headers.from_raw(raw)
    assert headers.get("x-bin") == "café"
    assert headers.raw() == raw


def test_raw_refuses_what_latin1_cannot_encode() -> None:
    with pytest.raises(UnicodeEncodeError):
        Headers([("X", "snow ☃")]).raw()


def test_copy_is_independent() -> None:
    original = Headers([("A", "1")])
    assert original.get("a") == "1"
    copy = original.copy()
    copy.add("B", "2")
    copy.set("a", "changed")
    assert original.items() == [("A", "1")]
    assert "b" not in original
    assert copy == Headers([("a", "changed"), ("B", "2")])


def test_request_header_build_and_pingora_methods() -> None:
    request = RequestHeader.build("GET", "/a/b?x=1&y=2", [("Host", "example.com")])
    assert (request.method, request.uri, request.version) == ("GET", "/a/b?x=1&y=2", "1.1")
    assert (request.path, request.query) == ("/a/b", "x=1&y=2")
    request.insert_header("X-Forwarded-For", "10.0.0.1")
    request.insert_header("x-forwarded-for", "10.0.0.2")
    request.append_header("Via", "1.1 a")
    request.append_header("Content-Length", 12)
    request.append_header("X-Raw", b"\xe9")
    assert request.headers.get_all("X-Forwarded-For") == ["10.0.0.2"]
    assert request.headers.get("content-length") == "12"
    assert request.headers.get("x-raw") == "é"
    assert request.remove_header("via") is True
    assert request.remove_header("via") is False
    request.set_method("POST")
    request.set_uri("/other")
    assert (request.method, request.path, request.query) == ("POST", "/other", None)


@pytest.mark.parametrize(
    ("uri", "path", "query"),
    [
        ("/", "/", None),
        ("/p?", "/p", ""),
        ("http://example.com/a/b?q=1", "/a/b", "q=1"),
        ("http://example.com", "/", None),
        ("http://example.com?q", "/", "q"),
        ("example.com:443", "", None),
        ("*", "*", None),
    ],
)
def test_request_path_and_query_for_every_target_form(uri: str, path: str, query: str | None) -> None:
    request = RequestHeader("GET", uri)
    assert (request.path, request.query) == (path, query)


def test_request_copy_is_independent() -> None:
    request = RequestHeader("GET", "/", [("Host", "h")])
    copy = request.copy()
    copy.insert_header("Host", "other")
    copy.set_uri("/x")
    assert (request.uri, request.headers.get("host")) == ("/", "h")


def test_response_header_reason_follows_the_status() -> None:
    response = ResponseHeader.build(404, [("Content-Length", "0")])
    assert (response.status, response.reason, response.version) == (404, "Not Found", "1.1")
    response.set_status(503)
    assert response.reason == "Service Unavailable"
    assert ResponseHeader(599).reason == ""
    assert ResponseHeader(200, reason="Fine").reason == "Fine"
    response.insert_header("Retry-After", 5)
    response.append_header("Vary", "a")
    response.append_header("vary", "b")
    assert response.headers.get_all("VARY") == ["a", "b"]
    assert response.remove_header("Vary") is True
    assert response.headers.items() == [("Content-Length", "0"), ("Retry-After", "5")]


def test_parsed_headers_are_trusted_until_a_public_call_adds_or_sets_a_field() -> None:
    parsed = Headers._from_parsed([("Host", "h"), ("X-A", "1")], ["host", "x-a"])
    assert parsed._trusted
    copy = parsed.copy()
    assert copy._trusted and copy.remove("x-a") and copy._trusted  # removing keeps every field valid
    copy._add_trusted("Via", "1.1 edge")
    assert copy._trusted and copy.get("via") == "1.1 edge"
    added = parsed.copy()
    added.add("X-B", "anything")
    set_ = parsed.copy()
    set_.set("x-a", "anything")
    assert not added._trusted and not set_._trusted
    assert not Headers([("Host", "h")])._trusted


@pytest.mark.parametrize(
    ("fields", "trusted"),
    [
        ([], True),
        ([("Content-Type", "text/plain"), ("X-Empty", ""), ("X-Tab", "a\tb c"), ("X-Obs", "caf\xe9")], True),
        ([("Content-Length", "13"), ("ETag", '"v1"')], True),
        ([("X-Ctl", "a\x01b")], False),  # HTTP/1.1 writes it; HTTP/2 does not
        ([("X-Edge", " a")], False),
        ([("X-Edge", "a\t")], False),
        ([("X-Line", "a\r\nX-Smuggled: 1")], False),
        ([("Bad Name", "a")], False),
        ([("X-Wide", "\u0100")], False),
        ([("Transfer-Encoding", "chunked")], False),  # framing the codec normalises
        ([("Content-Length", "1"), ("Content-Length", "1")], False),
        ([("Content-Length", "+1")], False),
    ],
)
def test_trust_if_writable_marks_only_fields_every_codec_writes_as_they_are(
    fields: list[tuple[str, str]], trusted: bool
) -> None:
    headers = Headers(fields)
    assert trust_if_writable(headers) is trusted
    assert headers._trusted is trusted
    assert headers.copy()._trusted is trusted
