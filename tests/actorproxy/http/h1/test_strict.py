"""The strict checks on requests from clients, as pure functions: no codec, no stream, no loop."""

from __future__ import annotations

import attrs
import h11
import pytest

from actorproxy.config import DEFAULT_LIMITS, HttpLimits
from actorproxy.http.h1._strict import HeadScanner, check_head, check_request, noted_fields
from actorproxy.http.h1._strictbody import ChunkedBodyCheck, check_trailers, chunk_line, trailers_end

ACCEPTED = 0
INCOMPLETE = -1


def verdict(data: bytes, limits: HttpLimits = DEFAULT_LIMITS, *, pieces: int = 1) -> int:
    """What the checks say of `data` arriving in `pieces` reads: a status, ACCEPTED or INCOMPLETE."""
    scanner = HeadScanner(limits)
    size = max(1, -(-len(data) // pieces))
    buf = bytearray()
    try:
        for at in range(0, len(data), size):
            buf += data[at : at + size]
            end = scanner.scan(buf, 0)
            if end >= 0:
                method, target, version, start = check_head(buf, 0, end, scanner.match)
                check_request(method, target, version, noted_fields(buf, start, end), limits)
                return ACCEPTED
    except h11.RemoteProtocolError as exc:
        return exc.error_status_hint
    return INCOMPLETE


def head(*fields: bytes, line: bytes = b"GET / HTTP/1.1") -> bytes:
    return line + b"\r\n" + b"".join(field + b"\r\n" for field in fields) + b"\r\n"


HOST = b"Host: example.com"

CASES: dict[str, tuple[bytes, int]] = {
    # accepted
    "plain": (head(HOST), ACCEPTED),
    "http-1.0-with-host": (head(HOST, line=b"GET / HTTP/1.0"), ACCEPTED),
    "ows-around-values": (head(b"Host:  \texample.com \t", b"X-A:\t\tb c \t"), ACCEPTED),
    "empty-value": (head(HOST, b"X-Empty:"), ACCEPTED),
    "obs-text-value": (head(HOST, b"X-A: caf\xe9"), ACCEPTED),
    "content-length": (head(HOST, b"Content-Length: 12"), ACCEPTED),
    "content-length-leading-zeros": (head(HOST, b"Content-Length: 0012"), ACCEPTED),
    "chunked": (head(HOST, b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.1"), ACCEPTED),
    "chunked-capitals": (head(HOST, b"Transfer-Encoding: Chunked", line=b"POST / HTTP/1.1"), ACCEPTED),
    "expect-continue": (head(HOST, b"Expect: 100-Continue", b"Content-Length: 1"), ACCEPTED),
    "absolute-form-same-host": (head(HOST, line=b"GET http://EXAMPLE.com/a?b HTTP/1.1"), ACCEPTED),
    "absolute-form-default-port": (head(HOST, line=b"GET http://example.com:80/ HTTP/1.1"), ACCEPTED),
    "absolute-form-https-port": (
        head(b"Host: example.com:443", line=b"GET https://example.com/ HTTP/1.1"),
        ACCEPTED,
    ),
    "asterisk-options": (head(HOST, line=b"OPTIONS * HTTP/1.1"), ACCEPTED),
    "connect": (head(b"Host: example.com:443", line=b"CONNECT example.com:443 HTTP/1.1"), ACCEPTED),
    "ipv6-host": (head(b"Host: [::1]:8080"), ACCEPTED),
    "empty-host": (head(b"Host:"), ACCEPTED),  # RFC 9112 §3.2: legal when the target has no authority
    "unknown-method": (head(HOST, line=b"BREW /pot HTTP/1.1"), ACCEPTED),
    # the grammar: 400
    "bare-lf-line-end": (b"GET / HTTP/1.1\nHost: example.com\n\n", 400),
    "bare-lf-in-one-line": (b"GET / HTTP/1.1\r\nHost: example.com\nX-A: b\r\n\r\n", 400),
    "bare-cr-in-value": (head(HOST, b"X-A: a\rb"), 400),
    "bare-cr-in-request-line": (head(HOST, line=b"GET /\r HTTP/1.1"), 400),
    "nul-in-value": (head(HOST, b"X-A: a\x00b"), 400),
    "control-char-in-value": (head(HOST, b"X-A: a\x01b"), 400),
    "del-in-value": (head(HOST, b"X-A: a\x7fb"), 400),
    "vertical-tab-in-value": (head(HOST, b"X-A: a\x0bb"), 400),
    "form-feed-before-value": (head(HOST, b"Transfer-Encoding:\x0cchunked"), 400),
    "obs-fold": (head(HOST, b"X-A: a", b" b"), 400),
    "obs-fold-tab": (head(HOST, b"X-A: a", b"\tb"), 400),
    "space-before-colon": (head(HOST, b"X-A : b"), 400),
    "tab-before-colon": (head(HOST, b"X-A\t: b"), 400),
    "empty-name": (head(HOST, b": b"), 400),
    "invalid-name": (head(HOST, b"X[A]: b"), 400),
    "no-colon": (head(HOST, b"X-A"), 400),
    "lowercase-http": (head(HOST, line=b"GET / http/1.1"), 400),
    "two-spaces": (head(HOST, line=b"GET  / HTTP/1.1"), 400),
    "no-version": (head(HOST, line=b"GET /"), 400),
    "leading-empty-line": (b"\r\n" + head(HOST), 400),
    "leading-space": (b" " + head(HOST), 400),
    "tls-handshake": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    # versions: 505
    "http-1.2": (head(HOST, line=b"GET / HTTP/1.2"), 505),
    "http-2.0": (head(HOST, line=b"GET / HTTP/2.0"), 505),
    "http-0.9": (head(HOST, line=b"GET / HTTP/0.9"), 505),
    # Host and the target: 400
    "no-host": (head(b"X-A: b"), 400),
    "no-host-http-1.0": (head(line=b"GET / HTTP/1.0"), 400),
    "two-hosts": (head(HOST, HOST), 400),
    "host-with-path": (head(b"Host: example.com/evil"), 400),
    "host-with-userinfo": (head(b"Host: user@example.com"), 400),
    "host-with-space": (head(b"Host: exa mple.com"), 400),
    "host-bad-port": (head(b"Host: example.com:http"), 400),
    "host-bad-escape": (head(b"Host: exa%zzmple.com"), 400),
    "absolute-form-other-host": (head(HOST, line=b"GET http://other.com/ HTTP/1.1"), 400),
    "absolute-form-other-port": (head(HOST, line=b"GET http://example.com:8080/ HTTP/1.1"), 400),
    "absolute-form-userinfo": (head(HOST, line=b"GET http://u@example.com/ HTTP/1.1"), 400),
    "absolute-form-no-host": (head(HOST, line=b"GET http:///a HTTP/1.1"), 400),
    "absolute-form-ftp": (head(HOST, line=b"GET ftp://example.com/ HTTP/1.1"), 400),
    "relative-target": (head(HOST, line=b"GET foo HTTP/1.1"), 400),
    "fragment": (head(HOST, line=b"GET /a#b HTTP/1.1"), 400),
    "asterisk-get": (head(HOST, line=b"GET * HTTP/1.1"), 400),
    "connect-origin-form": (head(HOST, line=b"CONNECT / HTTP/1.1"), 400),
    "connect-no-port": (head(HOST, line=b"CONNECT example.com HTTP/1.1"), 400),
    # framing
    "length-and-chunked": (head(HOST, b"Content-Length: 3", b"Transfer-Encoding: chunked"), 400),
    "chunked-and-length": (head(HOST, b"Transfer-Encoding: chunked", b"Content-Length: 3"), 400),
    "two-equal-lengths": (head(HOST, b"Content-Length: 3", b"Content-Length: 3"), 400),
    "two-lengths": (head(HOST, b"Content-Length: 3", b"Content-Length: 4"), 400),
    "length-list": (head(HOST, b"Content-Length: 3, 3"), 400),
    "length-sign": (head(HOST, b"Content-Length: +3"), 400),
    "length-negative": (head(HOST, b"Content-Length: -1"), 400),
    "length-hex": (head(HOST, b"Content-Length: 0x3"), 400),
    "length-inner-space": (head(HOST, b"Content-Length: 1 2"), 400),
    "length-empty": (head(HOST, b"Content-Length:"), 400),
    "length-21-digits": (head(HOST, b"Content-Length: " + b"1" * 21), 400),
    "length-non-ascii-digit": (head(HOST, "Content-Length: \u0663".encode("latin-1", "replace")), 400),
    "chunked-on-http-1.0": (head(HOST, b"Transfer-Encoding: chunked", line=b"POST / HTTP/1.0"), 400),
    "xchunked": (head(HOST, b"Transfer-Encoding: xchunked"), 400),
    "chunked-then-identity": (head(HOST, b"Transfer-Encoding: chunked, identity"), 400),
    "identity": (head(HOST, b"Transfer-Encoding: identity"), 400),
    "chunked-twice": (head(HOST, b"Transfer-Encoding: chunked, chunked"), 400),
    "chunked-two-fields": (head(HOST, b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"), 400),
    "chunked-empty-element": (head(HOST, b"Transfer-Encoding: , chunked"), 400),
    "chunked-with-parameter": (head(HOST, b"Transfer-Encoding: chunked;q=1"), 400),
    "coding-empty": (head(HOST, b"Transfer-Encoding:"), 400),
    "gzip-then-chunked": (head(HOST, b"Transfer-Encoding: gzip, chunked"), 501),
    "gzip-field-then-chunked-field": (
        head(HOST, b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"),
        501,
    ),
    "trace-with-body": (head(HOST, b"Content-Length: 2", line=b"TRACE / HTTP/1.1"), 400),
    "trace-chunked": (head(HOST, b"Transfer-Encoding: chunked", line=b"TRACE / HTTP/1.1"), 400),
    # expectations
    "unknown-expectation": (head(HOST, b"Expect: 200-ok"), 417),
    "continue-and-another": (head(HOST, b"Expect: 100-continue, foo"), 417),
    "continue-with-parameter": (head(HOST, b"Expect: 100-continue;x=1"), 417),
}


@pytest.mark.parametrize(("data", "expected"), list(CASES.values()), ids=list(CASES))
def test_verdict(data: bytes, expected: int) -> None:
    assert verdict(data) == expected


@pytest.mark.parametrize(("data", "expected"), list(CASES.values()), ids=list(CASES))
def test_verdict_is_the_same_byte_by_byte(data: bytes, expected: int) -> None:
    assert verdict(data, pieces=len(data)) == expected


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (head(HOST, b"X-A: a", b" b"), "obs-fold"),
        (head(HOST, b"X-A : b"), "whitespace between the field name"),
        (head(HOST, b"X-A: a\rb"), "bare CR"),
        (b"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", "bare LF"),
        (head(HOST, b"X-A: a\x00b"), "NUL"),
        (head(HOST, b"X-A: a\x01b"), "control character"),
        (head(HOST, b": b"), "empty field name"),
        (head(HOST, b"X[A]: b"), "invalid field name"),
        (head(HOST, line=b"GET / HTTP/1.1 x"), "invalid request line"),
    ],
    ids=[
        "obs-fold",
        "space-before-colon",
        "bare-cr",
        "bare-lf",
        "nul",
        "ctl",
        "empty-name",
        "bad-name",
        "line",
    ],
)
def test_a_refused_head_says_why(data: bytes, reason: str) -> None:
    scanner = HeadScanner()
    end = scanner.scan(data, 0)
    with pytest.raises(h11.RemoteProtocolError, match=reason):
        check_head(data, 0, end, scanner.match)


# -- limits --------------------------------------------------------------------------------------------------

SMALL = HttpLimits(max_request_line=64, max_header_bytes=256, max_header_count=4, max_body_size=100)


@pytest.mark.parametrize("pieces", [1, 3, 10_000], ids=["one-read", "three-reads", "byte-by-byte"])
@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (head(HOST, line=b"GET /" + b"a" * 50 + b" HTTP/1.1"), ACCEPTED),  # 64 bytes
        (head(HOST, line=b"GET /" + b"a" * 200 + b" HTTP/1.1"), 414),
        (b"GET /" + b"a" * 200, 414),  # no end of line yet: refused before it comes
        (head(HOST, b"X-A: " + b"b" * 300), 431),
        (head(HOST, b"X-A: " + b"b" * 300)[:280], 431),  # incomplete, already too large
        (head(HOST, b"A: 1", b"B: 2", b"C: 3"), ACCEPTED),
        (head(HOST, b"A: 1", b"B: 2", b"C: 3", b"D: 4"), 431),
        (head(HOST, b"A: 1", b"B: 2", b"C: 3", b"D: 4")[:-2], 431),  # a fifth field, before the end
        (head(HOST, b"Content-Length: 100"), ACCEPTED),
        (head(HOST, b"Content-Length: 101"), 413),
    ],
    ids=[
        "line-at-limit",
        "line-over",
        "line-over-incomplete",
        "head-over",
        "head-over-incomplete",
        "fields-at-limit",
        "fields-over",
        "fields-over-incomplete",
        "body-at-limit",
        "body-over",
    ],
)
def test_limits_hold_whatever_the_reads(data: bytes, expected: int, pieces: int) -> None:
    assert verdict(data, SMALL, pieces=pieces) == expected


def test_request_line_limit_is_exact() -> None:
    line = b"GET /" + b"a" * 50 + b" HTTP/1.1"
    limits = attrs.evolve(SMALL, max_request_line=len(line))
    assert verdict(head(HOST, line=line), limits) == ACCEPTED
    assert verdict(head(HOST, line=line), attrs.evolve(limits, max_request_line=len(line) - 1)) == 414


def test_default_limits_refuse_a_60_kib_head_in_one_read() -> None:
    data = head(HOST, *(b"X-Field-%d: %s" % (n, b"v" * 1000) for n in range(62)))
    assert len(data) > 60 * 1024
    assert verdict(data) == 431
    assert verdict(data, pieces=len(data) // 7) == 431


def test_default_limits_refuse_a_long_request_line_and_many_fields() -> None:
    assert verdict(head(HOST, line=b"GET /" + b"a" * 9000 + b" HTTP/1.1")) == 414
    assert verdict(head(HOST, *(b"X-%d: v" % n for n in range(101)))) == 431
    assert verdict(head(HOST, *(b"X-%d: v" % n for n in range(99)))) == ACCEPTED


def test_a_head_trickled_byte_by_byte_is_scanned_once() -> None:
    # Each byte after the first is looked at a bounded number of times: the scan resumes where it stopped.
    data = head(HOST, *(b"X-%d: %s" % (n, b"v" * 200) for n in range(90)))
    scanner = HeadScanner()
    buf = bytearray()
    ends = []
    for byte in data:
        buf.append(byte)
        ends.append(scanner.scan(buf, 0))
    assert ends[-1] == len(data)
    assert set(ends[:-1]) == {-1}


def test_offsets_survive_the_buffer_moving() -> None:
    # A codec may drop consumed bytes and move the head to the front of its buffer between reads.
    data = head(HOST, b"X-A: b")
    scanner = HeadScanner()
    assert scanner.scan(b"xxxx" + data[:10], 4) == -1
    assert scanner.scan(data[:20], 0) == -1
    assert scanner.scan(data, 0) == len(data)


@pytest.mark.parametrize(
    "field",
    ["max_request_line", "max_header_bytes", "max_header_count", "max_chunk_line"],
)
def test_limits_must_be_positive(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        HttpLimits(**{field: 0})


def test_body_limit_may_be_none_or_a_size() -> None:
    assert HttpLimits().max_body_size is None
    assert HttpLimits(max_body_size=0).max_body_size == 0
    with pytest.raises(ValueError, match="max_body_size"):
        HttpLimits(max_body_size=-1)


# -- chunked bodies ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "size"),
    [
        (b"3\r\n", 3),
        (b"00a\r\n", 10),
        (b"3;name\r\n", 3),
        (b"3;name=value\r\n", 3),
        (b'3;name="quoted \\" value"\r\n', 3),
        (b"3; a = b ;c\r\n", 3),
        (b"F" * 20 + b"\r\n", int("F" * 20, 16)),
    ],
)
def test_valid_chunk_lines(line: bytes, size: int) -> None:
    assert chunk_line(line + b"data", 0, DEFAULT_LIMITS, 0) == (size, len(line))


@pytest.mark.parametrize(
    "line",
    [
        b"zz\r\n",
        b"\r\n",
        b"3 \r\n",
        b"3 ;a\r\n",
        b"3;a \r\n",
        b"3\t\r\n",
        b"-3\r\n",
        b"0x3\r\n",
        b"+3\r\n",
        b"3;\r\n",
        b"3;a=\r\n",
        b"3;a\rb\r\n",
        b"3;a=b\rc\r\n",
        b"3;a=\x00\r\n",
        b'3;a="\x01"\r\n',
        b'3;a="unterminated\r\n',
        b"3;a b\r\n",
        b"3\n",
        b"3;a\n",
        b"1" * 21 + b"\r\n",
    ],
)
def test_invalid_chunk_lines(line: bytes) -> None:
    with pytest.raises(h11.RemoteProtocolError) as caught:
        chunk_line(line + b"data", 0, DEFAULT_LIMITS, 0)
    assert caught.value.error_status_hint == 400


def test_chunk_line_limit_holds_before_the_line_ends() -> None:
    limits = HttpLimits(max_chunk_line=16)
    assert chunk_line(b"3;" + b"a" * 14 + b"\r\n", 0, limits, 0) == (3, 18)
    assert chunk_line(b"3;" + b"a" * 14 + b"\r", 0, limits, 0) is None
    with pytest.raises(h11.RemoteProtocolError, match="over 16 bytes"):
        chunk_line(b"3;" + b"a" * 15 + b"\r\n", 0, limits, 0)
    with pytest.raises(h11.RemoteProtocolError, match="over 16 bytes"):
        chunk_line(b"3;" + b"a" * 40, 0, limits, 0)


def test_chunk_sizes_count_against_the_body_limit() -> None:
    limits = HttpLimits(max_body_size=10)
    assert chunk_line(b"4\r\n", 0, limits, 6) == (4, 3)
    with pytest.raises(h11.RemoteProtocolError) as caught:
        chunk_line(b"5\r\n", 0, limits, 6)
    assert caught.value.error_status_hint == 413


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (b"\r\n", ACCEPTED),
        (b"X-Sum: 5\r\nX-B: c\r\n\r\n", ACCEPTED),
        (b"Content-Length: 5\r\n\r\n", 400),
        (b"Transfer-Encoding: chunked\r\n\r\n", 400),
        (b"Host: other\r\n\r\n", 400),
        (b"Trailer: x\r\n\r\n", 400),
        (b"Connection: close\r\n\r\n", 400),
        (b"X-T: a\r\n b\r\n\r\n", 400),
        (b"X T: a\r\n\r\n", 400),
        (b"X-T: a\rb\r\n\r\n", 400),
        (b"X: y\n\n", 400),
        (b"".join(b"X-%d: v\r\n" % n for n in range(101)) + b"\r\n", 431),
        (b"X: " + b"v" * 40000 + b"\r\n\r\n", 431),
    ],
    ids=[
        "none",
        "two",
        "content-length",
        "transfer-encoding",
        "host",
        "trailer",
        "connection",
        "obs-fold",
        "bad-name",
        "bare-cr",
        "bare-lf",
        "too-many",
        "too-large",
    ],
)
def test_trailers(block: bytes, expected: int) -> None:
    try:
        end = trailers_end(block, 0)
        assert end == len(block)
        check_trailers(block, 0, end, DEFAULT_LIMITS)
    except h11.RemoteProtocolError as exc:
        assert exc.error_status_hint == expected
    else:
        assert expected == ACCEPTED


def test_trailers_end_like_h11_and_refuse_a_bare_lf_first() -> None:
    assert trailers_end(b"X: y\r\n", 0) == -1
    assert trailers_end(b"X: y\r\n\r\nGET", 0) == 8
    with pytest.raises(h11.RemoteProtocolError):
        trailers_end(b"\nGET", 0)


def feed(body: bytes, pieces: int, limits: HttpLimits = DEFAULT_LIMITS) -> ChunkedBodyCheck:
    check = ChunkedBodyCheck(limits)
    size = max(1, -(-len(body) // pieces))
    for at in range(0, len(body), size):
        check.feed(body[at : at + size])
    return check


@pytest.mark.parametrize("pieces", [1, 2, 5, 10_000])
def test_body_check_follows_a_valid_body_and_ignores_what_follows(pieces: int) -> None:
    body = b"3;x=y\r\nabc\r\n10\r\n" + b"z" * 16 + b"\r\n0\r\nX-Sum: 19\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    check = feed(body, pieces)
    assert check.done
    assert check.error is None


@pytest.mark.parametrize("pieces", [1, 2, 5, 10_000])
@pytest.mark.parametrize(
    ("body", "after", "status"),
    [
        (b"3\r\nabc\r\nzz\r\n", 3, 400),
        (b"3\r\nabcX\r\n", 3, 400),
        (b"3;a\rb\r\nabc\r\n0\r\n\r\n", 0, 400),
        (b"2\r\nab\r\n3 \r\nabc\r\n0\r\n\r\n", 2, 400),
        (b"2\r\nab\r\n0\r\nContent-Length: 9\r\n\r\n", 2, 400),
        (b"2\r\nab\r\n0\r\n\n", 2, 400),
        (b"8\r\nabcdefgh\r\n9\r\n", 8, 413),
        (b"4;" + b"e" * 5000 + b"\r\nabcd\r\n", 0, 400),
    ],
    ids=[
        "bad-size",
        "bad-footer",
        "bare-cr-ext",
        "space-after-size",
        "cl-trailer",
        "bare-lf-end",
        "limit",
        "long",
    ],
)
def test_body_check_holds_the_error_after_the_bytes_before_it(
    body: bytes, after: int, status: int, pieces: int
) -> None:
    check = feed(body, pieces, HttpLimits(max_body_size=16))
    assert check.error is not None
    assert (check.error_after, check.error.error_status_hint) == (after, status)
    assert check.done
    check.feed(b"more")  # nothing more is looked at
    assert check.error_after == after


def test_body_check_waits_for_an_incomplete_body() -> None:
    check = feed(b"3\r\nab", 1)
    assert not check.done
    check.feed(b"c\r\n0\r\n")
    assert not check.done
    check.feed(b"\r\n")
    assert check.done and check.error is None
