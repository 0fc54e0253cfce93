"""llhttp (httptools) as a field parser: the header block of one head after another, read as h11 reads it.

Rules:
- llhttp sees only the header block, behind a fixed start line (`_REQUEST_START`, `_RESPONSE_START`); the
  codec has matched the real start line with h11's grammar already. One parser serves a connection's heads
  while each head leaves it at the start of the next message.
- llhttp keeps whitespace at the end of a value, h11 drops it; where llhttp refuses a head h11 accepts
  (obs-fold, control characters, repeated equal Content-Length, ...), h11's grammar reads the block again.
- The fields the codec decides with (Host, Expect, Upgrade, Connection, Content-Length, Transfer-Encoding) are
  noted while llhttp hands the fields over, and Content-Length / Transfer-Encoding are then normalised and
  checked as h11 does (`_framing_fields`), raising h11's `RemoteProtocolError`.
"""

from __future__ import annotations

import h11
import httptools

from ._rules import _comma_items, _framing_fields, _h11_fields, _lines

# llhttp parses only the header block, behind these start lines (see the module rules). A 204 has no body
# whatever its fields say, so a response parser is back at its start after the head, ready for the next.
_REQUEST_START = b"GET / HTTP/1.1\r\n"
_RESPONSE_START = b"HTTP/1.1 204 No Content\r\n"

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

    def parse(self, buf: bytes | bytearray, begin: int, end: int, *, normalise: bool = True) -> _Fields:
        """The fields of the header block `buf[begin:end]` (after the start line, through the empty line).

        With `normalise` (the default), Content-Length and Transfer-Encoding are then checked and normalised
        as h11 does; without it they are as received, for the strict checks to see first.
        """
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
            fields = _Fields.of(_h11_fields(_lines(buf[begin:end])))
            return fields.normalised() if normalise else fields
        fields = _Fields(self.pairs, self.noted)
        self.pairs = []
        self.noted = []
        if self.parser is not None and not _message_ended(fields, self.start is _REQUEST_START):
            self.parser = None
        return fields.normalised() if normalise else fields


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
