"""HTTP/1.1's rules as h11 applies them, in pure functions: the grammar, field checks, framing, serialisation.

Rules:
- No I/O and no parser state: everything here takes text or bytes and returns them, or raises h11's own
  `RemoteProtocolError` / `LocalProtocolError` with h11's messages, so both codecs accept and refuse the same
  heads and say why in the same words.
- The grammar is h11's (h11/_abnf.py): a token for a name or method, any digit.digit for a version, field
  values without NUL or whitespace at their ends; obs-fold is joined with a space (RFC 9112 §5.2).
- Framing fields follow h11's normalize_and_validate: one Content-Length value (repeats of the same value
  dropped), Transfer-Encoding only as a single `chunked`, else 501 (RFC 9112 §6.1).
- Fields we write are validated and serialised as h11's write_headers puts them: Host first, then the rest in
  order; a reason phrase with CR, LF or NUL is refused (h11 writes it unchecked).
- Comma lists are read twice over, as the two codecs did: `_comma_items` is h11's get_comma_header (bytes
  strip and lower), `_lists` the reference codec's own token check (str strip and lower).
"""

from __future__ import annotations

import http
import re
from collections.abc import Iterable
from typing import Final

import h11

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, ResponseHeader

# -- h11's grammar (h11/_abnf.py), so that both codecs accept and refuse the same bytes ----------------------

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VCHAR = rb"[^\x00\s]"  # VCHAR / obs-text, plus the control characters h11 lets through
_FIELD_VALUE = rb"(?:" + _FIELD_VCHAR + rb"+(?:[ \t]+" + _FIELD_VCHAR + rb"+)*)?"
_HEADER_FIELD_RE = re.compile(rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*")
_OBS_FOLD_RE = re.compile(rb"[ \t]+")
_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_STATUS_LINE_RE = re.compile(rb"HTTP/([0-9]\.[0-9]) ([0-9]{3})(?: ((?:[ \t]|" + _FIELD_VCHAR + rb")*))?")
# h11 caps the chunk size at 20 hex digits and takes any chunk extension.
_CHUNK_HEADER_RE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
# The same rules for fields we write, on text: bytes' \s is the class spelled out here, and a character
# beyond latin-1 has no byte to be (h11's codec refuses it when it encodes the head).
_NAME_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_VCHAR_TEXT = r"[^\x00\t\n\x0b\x0c\r \u0100-\U0010ffff]"
_VALUE_RE = re.compile(r"(?:" + _VCHAR_TEXT + r"+(?:[ \t]+" + _VCHAR_TEXT + r"+)*)?")
# Fields to write, "name NUL value CR LF" each (NUL cannot be in a valid name or value, so a name that holds
# ": " cannot pass for a shorter one): a token, and a value that starts and ends with a visible character.
_FIELD_LINES_RE = re.compile(
    r"(?:[-!#$%&'*+.^_`|~0-9a-zA-Z]+\x00(?:[^\x00\t\n\x0b\x0c\r ][^\x00\n\x0b\x0c\r]*(?<![ \t]))?\r\n)*"
)
# Fields as `trust_if_writable` checks them, joined as above: a token, and a value of visible characters
# (obs-text included) with inner spaces or tabs. Stricter than `_FIELD_LINES_RE`: HTTP/2 refuses the
# control characters HTTP/1.1 lets by (RFC 9113 §8.2.1), so what passes is valid for every codec.
_VISIBLE_TEXT = r"[\x21-\x7e\x80-\xff]"
_WRITABLE_LINES_RE = re.compile(
    r"(?:[-!#$%&'*+.^_`|~0-9a-zA-Z]+\x00(?:"
    + _VISIBLE_TEXT
    + r"(?:[\t \x21-\x7e\x80-\xff]*"
    + _VISIBLE_TEXT
    + r")?)?\r\n)*"
)
_DIGITS_RE = re.compile(r"[0-9]+")
_METHOD_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
# RFC 9110 §9's methods and PATCH (RFC 5789): tokens, so a request with one needs no match of the method.
_STANDARD_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"}
)
_TARGET_RE = re.compile(r"[\x21-\x7e]+")
# What bytes.strip() removes (h11 splits comma lists on bytes); str.strip() would also take \x85 and \xa0.
_WS = " \t\n\r\x0b\x0c"
# h11's CONTENT_LENGTH_MAX_DIGITS.
_MAX_LENGTH_DIGITS = 20

# Body framings (h11's _body_framing).
_LENGTH: Final = 0
_CHUNKED: Final = 1
_UNTIL_EOF: Final = 2


def _lines(block: bytes | bytearray) -> list[bytes | bytearray]:
    """A head's lines as h11 splits them: on LF, one CR dropped from each, without the final empty line."""
    lines = [line[:-1] if line.endswith(b"\r") else line for line in block.split(b"\n")]
    del lines[-2:]
    return lines


def _h11_fields(lines: Iterable[bytes | bytearray]) -> list[tuple[str, str]]:
    """h11's reading of header lines: obs-fold joined with a space (RFC 9112 §5.2), each line matched."""
    unfolded: list[bytes | bytearray] = []
    for line in lines:
        fold = _OBS_FOLD_RE.match(line)
        if fold is None:
            unfolded.append(line)
        elif not unfolded:
            raise h11.RemoteProtocolError("continuation line at start of headers")
        else:
            unfolded[-1] = bytes(unfolded[-1]) + b" " + bytes(line[fold.end() :])
    pairs = []
    for line in unfolded:
        match = _HEADER_FIELD_RE.fullmatch(line)
        if match is None:
            raise h11.RemoteProtocolError(f"illegal header line: {bytes(line)!r}")
        pairs.append((match[1].decode("latin-1"), match[2].decode("latin-1")))
    return pairs


def _framing_fields(pairs: list[tuple[str, str]], error: type[h11.ProtocolError]) -> list[tuple[str, str]]:
    """h11's normalize_and_validate for Content-Length and Transfer-Encoding.

    One Content-Length value (repeats of the same value dropped, conflicts refused), and Transfer-Encoding
    only as a single `chunked` (lowercased), else 501.
    """
    out: list[tuple[str, str]] = []
    seen_length: str | None = None
    saw_transfer_encoding = False
    for name, value in pairs:
        lower = name.lower()
        if lower == "content-length":
            lengths = {length.strip(_WS) for length in value.split(",")}
            if len(lengths) != 1:
                raise error("conflicting Content-Length headers")
            length = lengths.pop()
            if _DIGITS_RE.fullmatch(length) is None or len(length) > _MAX_LENGTH_DIGITS:
                raise error("bad Content-Length")
            if seen_length is None:
                seen_length = length
                out.append((name, length))
            elif seen_length != length:
                raise error("conflicting Content-Length headers")
        elif lower == "transfer-encoding":
            # RFC 9112 §6.1: a server that does not understand a transfer coding answers 501.
            if saw_transfer_encoding:
                raise error("multiple Transfer-Encoding headers", error_status_hint=501)
            coding = _ascii_lower(value)
            if coding != "chunked":
                raise error("Only Transfer-Encoding: chunked is supported", error_status_hint=501)
            saw_transfer_encoding = True
            out.append((name, coding))
        else:
            out.append((name, value))
    return out


def _ascii_lower(text: str) -> str:
    """bytes.lower() on latin-1 text: h11 lowercases bytes, which leaves non-ASCII letters alone."""
    return text.lower() if text.isascii() else text.encode("latin-1").lower().decode("latin-1")


def _comma_items(values: Iterable[str]) -> list[str]:
    """h11's get_comma_header: the lowercased, stripped, non-empty items of the values of one field."""
    return [item for value in values for raw in _ascii_lower(value).split(",") if (item := raw.strip(_WS))]


def _lists(values: Iterable[str], token: str) -> bool:
    """The reference codec's `_has_token` over the values of one field (its str strip and lower)."""
    return any(item.strip().lower() == token for value in values for item in value.split(","))


# -- writing heads -------------------------------------------------------------------------------------------


class _OutFields:
    """Fields we write, validated and normalised as h11 does (normalize_and_validate), in h11's order.

    Args:
        pairs: the fields, in order.
        lowers: their names lowercased, when the caller has them (a parsed head's); else computed here.

    Attributes:
        pairs: the fields, in order (Content-Length and Transfer-Encoding values normalised).
        lowers: their names, lowercased.

    Raises:
        h11.LocalProtocolError: an invalid name or value, or framing fields h11 refuses.
        UnicodeEncodeError: a name or value beyond latin-1.
    """

    __slots__ = ("_block", "lowers", "pairs")

    def __init__(
        self, pairs: list[tuple[str, str]], lowers: list[str] | None = None, *, trusted: bool = False
    ) -> None:
        if lowers is None:
            lowers = [name.lower() for name, _ in pairs]
        block: bytes | None
        if trusted:
            # Valid as they are (a parsed head's, and fields the codec adds: see `Headers`): no check, and
            # their framing fields are normalised already.
            block = ("\r\n".join(map(": ".join, pairs)) + "\r\n").encode("latin-1") if pairs else b""
        else:
            block = _checked_block(pairs)
            if _framing_to_normalise(pairs, lowers):
                pairs = _framing_fields(pairs, h11.LocalProtocolError)
                lowers = [name.lower() for name, _ in pairs]
                block = None
        self.pairs = pairs
        self.lowers = lowers
        if "host" in lowers:
            hosts = lowers.count("host")
            if lowers[:hosts].count("host") != hosts:
                block = None  # h11 writes Host first (RFC 9112 §3.2: a user agent SHOULD)
        self._block = block

    def lists(self, lower: str, item: str) -> bool:
        """Whether `item` (lowercase) is in `values(lower)`, without splitting a list that cannot hold it."""
        lowers = self.lowers
        if lower not in lowers:
            return False
        pairs = self.pairs
        if lowers.count(lower) == 1:  # the usual case: one field (a response's `Connection`)
            found = [pairs[lowers.index(lower)][1]]
        else:
            found = [pairs[i][1] for i, name in enumerate(lowers) if name == lower]
        # Values that do not hold `item` even as a substring of their lowercase cannot list it.
        return item in ",".join(found).lower() and item in _comma_items(found)

    def values(self, lower: str) -> list[str]:
        """h11's get_comma_header: the lowercased items of the fields called `lower`."""
        lowers = self.lowers
        if lower not in lowers:
            return []
        pairs = self.pairs
        return _comma_items(pairs[i][1] for i, name in enumerate(lowers) if name == lower)

    def set(self, lower: str, values: Iterable[str]) -> None:
        """h11's set_comma_header: drop the fields called `lower`, append one per value, title-cased, last."""
        keep = [i for i, name in enumerate(self.lowers) if name != lower]
        name = lower.title()
        self.pairs = [self.pairs[i] for i in keep] + [(name, value) for value in values]
        self.lowers = [self.lowers[i] for i in keep] + [lower] * (len(self.pairs) - len(keep))
        self._block = None

    def framing(self, method: str | None, status: int | None) -> tuple[int, int]:
        """h11's _body_framing: (framing, Content-Length) for a response (`status`) or a request (None)."""
        if status is not None and (
            status in (204, 304) or method == "HEAD" or (method == "CONNECT" and 200 <= status < 300)
        ):
            return _LENGTH, 0
        lowers = self.lowers
        if "transfer-encoding" in lowers:
            return _CHUNKED, 0
        if "content-length" in lowers:
            return _LENGTH, int(self.pairs[lowers.index("content-length")][1])
        return (_LENGTH, 0) if status is None else (_UNTIL_EOF, 0)

    def serialised(self) -> bytes:
        """The fields as h11's write_headers puts them on the wire: Host first, then the rest, in order."""
        block = self._block
        if block is None:
            order = [pair for pair, lower in zip(self.pairs, self.lowers, strict=True) if lower == "host"]
            order += [pair for pair, lower in zip(self.pairs, self.lowers, strict=True) if lower != "host"]
            block = self._block = "".join([f"{name}: {value}\r\n" for name, value in order]).encode("latin-1")
        return block


def _checked_block(pairs: list[tuple[str, str]]) -> bytes:
    """The fields as they go on the wire, once every name and value is checked.

    One match over the fields joined checks them all, once the count of LFs shows that each line is one
    field; with NUL turned into ": " the text is what goes on the wire. It is joined in C (`map` of
    `"\x00".join` over the pairs): no Python frame per field.

    Raises:
        h11.LocalProtocolError: an invalid name or value.
        UnicodeEncodeError: a name or value beyond latin-1.
    """
    try:
        text = "\r\n".join(map("\x00".join, pairs)) + "\r\n" if pairs else ""
    except TypeError:  # a name or value that is not text (typed as str, but not checked when set)
        text = "".join([f"{name}\x00{value}\r\n" for name, value in pairs])
    if text.count("\n") != len(pairs) or _FIELD_LINES_RE.fullmatch(text) is None:
        _refuse(pairs)
    return text.replace("\x00", ": ").encode("latin-1")


def _framing_to_normalise(pairs: list[tuple[str, str]], lowers: list[str]) -> bool:
    """Whether Content-Length / Transfer-Encoding need h11's normalisation (`_framing_fields`): anything but
    at most one Content-Length of plain digits, or one Transfer-Encoding that is exactly `chunked`."""
    lengths = lowers.count("content-length")
    codings = lowers.count("transfer-encoding")
    if not lengths and not codings:
        return False
    if lengths > 1 or codings > 1:
        return True
    if lengths:
        value = pairs[lowers.index("content-length")][1]
        if not (value.isascii() and value.isdigit()) or len(value) > _MAX_LENGTH_DIGITS:
            return True
    return bool(codings) and pairs[lowers.index("transfer-encoding")][1] != "chunked"


def trust_if_writable(headers: Headers) -> bool:
    """Mark `headers` trusted (written without a check by every codec, see `Headers`) when each field is
    valid to write as it is (`_WRITABLE_LINES_RE`), they have no Transfer-Encoding and at most one
    Content-Length of digits; return whether
    they are trusted now. For headers written many times: a stored response's, checked once."""
    pairs, lowers, trusted = headers._fields()
    if trusted or "transfer-encoding" in lowers or _framing_to_normalise(pairs, lowers):
        return trusted  # a stored head has no Transfer-Encoding: its body is sent with its length
    try:
        text = "\r\n".join(map("\x00".join, pairs)) + "\r\n" if pairs else ""
    except TypeError:  # a name or value that is not text
        return False
    if _WRITABLE_LINES_RE.fullmatch(text) is None:
        return False
    headers._trusted = True
    return True


def _refuse(pairs: list[tuple[str, str]]) -> None:
    """Raise h11's error for the first invalid name or value."""
    for name, value in pairs:
        if _NAME_RE.fullmatch(name) is None:
            raise h11.LocalProtocolError(f"Illegal header name {_wire(name)!r}")
        if _VALUE_RE.fullmatch(value) is None:
            raise h11.LocalProtocolError(f"Illegal header value {_wire(value)!r}")
    raise AssertionError("a field was refused as a whole but passes one by one")


def _latin1(pairs: Iterable[tuple[str, str]]) -> None:
    try:
        for name, value in pairs:
            name.encode("latin-1")
            value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise Error(
            ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context="header not latin-1", cause=exc
        ) from exc


def _is_latin1(pairs: Iterable[tuple[str, str]]) -> bool:
    try:
        _latin1(pairs)
    except Error:
        return False
    return True


def _wire(text: str) -> bytes | str:
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text


def _invalid_head(exc: BaseException) -> Error:
    return Error(ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context=str(exc), cause=exc)


def _has_token(headers: Headers, name: str, token: str) -> bool:
    """Whether a comma-separated header (Connection, Expect) lists `token` (lowercase), in any case."""
    return _lists(headers.get_all(name), token)


# The status lines of the standard reason phrases, ready to write: (reason, line) by status.
_STATUS_LINES: Final = {
    status.value: (status.phrase, f"HTTP/1.1 {status.value} {status.phrase}\r\n".encode("latin-1"))
    for status in http.HTTPStatus
}


def _standard_status_line(header: ResponseHeader) -> bytes | None:
    """The status line to write when the response has its status's standard reason phrase (valid as it
    is), else None: the caller checks (`_check_status_line`) and formats it."""
    known = _STATUS_LINES.get(header.status)
    return known[1] if known is not None and known[0] == header.reason else None


def _check_status_line(header: ResponseHeader) -> None:
    # h11 writes the reason phrase unchecked, so a CR or LF in it would split the response.
    reason = header.reason
    if not 100 <= header.status <= 999 or "\r" in reason or "\n" in reason or "\0" in reason:
        raise Error.explain(
            ErrorType.INVALID_HTTP_HEADER,
            f"invalid status line: {header.status} {reason!r}",
            ErrorSource.INTERNAL,
        )
