"""HTTP/1.1 over a trio stream on llhttp (httptools): `FastServerConnection`, `FastClientConnection`.

Rules:
- The interface and the observable behaviour are those of `ServerConnection` / `ClientConnection` in
  `_codec.py`, which stay the reference: the same heads, body pieces, trailers, errors (type, source, retry,
  status hint), keep-alive and reuse decisions, bytes on the wire and byte counts. Where llhttp and h11
  disagree, h11's verdict is the one given; the codec tests run on both codecs, and a parity test feeds both
  the same malformed input.
- We find where a head ends (h11's rule: the first empty line), count an incomplete head against
  `max_head_size` across reads (431, as h11), and give llhttp only the header block, behind a fixed start
  line. The request or status line is matched with h11's grammar: llhttp knows a fixed list of methods and
  versions, h11 takes any token and any digit.digit. A connection keeps one parser while each head leaves
  it at the start of a message.
- llhttp never sees a body. Bodies are framed here exactly as h11 frames them (Content-Length, chunked with
  trailers, read to EOF), so bytes past a message stay in our buffer for the next cycle or for `detach`, and
  a response to HEAD, 1xx, 204, 304 or a 2xx to CONNECT is bodiless without a parser flag. httptools (0.9)
  has none to set: its HttpResponseParser has no per-request HEAD switch, and llhttp skips a body only when
  on_headers_complete returns 1, a value httptools keeps for upgrades.
- llhttp is stricter than h11 in places (unknown methods, control characters or obs-fold in field values, bare
  LF line ends, a repeated equal Content-Length, Content-Length with Transfer-Encoding): when it refuses a
  head, h11's grammar reads the head again (in Python) and decides. It is laxer in others (whitespace at the
  end of a value, Transfer-Encoding lists or case, a 21-digit Content-Length, Host): those are checked here on
  every head, as h11 checks them.
- Heads we write are validated, normalised and framed by h11's rules (Host first, Content-Length or chunked,
  `Connection: close`), then joined with the first body piece: one bytes join and one stream write per call.
- The protocol state of each side is a few fields mirroring h11's states (`_our`, `_their`); a write the
  state does not allow is an `INTERNAL` `H1_ERROR`, as with h11. Causes chained to our errors are h11's public
  `RemoteProtocolError` / `LocalProtocolError` with h11's messages, so an error reads the same whichever codec
  raised it. No httptools exception leaves this module; `trio.Cancelled` propagates untouched.
"""

from __future__ import annotations

import contextlib
import re
import ssl
from collections.abc import Callable, Iterable
from typing import Final, cast

import h11
import httptools
import trio

from ._codec import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_READ_SIZE,
    ClientConnection,
    ProtocolError,
    ServerConnection,
    _check_status_line,
    _has_token,
)
from ._codecs import Codec
from ._error import Error, ErrorSource, ErrorType, RetryType
from ._header import Headers, RequestHeader, ResponseHeader

__all__ = ["FAST_CODEC", "FastClientConnection", "FastServerConnection"]

# What a broken or closed transport raises (as in `_codec.py`).
_IO_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)

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
# Serialised fields, "name: value\r\n" each: a value starts and ends with a visible character.
_FIELD_LINES_RE = re.compile(
    r"(?:[-!#$%&'*+.^_`|~0-9a-zA-Z]+: (?:[^\x00\t\n\x0b\x0c\r ][^\x00\n\x0b\x0c\r]*(?<![ \t]))?\r\n)*"
)
_DIGITS_RE = re.compile(r"[0-9]+")
_METHOD_RE = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_TARGET_RE = re.compile(r"[\x21-\x7e]+")
# What bytes.strip() removes (h11 splits comma lists on bytes); str.strip() would also take \x85 and \xa0.
_WS = " \t\n\r\x0b\x0c"
# h11's CONTENT_LENGTH_MAX_DIGITS.
_MAX_LENGTH_DIGITS = 20

# llhttp parses only the header block, behind these start lines (see the module rules). A 204 has no body
# whatever its fields say, so a response parser is back at its start after the head, ready for the next.
_REQUEST_START = b"GET / HTTP/1.1\r\n"
_RESPONSE_START = b"HTTP/1.1 204 No Content\r\n"

# Protocol states, h11's names. DONE stands for h11's MUST_CLOSE too: `_keep_alive` tells them apart.
_IDLE: Final = "IDLE"
_SEND_RESPONSE: Final = "SEND_RESPONSE"
_SEND_BODY: Final = "SEND_BODY"
_DONE: Final = "DONE"
_MIGHT_SWITCH: Final = "MIGHT_SWITCH_PROTOCOL"
_SWITCHED: Final = "SWITCHED_PROTOCOL"
_CLOSED: Final = "CLOSED"
_ERROR: Final = "ERROR"

# Body framings (h11's _body_framing).
_LENGTH: Final = 0
_CHUNKED: Final = 1
_UNTIL_EOF: Final = 2


class _Sentinel:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


_NEED_DATA: Final = _Sentinel("NEED_DATA")
_END: Final = _Sentinel("EndOfMessage")
_PAUSED: Final = _Sentinel("PAUSED")
_CONNECTION_CLOSED: Final = _Sentinel("ConnectionClosed")


# -- reading heads -------------------------------------------------------------------------------------------


# Fields the codec looks at, by the length of their name: found while llhttp hands the fields over, so no
# lookup walks the list afterwards.
_NOTED = {b"host", b"expect", b"upgrade", b"connection", b"content-length", b"transfer-encoding"}
_NOTED_LENGTHS = {len(name) for name in _NOTED}


class _Fields:
    """A head's fields, and the ones the codec looks at.

    Attributes:
        pairs: every field, as latin-1 text, in order.
        noted: `(lowercase name, value)` of the fields named in `_NOTED`, in order.
    """

    __slots__ = ("noted", "pairs")

    def __init__(self, pairs: list[tuple[str, str]], noted: list[tuple[bytes, str]]) -> None:
        self.pairs = pairs
        self.noted = noted

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> _Fields:
        noted = [
            (lower, value) for name, value in pairs if (lower := name.lower().encode("latin-1")) in _NOTED
        ]
        return cls(pairs, noted)

    def values(self, name: bytes) -> list[str]:
        """The values of the fields called `name` (one of `_NOTED`), in order."""
        return [value for lower, value in self.noted if lower == name]

    def first(self, name: bytes) -> str | None:
        """The value of the first field called `name` (one of `_NOTED`), or None."""
        for lower, value in self.noted:
            if lower == name:
                return value
        return None

    def framing(self) -> tuple[bool, int]:
        """Chunked, else the Content-Length (-1 without one), as h11 frames a message it reads."""
        if self.first(b"transfer-encoding") is not None:
            return True, 0
        length = self.first(b"content-length")
        return False, -1 if length is None else int(length)

    def normalised(self) -> _Fields:
        """h11's normalize_and_validate of what it reads: Content-Length and Transfer-Encoding checked."""
        check = False
        lengths = chunked = 0
        for lower, value in self.noted:
            if lower == b"content-length":
                lengths += 1
                check = check or lengths > 1 or not (value.isdigit() and value.isascii()) or len(value) > 20
            elif lower == b"transfer-encoding":
                chunked += 1
                check = check or chunked > 1 or value != "chunked"
        if not check:
            return self  # the usual case: nothing to drop or lowercase
        pairs = _framing_fields(self.pairs, h11.RemoteProtocolError)
        return self if pairs == self.pairs else _Fields.of(pairs)


class _FieldSink:
    """llhttp's callback target: collects the fields of one head after another.

    One parser and its sink serve a connection's heads while each head leaves llhttp at the start of the
    next message (measured: creating a parser costs ~1.3 µs, as much as parsing a short head with it).
    """

    __slots__ = ("_kind", "noted", "pairs", "parser", "start")

    def __init__(self, parser: type[httptools.HttpRequestParser | httptools.HttpResponseParser]) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.noted: list[tuple[bytes, str]] = []
        request = parser is httptools.HttpRequestParser
        self.start = _REQUEST_START if request else _RESPONSE_START
        self.parser: httptools.HttpRequestParser | httptools.HttpResponseParser | None = None
        self._kind = parser

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp keeps the whitespace at the end of a value; h11 (OWS, RFC 9110 §5.5) drops it.
        text = value.rstrip(b" \t").decode("latin-1")
        self.pairs.append((name.decode("latin-1"), text))
        if len(name) in _NOTED_LENGTHS:
            lower = name.lower()
            if lower in _NOTED:
                self.noted.append((lower, text))

    def parse(self, buf: bytes | bytearray, begin: int, end: int) -> _Fields:
        """The fields of the header block `buf[begin:end]` (after the start line, through the empty line)."""
        parser = self.parser
        if parser is None:
            parser = self.parser = self._kind(self)
        try:
            parser.feed_data(self.start + buf[begin:end])
        except httptools.HttpParserUpgrade:
            self.parser = None  # Connection: upgrade with Upgrade: a complete head, but a parser paused
        except httptools.HttpParserError:
            # llhttp is stricter here than h11: h11's grammar decides.
            self.parser = None
            self.pairs = []
            self.noted = []
            return _Fields.of(_h11_fields(_lines(buf[begin:end]))).normalised()
        fields = _Fields(self.pairs, self.noted)
        self.pairs = []
        self.noted = []
        if self.parser is not None and not _message_ended(fields, self.start is _REQUEST_START):
            self.parser = None
        return fields.normalised()


def _message_ended(fields: _Fields, request: bool) -> bool:
    """Whether llhttp, fed this head behind our start line, is back at the start of a message.

    It is not when it waits for a body (a request with Content-Length or Transfer-Encoding), has seen the
    last message (`Connection: close`), or has paused for an upgrade.
    """
    for lower, value in fields.noted:
        if lower in (b"upgrade", b"transfer-encoding") or (request and lower == b"content-length"):
            return False
        if lower == b"connection" and any(item != "keep-alive" for item in _comma_items((value,))):
            return False
    return True


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

    Attributes:
        pairs: the fields, in order (Content-Length and Transfer-Encoding values normalised).
        lowers: their names, lowercased.

    Raises:
        h11.LocalProtocolError: an invalid name or value, or framing fields h11 refuses.
        UnicodeEncodeError: a name or value beyond latin-1.
    """

    __slots__ = ("_block", "lowers", "pairs")

    def __init__(self, pairs: list[tuple[str, str]]) -> None:
        # One match over the serialised fields checks every name and value, once the count of LFs shows
        # that each line is one field; the text is what goes on the wire unless a field moves.
        text = "".join([f"{name}: {value}\r\n" for name, value in pairs])
        if text.count("\n") != len(pairs) or _FIELD_LINES_RE.fullmatch(text) is None:
            _refuse(pairs)
        block: bytes | None = text.encode("latin-1")
        self.pairs = pairs
        self.lowers = lowers = [name.lower() for name, _ in pairs]
        if "content-length" in lowers or "transfer-encoding" in lowers:
            lengths = codings = 0
            check = False
            for (_, value), lower in zip(pairs, lowers, strict=True):
                if lower == "content-length":
                    lengths += 1
                    check = check or lengths > 1 or not (value.isascii() and value.isdigit())
                    check = check or len(value) > _MAX_LENGTH_DIGITS
                elif lower == "transfer-encoding":
                    codings += 1
                    check = check or codings > 1 or value != "chunked"
            if check:
                self.pairs = _framing_fields(pairs, h11.LocalProtocolError)
                self.lowers = lowers = [name.lower() for name, _ in self.pairs]
                block = None
        if "host" in lowers:
            hosts = lowers.count("host")
            if lowers[:hosts].count("host") != hosts:
                block = None  # h11 writes Host first (RFC 9112 §3.2: a user agent SHOULD)
        self._block = block

    def values(self, lower: str) -> list[str]:
        """h11's get_comma_header: the lowercased items of the fields called `lower`."""
        return _comma_items(
            value for (_, value), name in zip(self.pairs, self.lowers, strict=True) if name == lower
        )

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


# -- the shared machinery ------------------------------------------------------------------------------------


class _FastH1:
    """What both sides share: the read buffer, body framing, the write framing, detach and close.

    Attributes:
        bytes_read: wire bytes received on this connection.
        bytes_written: wire bytes sent on this connection.
    """

    _role = "SERVER"  # h11's name for our side, in error messages

    def __init__(self, stream: trio.abc.Stream, read_size: int, max_head_size: int) -> None:
        self._stream = stream
        self._read_size = read_size
        self._max_head_size = max_head_size
        self._buf: bytes | bytearray = b""  # received bytes; those before `_pos` are consumed
        self._pos = 0
        self._scanned = 0  # bytes after `_pos` known not to hold the end of a head
        self._failed = False  # an error happened: no further exchange on this connection
        self._eof = False  # the peer closed its side
        self._detached = False
        self._in_body = False  # a body is being read: read_body may return data
        self._chunked = False  # the message we are writing is chunked (may carry trailers)
        self._trailers: Headers | None = None
        self.bytes_read = 0
        self.bytes_written = 0
        # The peer's message (h11's their_state and reader).
        self._their = _IDLE
        self._rframing = _LENGTH
        self._rlength = 0  # the declared Content-Length
        self._rleft = 0  # bytes left of the Content-Length body, or of the current chunk
        self._rdiscard = b""  # what must follow a chunk's data (the rest of its CRLF)
        self._rtrailer = False  # the last chunk was read: trailers come next
        self._rfields: list[tuple[str, str]] = []  # the trailers read
        self._fields = _Fields([], [])  # those of the last head read
        # Our message (h11's our_state and writer), and what both directions share.
        self._our = _IDLE
        self._wframing = _LENGTH
        self._wleft = 0
        self._keep_alive = True  # h11's keep_alive: neither message ruled out another exchange
        self._upgrade_proposed = False  # the request asks to switch protocols with Upgrade
        self._connect_proposed = False  # the request is a CONNECT

    @property
    def body_done(self) -> bool:
        """The current message's body has been read to its end (at once for a message without a body)."""
        return not self._in_body

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying stream (for a pool's idle watch); reading or writing it directly breaks framing."""
        return self._stream

    # -- I/O, specialised by each side -----------------------------------------------------------------

    async def _receive(self) -> None:
        raise NotImplementedError

    async def _send(self, data: bytes) -> None:
        raise NotImplementedError

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        raise NotImplementedError

    def _append(self, data: bytes | bytearray) -> None:
        if not data:
            self._eof = True
            return
        buf = self._buf
        pos = self._pos
        if pos >= len(buf):
            self._buf = data
            self._pos = 0
        elif pos == 0 and type(buf) is bytearray:
            buf += data  # an incomplete head or chunk line growing over several reads: amortised O(1)
        else:
            rest = bytearray(buf[pos:])
            rest += data
            self._buf = rest
            self._pos = 0

    def _take(self, count: int) -> bytes:
        buf = self._buf
        pos = self._pos
        end = pos + count
        self._pos = end
        if pos == 0 and end == len(buf) and type(buf) is bytes:
            return buf  # the whole read is body: no copy
        return bytes(buf[pos:end])

    # -- heads -----------------------------------------------------------------------------------------

    def _head_end(self, empty_line_error: str) -> int:
        """Where the head at `_pos` ends (past its empty line), or -1 while it is incomplete.

        h11's rule: the head ends at the first LF, optional CR, LF; a head starting with an empty line has
        no start line.
        """
        buf = self._buf
        pos = self._pos
        first = buf[pos]
        if first == 10 or (first == 13 and buf[pos + 1 : pos + 2] == b"\n"):
            raise h11.RemoteProtocolError(empty_line_error)
        start = pos + max(0, self._scanned - 2)
        crlf = buf.find(b"\n\r\n", start)
        lf = buf.find(b"\n\n", start, len(buf) if crlf < 0 else crlf + 1)
        if lf >= 0:
            return lf + 2
        if crlf >= 0:
            return crlf + 3
        self._scanned = len(buf) - pos
        return -1

    def _need_head(self) -> _Sentinel:
        """NEED_DATA for an incomplete head, after h11's checks (an invalid first byte, size, EOF)."""
        buf = self._buf
        pos = self._pos
        if pos < len(buf) and buf[pos] < 0x21:
            raise h11.RemoteProtocolError("illegal request line")
        return self._need_data()

    def _need_data(self) -> _Sentinel:
        # h11's next_event on NEED_DATA: the buffer bound first (its hint is 431), then the EOF.
        if len(self._buf) - self._pos > self._max_head_size:
            raise h11.RemoteProtocolError("Receive buffer too long", error_status_hint=431)
        if self._eof:
            raise h11.RemoteProtocolError("peer unexpectedly closed connection")
        return _NEED_DATA

    def _start_body(self, framing: int, length: int) -> None:
        self._their = _SEND_BODY
        self._rframing = framing
        self._rlength = self._rleft = length
        self._rdiscard = b""
        self._rtrailer = False
        self._rfields = []

    # -- bodies ----------------------------------------------------------------------------------------

    def _next_body_event(self) -> bytes | _Sentinel:
        """h11's next_event while a body is read: a piece, `_END`, `_PAUSED` or `_NEED_DATA`."""
        their = self._their
        if their is _ERROR:
            raise h11.RemoteProtocolError("Can't receive data when peer state is ERROR")
        if their is not _SEND_BODY:
            return _PAUSED
        try:
            event = self._body_event()
            if event is None and self._pos >= len(self._buf) and self._eof:
                event = self._body_eof()
            if event is None:
                return self._need_data()
            if event is _END:
                self._end_of_body()
            return event
        except h11.RemoteProtocolError:
            self._their = _ERROR
            raise

    def _body_event(self) -> bytes | _Sentinel | None:
        framing = self._rframing
        avail = len(self._buf) - self._pos
        if framing is _LENGTH:
            left = self._rleft
            if left == 0:
                return _END
            if not avail:
                return None
            count = avail if avail < left else left
            self._rleft = left - count
            return self._take(count)
        if framing is _UNTIL_EOF:
            return self._take(avail) if avail else None
        return self._chunk_event()

    def _chunk_event(self) -> bytes | _Sentinel | None:
        """h11's ChunkedReader, step for step."""
        if self._rtrailer:
            lines = self._extract_lines()
            if lines is None:
                return None
            self._rfields = _framing_fields(_h11_fields(lines), h11.RemoteProtocolError)
            return _END
        buf = self._buf
        if self._rdiscard:
            avail = len(buf) - self._pos
            if not avail:
                return None
            discard = self._rdiscard
            count = min(avail, len(discard))
            data = bytes(buf[self._pos : self._pos + count])
            self._pos += count
            if data != discard[:count]:
                raise h11.RemoteProtocolError(f"malformed chunk footer: {data!r} (expected {discard!r})")
            self._rdiscard = discard = discard[count:]
            if discard:
                return None
        if self._rleft == 0:
            end = buf.find(b"\r\n", self._pos)
            if end < 0:
                return None
            line = bytes(buf[self._pos : end + 2])
            self._pos = end + 2
            match = _CHUNK_HEADER_RE.fullmatch(line)
            if match is None:
                raise h11.RemoteProtocolError(f"illegal chunk header: {line!r}")
            self._rleft = int(match[1], 16)
            if self._rleft == 0:
                self._rtrailer = True
                return self._chunk_event()
        avail = len(buf) - self._pos
        if not avail:
            return None
        count = min(avail, self._rleft)
        self._rleft -= count
        if self._rleft == 0:
            self._rdiscard = b"\r\n"
        return self._take(count)

    def _extract_lines(self) -> list[bytes | bytearray] | None:
        """h11's ReceiveBuffer.maybe_extract_lines: the lines up to an empty line ([] if one comes first)."""
        buf = self._buf
        pos = self._pos
        if buf[pos : pos + 1] == b"\n":
            self._pos = pos + 1
            return []
        if buf[pos : pos + 2] == b"\r\n":
            self._pos = pos + 2
            return []
        crlf = buf.find(b"\n\r\n", pos)
        lf = buf.find(b"\n\n", pos, len(buf) if crlf < 0 else crlf + 1)
        end = lf + 2 if lf >= 0 else crlf + 3 if crlf >= 0 else -1
        if end < 0:
            return None
        self._pos = end
        return _lines(buf[pos:end])

    def _body_eof(self) -> _Sentinel:
        framing = self._rframing
        if framing is _UNTIL_EOF:
            return _END
        if framing is _LENGTH:
            raise h11.RemoteProtocolError(
                "peer closed connection without sending complete message body "
                f"(received {self._rlength - self._rleft} bytes, expected {self._rlength})"
            )
        raise h11.RemoteProtocolError(
            "peer closed connection without sending complete message body (incomplete chunked read)"
        )

    def _end_of_body(self) -> None:
        raise NotImplementedError

    def _body_piece(self, event: bytes | _Sentinel) -> bytes | None:
        if type(event) is bytes:
            return event or None
        # The end of the body, or PAUSED after a switch of protocols (101, CONNECT): no more body.
        self._in_body = False
        if event is _END and self._rfields:
            self._trailers = Headers(self._rfields)
        return None

    async def _next_event(self) -> bytes | _Sentinel:
        while True:
            try:
                event = self._next_body_event()
            except h11.RemoteProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is not _NEED_DATA:
                return event
            await self._receive()

    def _take_empty_body(self) -> None:
        # The end of an empty body comes without reading anything (h11's too). Taking it with the head spares
        # the caller a read_body for every GET and lets the cycle complete without one.
        event = self._next_body_event()
        if event is _END or event is _PAUSED:
            self._in_body = False
        else:  # never anything else here; refuse to lose it silently
            raise Error.explain(ErrorType.H1_ERROR, f"unexpected {event!r}", ErrorSource.INTERNAL)

    async def _read_body(self) -> bytes | None:
        while self._in_body:
            data = self._body_piece(await self._next_event())
            if data:
                return data
        return None

    def read_body_nowait(self) -> bytes | None:
        """The next body piece if it is already buffered, or None at the end of the body.

        Lets a caller send a head together with the body that arrived with it, in one write.

        Raises:
            trio.WouldBlock: nothing is buffered; `read_body` would wait for the peer.
        """
        while self._in_body:
            try:
                event = self._next_body_event()
            except h11.RemoteProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is _NEED_DATA:
                raise trio.WouldBlock
            data = self._body_piece(event)
            if data:
                return data
        return None

    # -- writing bodies --------------------------------------------------------------------------------

    def _state_error(self, event: str) -> h11.LocalProtocolError:
        if self._our is _ERROR:
            return h11.LocalProtocolError("Can't send data when our state is ERROR")
        return h11.LocalProtocolError(
            f"can't handle event type {event} when role={self._role} and state={self._our}"
        )

    def _write_error(self, exc: h11.LocalProtocolError) -> Error:
        self._failed = True
        self._our = _ERROR
        return Error(ErrorType.H1_ERROR, ErrorSource.INTERNAL, context=str(exc), cause=exc)

    def _data_parts(self, data: bytes, parts: list[bytes]) -> None:
        """h11's body writers: `data` framed by `_wframing`, added to `parts`."""
        framing = self._wframing
        if framing is _LENGTH:
            self._wleft -= len(data)
            if self._wleft < 0:
                raise h11.LocalProtocolError("Too much data for declared Content-Length")
            parts.append(data)
        elif framing is _CHUNKED:
            if data:
                parts += (b"%x\r\n" % len(data), data, b"\r\n")
        else:
            parts.append(data)

    def _end_parts(self, trailers: _OutFields | None, parts: list[bytes]) -> None:
        framing = self._wframing
        if framing is _LENGTH:
            if self._wleft != 0:
                raise h11.LocalProtocolError("Too little data for declared Content-Length")
            if trailers:
                raise h11.LocalProtocolError("Content-Length and trailers don't mix")
        elif framing is _CHUNKED:
            parts += (b"0\r\n", trailers.serialised(), b"\r\n") if trailers else (b"0\r\n\r\n",)
        elif trailers:
            raise h11.LocalProtocolError("can't send trailers to HTTP/1.0 client")
        self._our = _DONE
        self._end_of_ours()

    def _end_of_ours(self) -> None:
        """Hook: our message ended (the client side may now wait for a switch of protocols)."""

    def _encode_data(self, data: bytes) -> bytes:
        try:
            if self._our is not _SEND_BODY:
                raise self._state_error("Data")
            parts: list[bytes] = []
            self._data_parts(data, parts)
        except h11.LocalProtocolError as exc:
            raise self._write_error(exc) from exc
        # A single part (a Content-Length body chunk) is returned as is by join, without a copy.
        return b"".join(parts)

    def _trailer_fields(self, trailers: Headers | None) -> _OutFields | None:
        if not trailers or not self._chunked:
            return None
        try:
            return _OutFields(list(trailers))
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise _invalid_head(exc) from exc

    async def _finish(self, trailers: Headers | None) -> None:
        if self._our is _DONE or self._our is _SWITCHED:
            return  # already ended: finishing twice is harmless, as in Pingora
        fields = self._trailer_fields(trailers)
        try:
            if self._our is not _SEND_BODY:
                raise self._state_error("EndOfMessage")
            parts: list[bytes] = []
            self._end_parts(fields, parts)
        except h11.LocalProtocolError as exc:
            raise self._write_error(exc) from exc
        if parts:  # the end of a Content-Length body is no bytes at all
            await self._send(b"".join(parts))

    # -- detach and close ------------------------------------------------------------------------------

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        """Give up the stream, for a raw tunnel after a 101 or a CONNECT.

        Returns:
            The stream, and the bytes already read from it that belong to the tunnel.
        """
        self._detached = True
        return self._stream, bytes(self._buf[self._pos :])

    async def close(self) -> None:
        """Close the stream gracefully (a TLS close_notify, if any); a detached stream is left alone."""
        if self._detached:
            return
        # The peer may be gone already; trio's aclose releases the stream whatever it raises.
        with contextlib.suppress(*_IO_ERRORS):
            await self._stream.aclose()

    async def abort(self) -> None:
        """Close the stream at once, without a graceful shutdown; a detached stream is left alone."""
        if self._detached:
            return
        with contextlib.suppress(*_IO_ERRORS):
            await trio.aclose_forcefully(self._stream)


class FastServerConnection(_FastH1):
    """The downstream side of one client connection: read requests, write responses (on llhttp).

    One request/response cycle at a time: `read_request`, `read_body` until None, `write_response`,
    `write_body`, `finish`, then `start_next_cycle` to keep the connection alive (or close it).

    Args:
        stream: the accepted connection.
        read_size: bytes per read.
        max_head_size: largest request head accepted; a larger one raises `ProtocolError` with hint 431.

    Attributes:
        expects_continue: the request carried `Expect: 100-continue` (HTTP/1.1) and has a body; the client
            may wait for `send_continue` before sending it.
        upgrade_requested: the request asks to switch protocols: an `Upgrade` header on HTTP/1.1 (Pingora's
            `is_upgrade_req`), or CONNECT.
        response_started: a final response head (or a 101) has been written, so no other response can be.
        response_header: that head, as given to `write_response`.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
    ) -> None:
        super().__init__(stream, read_size, max_head_size)
        self._sink = _FieldSink(httptools.HttpRequestParser)
        self._keepalive = True  # ours to decide: set_keepalive
        self._their_version: str | None = None  # h11's their_http_version: outlives a cycle
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._method: str | None = None  # of the request being served; None until its head is read
        self._version: str | None = None
        self._peer_keepalive = True  # the request allows another one after it
        self._body_allowed = True  # the response being written may have a body
        self._continue_sent = False
        self._in_body = False
        self._chunked = False
        self._trailers = None
        self.expects_continue = False
        self.upgrade_requested = False
        self.response_started = False
        self.response_header: ResponseHeader | None = None

    # -- I/O -------------------------------------------------------------------------------------------

    async def _receive(self) -> None:
        try:
            data = await self._stream.receive_some(self._read_size)
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.READ_ERROR,
                ErrorSource.DOWNSTREAM,
                context="while reading from the client",
                cause=exc,
            ) from exc
        self.bytes_read += len(data)
        self._append(data)

    async def _send(self, data: bytes) -> None:
        try:
            await self._stream.send_all(data)
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.WRITE_ERROR,
                ErrorSource.DOWNSTREAM,
                context="while writing to the client",
                cause=exc,
            ) from exc
        except BaseException:
            self._failed = True  # cancelled mid-write: part of the data may be on the wire
            raise
        self.bytes_written += len(data)

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        if self._eof:
            return Error(
                ErrorType.CONNECTION_CLOSED,
                ErrorSource.DOWNSTREAM,
                context="the client closed the connection in the middle of a request",
                cause=exc,
            )
        etype = ErrorType.INVALID_HTTP_HEADER if self._method is None else ErrorType.H1_ERROR
        return ProtocolError(
            etype, ErrorSource.DOWNSTREAM, status_hint=exc.error_status_hint, context=str(exc), cause=exc
        )

    def _end_of_body(self) -> None:
        self._their = _DONE

    # -- reading the request ---------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        """Read the next request head.

        Returns:
            The head, or None when the client closed the connection cleanly before starting a request.

        Raises:
            ProtocolError: a malformed or refused head (`status_hint` says what to answer).
            Error: `CONNECTION_CLOSED` if the client closed mid-head, `READ_ERROR` on a transport failure.
        """
        if self._their is not _IDLE:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "read_request before start_next_cycle", ErrorSource.INTERNAL
            )
        while True:
            try:
                request = self._next_request()
            except h11.RemoteProtocolError as exc:
                self._their = _ERROR
                self._failed = True
                raise self._protocol_error(exc) from exc
            if request is not _NEED_DATA:
                break
            await self._receive()
        if request is _CONNECTION_CLOSED:
            return None
        assert isinstance(request, RequestHeader)
        fields = self._fields
        self._method = request.method
        self._version = request.version
        self._in_body = True
        self._check_request(request)
        if fields.first(b"transfer-encoding") is None and (fields.first(b"content-length") or "0") == "0":
            self._take_empty_body()
        http11 = request.version == "1.1"
        self._peer_keepalive = http11 and not _lists(fields.values(b"connection"), "close")
        self.expects_continue = http11 and self._in_body and _lists(fields.values(b"expect"), "100-continue")
        self.upgrade_requested = request.method == "CONNECT" or (http11 and bool(fields.values(b"upgrade")))
        return request

    def _next_request(self) -> RequestHeader | _Sentinel:
        """h11's next_event from IDLE: a request, ConnectionClosed, or NEED_DATA."""
        if self._pos < len(self._buf):
            end = self._head_end("no request line received")
            if end >= 0:
                return self._request(end)
            return self._need_head()
        if self._eof:
            # h11: ConnectionClosed from IDLE; the server side can then only close.
            self._their = _CLOSED
            if self._our is _IDLE:
                self._our = _DONE
            return _CONNECTION_CLOSED
        return _NEED_DATA

    def _request(self, end: int) -> RequestHeader:
        buf = self._buf
        pos = self._pos
        newline = buf.find(b"\n", pos, end)
        line_end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
        match = _REQUEST_LINE_RE.fullmatch(buf, pos, line_end)
        if match is None:
            raise h11.RemoteProtocolError(f"illegal request line: {bytes(buf[pos:line_end])!r}")
        method, target, version = (group.decode("latin-1") for group in match.groups())
        fields = self._sink.parse(buf, newline + 1, end)
        hosts = len(fields.values(b"host"))
        if version == "1.1" and hosts == 0:
            raise h11.RemoteProtocolError("Missing mandatory Host: header")
        if hosts > 1:
            raise h11.RemoteProtocolError("Found multiple Host: headers")
        if self._our is not _IDLE:
            raise h11.RemoteProtocolError(
                f"can't handle event type Request when role=SERVER and state={self._our}"
            )
        self._pos = end
        self._scanned = 0
        # h11's _process_event for a request: switch proposals, states, keep-alive, framing.
        self._connect_proposed = method == "CONNECT"
        self._upgrade_proposed = bool(_comma_items(fields.values(b"upgrade")))
        self._our = _SEND_RESPONSE
        self._their_version = version
        if version < "1.1" or "close" in _comma_items(fields.values(b"connection")):
            self._keep_alive = False
        chunked, length = fields.framing()
        self._start_body(_CHUNKED if chunked else _LENGTH, max(length, 0))
        self._fields = fields
        return RequestHeader(method, target, Headers(fields.pairs), version)

    def _check_request(self, request: RequestHeader) -> None:
        fields = self._fields
        if fields.first(b"transfer-encoding") is None:
            return
        if fields.first(b"content-length") is not None:
            reason = "both Content-Length and Transfer-Encoding (RFC 9112 §6.3)"
        elif request.version != "1.1":
            reason = f"Transfer-Encoding in an HTTP/{request.version} request (RFC 9112 §6.1)"
        else:
            return
        self._failed = True
        raise ProtocolError(
            ErrorType.INVALID_HTTP_HEADER, ErrorSource.DOWNSTREAM, status_hint=400, context=reason
        )

    async def read_body(self) -> bytes | None:
        """The next chunk of the request body (never empty), or None at its end.

        A client that sent `Expect: 100-continue` may wait for `send_continue` before sending the body.
        """
        return await self._read_body()

    @property
    def request_trailers(self) -> Headers | None:
        """The trailer fields of a chunked request body, once `read_body` returned None (None if none)."""
        return self._trailers

    # -- writing the response --------------------------------------------------------------------------

    async def send_continue(self) -> None:
        """Write `100 Continue` if the client asked for it and no response has been written yet."""
        if not self.expects_continue or self._continue_sent or self.response_started:
            return
        self._continue_sent = True
        await self._send(self._informational(100, "Continue", b""))

    def _informational(self, status: int, reason: str, fields: bytes) -> bytes:
        try:
            data = b"%s%s\r\n" % (f"HTTP/1.1 {status} {reason}\r\n".encode("latin-1"), fields)
        except UnicodeEncodeError as exc:
            raise _invalid_head(exc) from exc
        try:
            if self._our is not _SEND_RESPONSE:
                raise self._state_error("InformationalResponse")
            if status == 101:
                if not self._upgrade_proposed:
                    raise h11.LocalProtocolError(
                        "Received server _SWITCH_UPGRADE event without a pending proposal"
                    )
                self._our = _SWITCHED
        except h11.LocalProtocolError as exc:
            raise self._write_error(exc) from exc
        return data

    async def write_response(self, header: ResponseHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a response head, with the first piece of the body, in one write.

        A 1xx head is informational (a 101 switches protocols: `detach` next); it has no body and no end.

        Args:
            header: the head to write; it is not modified (`Connection: close` and `Content-Length` are
                added on the wire only).
            body: the first piece of the body.
            end: the body is complete: end the message too.

        Raises:
            Error: `WRITE_ERROR` if the client is gone; `INTERNAL` for a head h11 would refuse to write.
        """
        status = header.status
        _check_status_line(header)
        headers = header.headers
        if status < 200:
            data = self._informational(status, header.reason, self._checked(list(headers)).serialised())
            if status == 101:
                self.response_started = True
                self.response_header = header
                self._body_allowed = False
            await self._send(data)
            return
        method = self._method
        tunnel = method == "CONNECT" and status < 300  # RFC 9110 §9.3.6: the connection becomes a tunnel
        body_allowed = not (status in (204, 304) or method == "HEAD" or tunnel)
        pairs = list(headers)
        if not self.keepalive:
            kept = [pair for pair in pairs if pair[0].lower() != "connection"]
            if len(kept) < len(pairs):
                # Dropped fields are not validated, but h11's codec encodes every field given first.
                _latin1(pair for pair in pairs if pair[0].lower() == "connection")
            pairs = kept
            pairs.append(("Connection", "close"))
        framed = "content-length" in headers or "transfer-encoding" in headers
        if end and body_allowed and not framed:
            pairs.append(("Content-Length", str(len(body))))
            framed = True
        chunked = self._chunked
        self._chunked = (
            body_allowed and self._version == "1.1" and ("transfer-encoding" in headers or not framed)
        )
        try:
            fields = _OutFields(pairs)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            if not _is_latin1(headers):
                self._chunked = chunked  # h11's codec refuses such a head before it sets the framing
            raise _invalid_head(exc) from exc
        try:
            start = f"HTTP/1.1 {status} {header.reason}\r\n".encode("latin-1")
        except UnicodeEncodeError as exc:
            raise _invalid_head(exc) from exc
        data = self._response(start, status, fields, body if body_allowed else b"", end and not tunnel)
        # Started before the write: if it fails, part of the head may be out and no other response may follow.
        self.response_started = True
        self.response_header = header
        self._body_allowed = body_allowed
        if _has_token(headers, "connection", "close"):
            self._keepalive = False
        await self._send(data)

    def _checked(self, pairs: list[tuple[str, str]]) -> _OutFields:
        try:
            return _OutFields(pairs)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            raise _invalid_head(exc) from exc

    def _response(self, start: bytes, status: int, fields: _OutFields, body: bytes, end: bool) -> bytes:
        """h11's send of a Response (then Data, EndOfMessage): state, header clean-up, framing, bytes."""
        try:
            if self._our is not _IDLE and self._our is not _SEND_RESPONSE:
                raise self._state_error("Response")
            framing, length = self._clean_up(status, fields)
            if self._connect_proposed and 200 <= status < 300:
                self._our = _SWITCHED  # h11: a 2xx to CONNECT switches protocols; there is no body
            else:
                self._connect_proposed = self._upgrade_proposed = False
                self._our = _SEND_BODY
                self._wframing, self._wleft = framing, length
            if "connection" in fields.lowers and "close" in fields.values("connection"):
                self._keep_alive = False
            parts = [start, fields.serialised(), b"\r\n"]
            if body:
                if self._our is not _SEND_BODY:
                    raise self._state_error("Data")
                self._data_parts(body, parts)
            if end:
                if self._our is not _SEND_BODY:
                    raise self._state_error("EndOfMessage")
                self._end_parts(None, parts)
        except h11.LocalProtocolError as exc:
            raise self._write_error(exc) from exc
        return b"".join(parts)

    def _clean_up(self, status: int, fields: _OutFields) -> tuple[int, int]:
        """h11's _clean_up_response_headers_for_sending on `fields`; the framing the response then has."""
        method = self._method
        framing, _ = fields.framing("GET" if method == "HEAD" else method, status)
        need_close = False
        if framing is not _LENGTH:
            fields.set("content-length", ())
            version = self._their_version
            if version is None or version < "1.1":
                # An HTTP/1.0 client (or none yet): no chunked coding; the end of the body is the close.
                fields.set("transfer-encoding", ())
                if method != "HEAD":
                    need_close = True
            else:
                fields.set("transfer-encoding", ("chunked",))
        if not self._keep_alive or need_close:
            connection = set(fields.values("connection"))
            connection.discard("keep-alive")
            connection.add("close")
            fields.set("connection", sorted(connection))
        return fields.framing(method, status)

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the response body (dropped if the response has no body)."""
        if data and self._body_allowed:
            await self._send(self._encode_data(data))

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the response; trailers are written only if the body is chunked. A second call does nothing."""
        await self._finish(trailers)

    # -- keep-alive ------------------------------------------------------------------------------------

    @property
    def keepalive(self) -> bool:
        """Whether the connection may serve another request after this one."""
        return self._keepalive and self._peer_keepalive and not self._failed and not self._detached

    def set_keepalive(self, enabled: bool) -> None:
        """Allow or refuse another request; refusing adds `Connection: close` to a response not yet sent."""
        self._keepalive = enabled

    def next_request_ready(self) -> bool:
        """Whether the request and its response are both complete and the connection may serve another."""
        return self.keepalive and self._keep_alive and self._our is _DONE and self._their is _DONE

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `next_request_ready`; False means the caller closes."""
        if not self.next_request_ready():
            return False
        self._our = self._their = _IDLE
        self._reset_cycle()
        return True

    def __repr__(self) -> str:
        return (
            f"<FastServerConnection client={self._their} server={self._our}"
            f" keepalive={self.keepalive} read={self.bytes_read} written={self.bytes_written}>"
        )


class FastClientConnection(_FastH1):
    """The upstream side of one connection to a peer: write requests, read responses (on llhttp).

    One exchange at a time: `write_request`, `write_body`, `finish`, `read_response`, `read_body` until
    None, then `start_next_cycle` if `reusable` (the pool's decision) or close.

    Args:
        stream: the connection to the upstream.
        read_size: bytes per read.
        max_head_size: largest response head accepted.
        read_timeout: seconds each single read may take; None waits forever.
        write_timeout: seconds each single write may take; None waits forever.

    Attributes:
        read_timeout, write_timeout: as above; a pool may change them per peer between exchanges.
        informational: the 1xx responses (other than 101) of the current exchange, in order.
    """

    _role = "CLIENT"

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> None:
        super().__init__(stream, read_size, max_head_size)
        self._sink = _FieldSink(httptools.HttpResponseParser)
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._sent_method: str | None = None  # h11's _request_method: the method on the wire
        self._reset_exchange()

    def _reset_exchange(self) -> None:
        self._method: str | None = None
        self._request_start = self.bytes_read  # response bytes arrived once bytes_read moves past it
        self._must_close = False
        self._in_body = False
        self._chunked = False
        self._trailers = None
        self.informational: list[ResponseHeader] = []

    # -- I/O -------------------------------------------------------------------------------------------

    def _retry(self, exc: BaseException | None) -> RetryType:
        """The retry decision for a transport failure (`exc`, or None for EOF), as Pingora makes it.

        Retryable on a reused connection only when no byte of the response arrived and the failure is
        plain EOF or an OS error: the upstream probably closed the pooled connection meanwhile. A TLS error
        is not retried.
        """
        if self.bytes_read != self._request_start:
            return RetryType.NEVER
        if exc is None:
            return RetryType.REUSED_ONLY
        root = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else exc
        if isinstance(root, OSError) and not isinstance(root, ssl.SSLError):
            return RetryType.REUSED_ONLY
        return RetryType.NEVER

    async def _receive(self) -> None:
        try:
            if self.read_timeout is None:
                data = await self._stream.receive_some(self._read_size)
            else:
                with trio.move_on_after(self.read_timeout) as scope:
                    data = await self._stream.receive_some(self._read_size)
                if scope.cancelled_caught:
                    self._failed = True
                    raise Error(
                        ErrorType.READ_TIMEDOUT,
                        ErrorSource.UPSTREAM,
                        context=f"no data from the upstream within {self.read_timeout:g} s",
                    )
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.READ_ERROR,
                ErrorSource.UPSTREAM,
                context="while reading from the upstream",
                cause=exc,
                retry=self._retry(exc),
            ) from exc
        self.bytes_read += len(data)
        self._append(data)

    async def _send(self, data: bytes) -> None:
        try:
            if self.write_timeout is None:
                await self._stream.send_all(data)
            else:
                with trio.move_on_after(self.write_timeout) as scope:
                    await self._stream.send_all(data)
                if scope.cancelled_caught:
                    raise Error(
                        ErrorType.WRITE_TIMEDOUT,
                        ErrorSource.UPSTREAM,
                        context=f"the upstream took no data for {self.write_timeout:g} s",
                    )
        except _IO_ERRORS as exc:
            self._failed = True
            raise Error(
                ErrorType.WRITE_ERROR,
                ErrorSource.UPSTREAM,
                context="while writing to the upstream",
                cause=exc,
                retry=self._retry(exc),
            ) from exc
        except BaseException:
            self._failed = True  # timed out or cancelled mid-write: part of the data may be on the wire
            raise
        self.bytes_written += len(data)

    def _protocol_error(self, exc: h11.ProtocolError) -> Error:
        if self._eof:
            return Error(
                ErrorType.CONNECTION_CLOSED,
                ErrorSource.UPSTREAM,
                context="the upstream closed the connection before the response was complete",
                cause=exc,
                retry=self._retry(None),
            )
        etype = ErrorType.H1_ERROR if self._in_body else ErrorType.INVALID_HTTP_HEADER
        return ProtocolError(etype, ErrorSource.UPSTREAM, status_hint=502, context=str(exc), cause=exc)

    def _end_of_body(self) -> None:
        self._their = _DONE

    def _end_of_ours(self) -> None:
        # h11: a request that proposed a switch waits for the answer; one already switched follows it.
        if self._connect_proposed or self._upgrade_proposed:
            self._our = _SWITCHED if self._their is _SWITCHED else _MIGHT_SWITCH

    # -- writing the request ---------------------------------------------------------------------------

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a request head, with the first piece of the body, in one write.

        The headers decide the framing: a request with a body needs Content-Length or
        Transfer-Encoding: chunked, except with `end=True`, where a missing Content-Length is added.
        Requests are always written as HTTP/1.1 (h11 requires a Host header).

        Raises:
            Error: `WRITE_ERROR` / `WRITE_TIMEDOUT` from the upstream; `INTERNAL` for a head h11 refuses.
        """
        self._reset_exchange()
        self._method = method = header.method
        headers = header.headers
        self._chunked = "transfer-encoding" in headers
        pairs: list[tuple[str, str]] = list(headers)
        if end and body and not self._chunked and "content-length" not in headers:
            pairs.append(("Content-Length", str(len(body))))
        target = header.uri
        try:
            fields = _OutFields(pairs)
            hosts = fields.lowers.count("host")
            if hosts == 0:
                raise h11.LocalProtocolError("Missing mandatory Host: header")
            if hosts > 1:
                raise h11.LocalProtocolError("Found multiple Host: headers")
            if not method.isascii() or _METHOD_RE.fullmatch(method) is None:
                raise h11.LocalProtocolError("Illegal method characters")
            if not target.isascii() or _TARGET_RE.fullmatch(target) is None:
                raise h11.LocalProtocolError("Illegal target characters")
            head = b"%s%s\r\n" % (f"{method} {target} HTTP/1.1\r\n".encode("latin-1"), fields.serialised())
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            if not _is_latin1(headers):
                self._chunked = False  # h11's codec refuses such a head before it sets the framing
            raise _invalid_head(exc) from exc
        try:
            if self._our is not _IDLE:
                raise self._state_error("Request")
            # h11's _process_event for a request we send.
            self._connect_proposed = method == "CONNECT"
            self._upgrade_proposed = "upgrade" in fields.lowers and bool(fields.values("upgrade"))
            self._sent_method = method
            self._our = _SEND_BODY
            if self._their is _IDLE:
                self._their = _SEND_RESPONSE
            if "connection" in fields.lowers and "close" in fields.values("connection"):
                self._keep_alive = False
            self._wframing, self._wleft = fields.framing(method, None)
            parts = [head]
            if body:
                self._data_parts(body, parts)
            if end:
                self._end_parts(None, parts)
        except h11.LocalProtocolError as exc:
            raise self._write_error(exc) from exc
        await self._send(b"".join(parts))

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the request body."""
        if data:
            await self._send(self._encode_data(data))

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the request; trailers are written only if the body is chunked. A second call does nothing."""
        await self._finish(trailers)

    # -- reading the response --------------------------------------------------------------------------

    async def read_response(self, *, skip_informational: bool = True) -> ResponseHeader:
        """Read the response head.

        Args:
            skip_informational: collect 1xx responses (other than 101) in `informational` and return the
                final one; False returns each 1xx as it comes (to relay a 100 Continue, say).

        Returns:
            The final response, or a 101 (protocols switched: `detach` next).

        Raises:
            ProtocolError: an invalid response (`status_hint` 502).
            Error: `CONNECTION_CLOSED` / `READ_ERROR` (retryable on a reused connection if no response byte
                arrived), `READ_TIMEDOUT`.
        """
        while True:
            response = await self._next_response()
            if response.status >= 200:
                fields = self._fields
                chunked = fields.first(b"transfer-encoding") is not None
                length = fields.first(b"content-length")
                if chunked and length is not None:
                    self._must_close = True  # RFC 9112 §6.3: possible smuggling, do not reuse
                self._in_body = True
                method = self._method
                if (
                    response.status in (204, 304)
                    or method == "HEAD"
                    or (method == "CONNECT" and response.status < 300)
                    or (not chunked and length == "0")
                ):
                    self._take_empty_body()
                return response
            if response.status == 101:
                return response
            self.informational.append(response)
            if not skip_informational:
                return response

    async def _next_response(self) -> ResponseHeader:
        while True:
            try:
                response = self._response_event()
            except h11.RemoteProtocolError as exc:
                self._their = _ERROR
                self._failed = True
                raise self._protocol_error(exc) from exc
            if response is not _NEED_DATA:
                assert isinstance(response, ResponseHeader)
                return response
            await self._receive()

    def _response_event(self) -> ResponseHeader | _Sentinel:
        """h11's next_event while a response head is due: the head, or NEED_DATA."""
        their = self._their
        if their is _ERROR:
            raise h11.RemoteProtocolError("Can't receive data when peer state is ERROR")
        if their is not _IDLE and their is not _SEND_RESPONSE:
            raise Error.explain(
                ErrorType.H1_ERROR, f"no response expected now ({their})", ErrorSource.INTERNAL
            )
        if self._pos < len(self._buf):
            end = self._head_end("no response line received")
            if end >= 0:
                return self._response_head(end)
            return self._need_head()
        if self._eof:
            raise h11.RemoteProtocolError(
                f"can't handle event type ConnectionClosed when role=SERVER and state={their}"
            )
        return _NEED_DATA

    def _response_head(self, end: int) -> ResponseHeader:
        buf = self._buf
        pos = self._pos
        newline = buf.find(b"\n", pos, end)
        line_end = newline - 1 if newline > pos and buf[newline - 1] == 13 else newline
        match = _STATUS_LINE_RE.fullmatch(buf, pos, line_end)
        if match is None:
            raise h11.RemoteProtocolError(f"illegal status line: {bytes(buf[pos:line_end])!r}")
        version = match[1].decode("latin-1")
        status = int(match[2])
        reason = (match[3] or b"").decode("latin-1")
        fields = self._sink.parse(buf, newline + 1, end)
        if status < 100:
            raise h11.RemoteProtocolError(
                f"InformationalResponse status_code should be in range [100, 200), not {status}"
            )
        self._process_response(status, fields, version)
        self._pos = end
        self._scanned = 0
        self._fields = fields
        return ResponseHeader(status, Headers(fields.pairs), reason=reason, version=version)

    def _process_response(self, status: int, fields: _Fields, version: str) -> None:
        """h11's _process_event for a response head: switches, states, keep-alive, framing."""
        their = self._their
        if status < 200:
            if their is not _SEND_RESPONSE:
                raise h11.RemoteProtocolError(
                    f"can't handle event type InformationalResponse when role=SERVER and state={their}"
                )
            if status == 101:
                if not self._upgrade_proposed:
                    raise h11.RemoteProtocolError(
                        "Received server _SWITCH_UPGRADE event without a pending proposal"
                    )
                self._switch()
            return
        method = self._sent_method
        if self._connect_proposed and status < 300:
            self._switch()
        else:
            self._connect_proposed = self._upgrade_proposed = False
            if self._our is _MIGHT_SWITCH:
                self._our = _DONE
            chunked, length = fields.framing()
            if status in (204, 304) or method == "HEAD":
                self._start_body(_LENGTH, 0)
            elif chunked:
                self._start_body(_CHUNKED, 0)
            elif length < 0:
                self._start_body(_UNTIL_EOF, 0)
            else:
                self._start_body(_LENGTH, length)
        if version < "1.1" or "close" in _comma_items(fields.values(b"connection")):
            self._keep_alive = False

    def _switch(self) -> None:
        self._their = _SWITCHED
        if self._our is _MIGHT_SWITCH:
            self._our = _SWITCHED

    async def read_body(self) -> bytes | None:
        """The next chunk of the response body (never empty), or None at its end."""
        return await self._read_body()

    @property
    def response_trailers(self) -> Headers | None:
        """The trailer fields of a chunked response body, once `read_body` returned None (None if none)."""
        return self._trailers

    # -- reuse -----------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Whether the exchange completed cleanly and the connection can carry another request."""
        if (
            self._failed
            or self._detached
            or self._must_close
            or not self._keep_alive
            or self._our is not _DONE
            or self._their is not _DONE
        ):
            return False
        # Bytes past the response (or an EOF) make the next response ambiguous: Pingora refuses reuse too.
        return self._pos >= len(self._buf) and not self._eof

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `reusable`; False means the caller closes."""
        if not self.reusable:
            return False
        self._our = self._their = _IDLE
        self._sent_method = None
        self._reset_exchange()
        return True

    def __repr__(self) -> str:
        return (
            f"<FastClientConnection client={self._our} server={self._their}"
            f" reusable={self.reusable} read={self.bytes_read} written={self.bytes_written}>"
        )


# `Codec` is typed by the reference classes; these have the same interface without inheriting from them.
FAST_CODEC = Codec(
    "httptools",
    cast(Callable[..., ServerConnection], FastServerConnection),
    cast(Callable[..., ClientConnection], FastClientConnection),
)
