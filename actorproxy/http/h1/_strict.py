"""The strict checks on requests from clients, in front of both codecs: what the proxy refuses, and with what.

h11 (and llhttp) accept what a proxy must not forward: folded lines, control characters, repeated
Content-Length, a head larger than their buffer limit when it arrives in one read, a bare CR in a chunk
extension, framing fields in trailers. Two parsers that disagree on where a message ends are how requests
are smuggled, so a request is forwarded only when its framing has one reading.

Rules:
- Pure and sans-IO: functions over the bytes a codec has buffered (`buf[pos:end]`, no copy) and over the
  fields it parsed. A refusal raises h11's `RemoteProtocolError` with the status to answer as its
  `error_status_hint`, so the codecs turn it into `ProtocolError` as they do h11's own; the connection is
  closed after the answer.
- Everything accepted here is accepted by h11 with the same reading (one Host, one Content-Length of plain
  digits, Transfer-Encoding exactly `chunked`), so neither codec refuses or reframes what passed.
- Limits (`HttpLimits`) hold whatever size the reads come in: they are checked on what is buffered while a
  head is incomplete and again on the complete head, scanning each byte once (`HeadScanner`).

What is refused (RFC 9110 / RFC 9112 sections):
- 414: a request line longer than `max_request_line` (RFC 9112 §3, RFC 9110 §15.5.15).
- 431: a head larger than `max_header_bytes` or with more than `max_header_count` field lines
  (RFC 6585 §5); trailers count against the same limits.
- 400, the head's grammar: a line not ended by CRLF (a bare CR, or a bare LF, RFC 9112 §2.2); a request line
  that is not `token SP request-target SP HTTP-version` (§3); a field name that is empty, not a token or
  followed by whitespace before its colon (§5.1); NUL or any control character other than HTAB in a value
  (RFC 9110 §5.5); obs-fold (RFC 9112 §5.2).
- 505: a version other than HTTP/1.0 and HTTP/1.1 (RFC 9110 §15.6.6; minor versions above 1 are refused
  rather than read as 1.1, since none exists and a parser behind us may read them otherwise).
- 400, Host (RFC 9110 §7.2, RFC 9112 §3.2): missing or repeated, whatever the version (the request goes
  upstream as HTTP/1.1, where it is mandatory); not `uri-host [":" port]`; an absolute-form target whose
  authority names another host or port (§3.2.2 lets a proxy prefer the target; refusing leaves no choice of
  which one an upstream believes).
- 400, the target (RFC 9112 §3.2): origin-form, or absolute-form with `http`/`https`, a host and no
  userinfo (RFC 9110 §4.2.4); authority-form (`host:port`) for CONNECT and only for it; `*` only for
  OPTIONS; a fragment never (RFC 9110 §4.2.5: not sent in a request).
- Framing (RFC 9112 §6): 400 for Content-Length together with Transfer-Encoding (§6.1, §6.3), more than one
  Content-Length field or a value other than plain digits (a list, a sign, spaces, over 20 digits; RFC
  9110 §8.6), Transfer-Encoding on HTTP/1.0 (§6.1), Transfer-Encoding whose final coding is not `chunked`
  or that applies it twice (§6.3: the length cannot be determined); 501 for another coding before
  `chunked` (§6.1: the proxy understands only chunked); 413 for a Content-Length over `max_body_size`.
- 400 for a TRACE with content (RFC 9110 §9.3.8).
- 417 for an expectation other than `100-continue` (RFC 9110 §10.1.1).
- Chunked bodies: see `_strictbody`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final

import h11

from actorproxy.config import DEFAULT_LIMITS, HttpLimits

__all__ = ["HeadScanner"]


# -- the grammar (RFC 9110 §5.5, §5.6.2; RFC 9112 §2.2, §3, §5, §7.1) ----------------------------------------

_TCHAR = rb"[-!#$%&'*+.^_`|~0-9A-Za-z]"
# A field line: a token, its colon, then OWS, the value and OWS, which together are any run of SP, HTAB,
# VCHAR and obs-text (RFC 9110 §5.5: no NUL, CR, LF or other control character). Possessive quantifiers:
# every line matches one way, so a refused head costs one pass, not a backtracking search.
_FIELD_LINE = rb"%s++:[\t\x20-\x7e\x80-\xff]*+\r\n" % _TCHAR
_HEAD_RE: Final = re.compile(
    rb"(%s++) ([\x21-\x7e]++) HTTP/([0-9])\.([0-9])\r\n(?:%s)*+\r\n" % (_TCHAR, _FIELD_LINE)
)
_FIELDS_RE: Final = re.compile(rb"(?:%s)*+\r\n" % _FIELD_LINE)
_TOKEN_RE: Final = re.compile(rb"%s+" % _TCHAR)
_CTL_RE: Final = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 §7.2 and RFC 3986 §3.2.2: uri-host [ ":" port ], as text (field values are decoded as latin-1).
_HOST_RE: Final = re.compile(
    r"(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|(?:[0-9A-Za-z._~!$&'()*+,;=-]|%[0-9A-Fa-f]{2})*)(?::([0-9]{0,5}))?"
)

# The fields the semantic checks read; a codec hands over these, in order, as (lowercase name, value).
CHECKED_FIELDS: Final = frozenset({"host", "content-length", "transfer-encoding", "expect"})
_FRAMING_AND_EXPECT: Final = CHECKED_FIELDS - {"host"}
_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
# h11's CONTENT_LENGTH_MAX_DIGITS: longer is refused, whatever the digits.
_MAX_LENGTH_DIGITS: Final = 20


def _refuse(reason: str, status: int = 400) -> h11.RemoteProtocolError:
    return h11.RemoteProtocolError(reason, error_status_hint=status)


# -- the head ------------------------------------------------------------------------------------------------


class HeadScanner:
    """Finds where a request head ends in a codec's buffer, holding the limits on what is buffered so far.

    A codec calls `scan` after every read while a head is incomplete and `reset` before the next head; each
    byte is looked at once however the head is split into reads, so a head trickled byte by byte costs no
    more than one that arrives whole. Offsets are kept relative to the head's start, so a codec may move
    the unread bytes to the front of its buffer between calls.

    A head that arrives whole in its first read (the usual case) is matched by the grammar at once: a
    well-formed head ends at its first empty line, which is where h11 ends it, and the match is kept in
    `match` for `check_head`, so the bytes are scanned once for both.

    Attributes:
        match: the grammar's match of the head, when the head arrived whole and well formed; else None.
    """

    __slots__ = ("_counted", "_line", "_lines", "_scanned", "limits", "match")

    def __init__(self, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self.reset()

    def reset(self) -> None:
        """Forget the head scanned so far (the next one starts)."""
        self._scanned = 0  # bytes after the start known not to hold the end of the head
        self._counted = 0  # bytes after the start whose LFs are in `_lines`
        self._lines = 0  # LFs in the head so far: its line count
        self._line = -1  # where the request line's LF is, once seen
        self.match: re.Match[bytes] | None = None

    def scan(self, buf: bytes | bytearray, pos: int) -> int:
        """Where the head starting at `buf[pos]` (at least one byte) ends, past its empty line; -1 while
        it is incomplete.

        The end is found as h11 finds it (the first LF, optional CR, LF), so a codec reads the same head;
        whether its lines end in CRLF is for `check_head` to say.

        Raises:
            h11.RemoteProtocolError: no request line (400), the request line or the head over its limit
                (414, 431), too many field lines (431).
        """
        limits = self.limits
        if not self._counted:
            # First look at this head: whole and well formed, it is matched in one pass. Only here: a
            # head that grows over many reads is never matched from its start again.
            match = _HEAD_RE.match(buf, pos)
            if match is not None:
                end = match.end()
                if match.end(4) - pos > limits.max_request_line:
                    raise _refuse(f"request line over {limits.max_request_line} bytes", 414)
                if end - pos > limits.max_header_bytes:
                    raise _refuse(f"request head over {limits.max_header_bytes} bytes", 431)
                if buf.count(b"\n", pos, end) - 2 > limits.max_header_count:
                    raise _refuse(f"more than {limits.max_header_count} header fields", 431)
                self.match = match
                return end
        first = buf[pos]
        if first == 10 or (first == 13 and buf[pos + 1 : pos + 2] == b"\n"):
            raise _refuse("no request line received")
        if first < 0x21:  # h11's early refusal: a TLS handshake, a stray control byte
            raise _refuse("illegal request line")
        start = pos + max(0, self._scanned - 2)
        crlf = buf.find(b"\n\r\n", start)
        lf = buf.find(b"\n\n", start, len(buf) if crlf < 0 else crlf + 1)
        end = lf + 2 if lf >= 0 else crlf + 3 if crlf >= 0 else -1
        stop = end if end >= 0 else len(buf)
        if self._line < 0:
            newline = buf.find(b"\n", pos + self._counted, stop)
            if newline >= 0:
                self._line = newline - pos
                line = self._line - (1 if newline > pos and buf[newline - 1] == 13 else 0)
                if line > limits.max_request_line:
                    raise _refuse(f"request line over {limits.max_request_line} bytes", 414)
            elif stop - pos > limits.max_request_line + 1:  # + 1: its CR may be the last byte so far
                raise _refuse(f"request line over {limits.max_request_line} bytes", 414)
        if stop - pos > limits.max_header_bytes:
            raise _refuse(f"request head over {limits.max_header_bytes} bytes", 431)
        self._lines += buf.count(b"\n", pos + self._counted, stop)
        self._counted = stop - pos
        # The request line's LF, and the empty line's once the head is complete, are not field lines.
        fields = self._lines - (2 if end >= 0 else 1)
        if fields > limits.max_header_count:
            raise _refuse(f"more than {limits.max_header_count} header fields", 431)
        if end < 0:
            self._scanned = len(buf) - pos
        return end


def check_head(
    buf: bytes | bytearray, pos: int, end: int, match: re.Match[bytes] | None = None
) -> tuple[str, str, str, int]:
    """The head `buf[pos:end]` against the grammar (RFC 9112 §2.2, §3, §5; RFC 9110 §5.5) and the version.

    Args:
        buf, pos, end: the buffered bytes and where the head starts and ends (`HeadScanner.scan`).
        match: the scanner's match of this head (`HeadScanner.match`), if it made one.

    Returns:
        The method, the request target, the version (``"1.0"`` or ``"1.1"``), and where the field lines
        start in `buf`.

    Raises:
        h11.RemoteProtocolError: 400 for a grammar violation (the reason names it), 505 for the version.
    """
    if match is None:
        match = _HEAD_RE.fullmatch(buf, pos, end)
    if match is None:
        raise _refuse(_grammar_violation(bytes(buf[pos:end])))
    major, minor = match[3], match[4]
    if major != b"1" or minor not in (b"0", b"1"):
        version = f"{major.decode()}.{minor.decode()}"
        raise _refuse(f"HTTP/{version} is not supported", 505)
    return (
        match[1].decode("latin-1"),
        match[2].decode("latin-1"),
        "1.1" if minor == b"1" else "1.0",
        match.end(4) + 2,
    )


def _grammar_violation(head: bytes) -> str:
    """Why a head the grammar refuses is refused (the slow path: only for refused heads)."""
    body = head[:-4] if head.endswith(b"\r\n\r\n") else head
    lines = body.split(b"\r\n")
    for number, line in enumerate(lines):
        what = "request line" if number == 0 else "field line"
        if b"\r" in line:
            return f"bare CR in a {what}"
        if b"\n" in line:
            return f"bare LF in a {what} (lines end with CRLF)"
        if b"\x00" in line:
            return f"NUL in a {what}"
        if number == 0:
            continue
        if line[:1] in (b" ", b"\t"):
            return "obs-fold (a field line continued on the next line)"
        name, colon, _ = line.partition(b":")
        if not colon:
            return f"field line without a colon: {line[:64]!r}"
        if not name:
            return "empty field name"
        if name[-1:] in (b" ", b"\t"):
            return f"whitespace between the field name {name.strip()[:64]!r} and its colon"
        if _TOKEN_RE.fullmatch(name) is None:
            return f"invalid field name {name[:64]!r}"
        if _CTL_RE.search(line) is not None:
            return f"control character in the value of {name[:64]!r}"
    return f"invalid request line: {lines[0][:128]!r}"


def noted_fields(buf: bytes | bytearray, start: int, end: int) -> list[tuple[str, str]]:
    """The `CHECKED_FIELDS` among the field lines `buf[start:end]` of a head that passed `check_head`, as
    `(lowercase name, value)` in order, read as a codec reads them (OWS around the value dropped)."""
    noted = []
    for line in bytes(buf[start : end - 2]).split(b"\r\n"):
        name, _, value = line.partition(b":")
        if 4 <= len(name) <= 17:  # the lengths of the names in CHECKED_FIELDS
            lower = name.lower().decode("latin-1")
            if lower in CHECKED_FIELDS:
                noted.append((lower, value.strip(b" \t").decode("latin-1")))
    return noted


def check_request(
    method: str, target: str, version: str, noted: Iterable[tuple[str, str]], limits: HttpLimits
) -> None:
    """The request's routing, framing and expectations, from its request line and `CHECKED_FIELDS`.

    Args:
        method, target, version: from `check_head`.
        noted: the fields in `CHECKED_FIELDS` (others are ignored), in order, as `(lowercase name, value)`,
            as received (a codec passes them before it normalises Content-Length or Transfer-Encoding).
        limits: for `max_body_size`.

    Raises:
        h11.RemoteProtocolError: the status (400, 413, 417, 501) and the reason.
    """
    host: str | None = None
    framing: list[tuple[str, str]] | None = None
    for item in noted:
        name = item[0]
        if name == "host":
            if host is not None:
                raise _refuse("more than one Host header")
            host = item[1]
        elif name in _FRAMING_AND_EXPECT:
            if framing is None:
                framing = []
            framing.append(item)
    if host is None:
        raise _refuse("missing Host header")
    if _HOST_RE.fullmatch(host) is None:
        raise _refuse(f"invalid Host: {host[:128]!r}")
    if target[0] != "/" or method == "CONNECT" or "#" in target:
        _check_target(method, target, host)
    if framing is not None:
        _check_framing(method, version, framing, limits)


def _check_target(method: str, target: str, host: str) -> None:
    if "#" in target:
        raise _refuse("a fragment in the request target")
    if method == "CONNECT":
        match = _HOST_RE.fullmatch(target)
        if match is None or not match[1] or target.startswith(":"):
            raise _refuse(f"invalid CONNECT target {target[:128]!r} (host:port)")
        return
    if target[0] == "/":
        return
    if target == "*":
        if method != "OPTIONS":
            raise _refuse("the asterisk-form target is for OPTIONS only")
        return
    scheme, sep, rest = target.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        raise _refuse(f"invalid request target {target[:128]!r}")
    cut = min((i for i in (rest.find("/"), rest.find("?")) if i >= 0), default=len(rest))
    authority = rest[:cut]
    if "@" in authority:
        raise _refuse("userinfo in the request target (RFC 9110 §4.2.4)")
    origin = _origin(authority, scheme)
    if _HOST_RE.fullmatch(authority) is None or not origin[0]:
        raise _refuse(f"invalid authority in the request target: {authority[:128]!r}")
    if origin != _origin(host, scheme):
        raise _refuse(f"the target's authority {authority[:128]!r} is not the Host {host[:128]!r}")


def _check_framing(method: str, version: str, fields: list[tuple[str, str]], limits: HttpLimits) -> None:
    lengths = [value for name, value in fields if name == "content-length"]
    codings = [value for name, value in fields if name == "transfer-encoding"]
    if lengths:
        _check_length(lengths, codings, limits)
    if codings:
        _check_codings(codings, version)
    if method == "TRACE" and (codings or (lengths and lengths[0].strip("0"))):
        raise _refuse("a TRACE request has no content (RFC 9110 §9.3.8)")
    for name, value in fields:
        if name != "expect":
            continue
        for item in value.split(","):
            expectation = item.strip(" \t").lower()
            if expectation and expectation != "100-continue":
                raise _refuse(f"unknown expectation {expectation[:64]!r}", 417)


def _origin(authority: str, scheme: str) -> tuple[str, str]:
    """Host and port, as compared: the host in lowercase, the scheme's default port filled in."""
    host, _, port = authority.rpartition(":") if not authority.endswith("]") else (authority, "", "")
    if not host:  # no colon: the whole is the host
        host, port = authority, ""
    return host.lower(), port or _DEFAULT_PORTS[scheme]


def _check_length(lengths: list[str], codings: list[str], limits: HttpLimits) -> None:
    if codings:
        raise _refuse("both Content-Length and Transfer-Encoding (RFC 9112 §6.3)")
    if len(lengths) > 1:
        raise _refuse("more than one Content-Length header")
    length = lengths[0]
    if not (length.isascii() and length.isdigit()) or len(length) > _MAX_LENGTH_DIGITS:
        raise _refuse(f"Content-Length is not a number of bytes: {length[:64]!r}")
    limit = limits.max_body_size
    if limit is not None and int(length) > limit:
        raise _refuse(f"Content-Length {int(length)} over the {limit} bytes allowed", 413)


def _check_codings(codings: list[str], version: str) -> None:
    if version != "1.1":
        raise _refuse(f"Transfer-Encoding in an HTTP/{version} request (RFC 9112 §6.1)")
    items = [item.strip(" \t").lower() for value in codings for item in value.split(",")]
    if items[-1] != "chunked" or items.count("chunked") > 1 or "" in items:
        raise _refuse(
            f"Transfer-Encoding {', '.join(codings)[:128]!r}: chunked must be the final coding, once"
        )
    if len(items) > 1:
        raise _refuse(f"unsupported transfer coding {items[0][:64]!r}", 501)
