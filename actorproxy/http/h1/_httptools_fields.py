"""The httptools codec's field reading: the header block of one head after another, read as h11 reads it.

Rules:
- A block that the strict field grammar passed (every request's, `_strict.py`; a response's once
  `_FIELDS_RE` matches it) is split at its line ends and each line at its colon (`valid_fields`): h11's
  reading of such a line is its name and its value without the OWS at its ends. Measured with callgrind
  on a four-field response head: about 15,000 instructions, against 30,000 through llhttp and its Python
  callback per field (the grammar's match costs 6,500 more; regular expressions that split the block cost
  more than llhttp, at about 100 instructions a character).
- Any other block (a response's: obs-fold, control characters, bare LFs, ...) goes to llhttp. It sees only
  the header block, behind a fixed start line (`_RESPONSE_START`); the codec has matched the real status
  line with h11's grammar already. One parser serves every connection of a thread (`response_fields`),
  while each head leaves it at the start of the next message: a parse is synchronous, so connections take
  turns, and an idle connection holds no parser (one took about 650 bytes).
- llhttp keeps whitespace at the end of a value, h11 drops it; where llhttp refuses a head h11 accepts
  (obs-fold, control characters, repeated equal Content-Length, ...), h11's grammar reads the block again.
- Names are lowercased once, here, where they are read (`_Fields.lowers`, and the `Headers` built from
  them); the codec decides with lookups in that list. Content-Length / Transfer-Encoding are then normalised
  and checked as h11 does (`_framing_fields`), raising h11's `RemoteProtocolError`.
- A block read lately is not split again (`known_fields`, `response_fields`): a client sends the same
  block with request after request (the same Host, User-Agent, Accept, cookies), and an origin the same
  answer head until its Date turns (HPACK's observation). The blocks split lately, up to
  `KNOWN_BLOCKS` of up to `KNOWN_BLOCK_BYTES` each, map to their fields; each head gets its own lists.
  Measured with callgrind: a proxied request whose two blocks are known runs about 40,000 fewer
  instructions (the split, and a response's grammar match); one whose blocks are all new about 600 more
  (the block's copy, its hash and the insertion). The memo keeps the blocks' text (cookies and
  credentials included) in the process's memory until they are replaced, as the requests in flight hold
  theirs; a block over `KNOWN_BLOCK_BYTES` is never kept.
"""

from __future__ import annotations

import threading

import h11
import httptools

from ._rules import _comma_items, _framing_fields, _h11_fields, _lines
from ._strict import _FIELDS_RE

# llhttp parses only the header block, behind this status line (see the module rules). A 204 has no body
# whatever its fields say, so the parser is back at its start after the head, ready for the next.
_RESPONSE_START = b"HTTP/1.1 204 No Content\r\n"


class _Fields:
    """A head's fields, their names lowercased once, as the codec reads and decides with them.

    Attributes:
        pairs: every field, as latin-1 text, in order.
        lowers: the names, lowercased, parallel to `pairs`.
    """

    __slots__ = ("lowers", "pairs")

    def __init__(self, pairs: list[tuple[str, str]], lowers: list[str]) -> None:
        self.pairs = pairs
        self.lowers = lowers

    @classmethod
    def of(cls, pairs: list[tuple[str, str]]) -> _Fields:
        return cls(pairs, [name.lower() for name, _ in pairs])

    def values(self, name: str) -> list[str]:
        """The values of the fields called `name` (lowercase), in order."""
        lowers = self.lowers
        if name not in lowers:
            return []
        if lowers.count(name) == 1:
            return [self.pairs[lowers.index(name)][1]]
        return [pair[1] for pair, lower in zip(self.pairs, lowers, strict=True) if lower == name]

    def first(self, name: str) -> str | None:
        """The value of the first field called `name` (lowercase), or None."""
        lowers = self.lowers
        if name not in lowers:
            return None
        return self.pairs[lowers.index(name)][1]

    def noted(self, names: frozenset[str]) -> list[tuple[str, str]]:
        """`(lowercase name, value)` of the fields called one of `names`, in order."""
        pairs = self.pairs
        return [(lower, pairs[i][1]) for i, lower in enumerate(self.lowers) if lower in names]

    def framing(self) -> tuple[bool, int]:
        """Chunked, else the Content-Length (-1 without one), as h11 frames a message it reads."""
        lowers = self.lowers
        if "transfer-encoding" in lowers:
            return True, 0
        if "content-length" not in lowers:
            return False, -1
        return False, int(self.pairs[lowers.index("content-length")][1])

    def normalised(self) -> _Fields:
        """h11's normalize_and_validate of what it reads: Content-Length and Transfer-Encoding checked."""
        lowers = self.lowers
        lengths = lowers.count("content-length")
        codings = lowers.count("transfer-encoding")
        if not lengths and not codings:
            return self  # the usual case: nothing to drop or lowercase
        if lengths < 2 and codings < 2:
            length = self.pairs[lowers.index("content-length")][1] if lengths else None
            if (length is None or (length.isdigit() and length.isascii() and len(length) <= 20)) and (
                not codings or self.first("transfer-encoding") == "chunked"
            ):
                return self
        pairs = _framing_fields(self.pairs, h11.RemoteProtocolError)
        return self if pairs == self.pairs else _Fields.of(pairs)


class _FieldSink:
    """llhttp's callback target: collects the fields of one response head after another, their names
    lowercased.

    One parser and its sink serve the heads while each head leaves llhttp at the start of the next message
    (measured: creating a parser costs ~1.3 µs, as much as parsing a short head with it).
    """

    __slots__ = ("lowers", "pairs", "parser")

    def __init__(self) -> None:
        self.pairs: list[tuple[str, str]] = []
        self.lowers: list[str] = []
        self.parser: httptools.HttpResponseParser | None = None

    def on_header(self, name: bytes, value: bytes) -> None:
        text = name.decode("latin-1")
        # llhttp keeps the whitespace at the end of a value; h11 (OWS, RFC 9110 §5.5) drops it.
        self.pairs.append((text, value.rstrip(b" \t").decode("latin-1")))
        self.lowers.append(text.lower())

    def parse(self, buf: bytes | bytearray, begin: int, end: int) -> _Fields:
        """The fields of the header block `buf[begin:end]` (after the status line, through the empty line),
        Content-Length and Transfer-Encoding checked and normalised as h11 does."""
        parser = self.parser
        if parser is None:
            parser = self.parser = httptools.HttpResponseParser(self)
        try:
            parser.feed_data(_RESPONSE_START + buf[begin:end])
        except httptools.HttpParserUpgrade:
            self.parser = None  # Connection: upgrade with Upgrade: a complete head, but a parser paused
        except httptools.HttpParserError:
            # llhttp is stricter here than h11: h11's grammar decides.
            self.parser = None
            self.pairs = []
            self.lowers = []
            return _Fields.of(_h11_fields(_lines(buf[begin:end]))).normalised()
        fields = _Fields(self.pairs, self.lowers)
        self.pairs = []
        self.lowers = []
        if self.parser is not None and not _message_ended(fields):
            self.parser = None
        return fields.normalised()


def _message_ended(fields: _Fields) -> bool:
    """Whether llhttp, fed this head behind our status line, is back at the start of a message.

    It is not when it has seen the last message (`Connection: close`), or has paused for an upgrade; a
    chunked 204 would make it wait for a body.
    """
    lowers = fields.lowers
    if "upgrade" in lowers or "transfer-encoding" in lowers:
        return False
    if "connection" not in lowers:
        return True
    values = fields.values("connection")
    # The usual upstream answer says `Connection: keep-alive` as it is: no list to split.
    return values == ["keep-alive"] or all(item == "keep-alive" for item in _comma_items(values))


class _Sinks(threading.local):
    """One sink per thread (trio runs a loop per thread; one loop parses one head at a time)."""

    def __init__(self) -> None:
        self.response = _FieldSink()


_SINKS = _Sinks()
#: No fields: what a codec holds once it has decided with a head's.
NO_FIELDS = _Fields([], [])


def valid_fields(buf: bytes | bytearray, begin: int, end: int) -> _Fields:
    """The fields of the header block `buf[begin:end]` (after the start line, through the empty line), which
    the strict field grammar passed (`_strict._FIELDS_RE`), as received (not normalised).

    Each line is a name, its colon and the value: split at the colon, the value stripped of OWS (h11's
    reading of such a line).
    """
    pairs: list[tuple[str, str]] = []
    lowers: list[str] = []
    if end - begin > 2:  # not only the empty line
        for line in buf[begin : end - 4].decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            pairs.append((name, value.strip(" \t")))
            lowers.append(name.lower())
    return _Fields(pairs, lowers)


# Blocks split lately (see the module rules): at most this many, each at most this long (a longer one,
# a large cookie say, is split every time). Full, the memo starts again empty: no order is kept per read.
KNOWN_BLOCKS = 256
KNOWN_BLOCK_BYTES = 2048
# Block -> its fields, as tuples (each head gets lists of its own to change); requests' and responses'
# apart, as a response's are normalised and a request's not yet.
_Known = dict[bytes, tuple[tuple[tuple[str, str], ...], tuple[str, ...]]]
_KNOWN_REQUEST: _Known = {}
_KNOWN_RESPONSE: _Known = {}


def _recall(
    known: _Known, buf: bytes | bytearray, begin: int, end: int
) -> tuple[bytes | None, _Fields | None]:
    """The block `buf[begin:end]` as a key (None when too long to keep), and its fields if `known` has it."""
    if end - begin > KNOWN_BLOCK_BYTES:
        return None, None
    block = bytes(buf[begin:end])
    hit = known.get(block)
    return block, None if hit is None else _Fields(list(hit[0]), list(hit[1]))


def _remember(known: _Known, block: bytes | None, fields: _Fields) -> None:
    if block is None:
        return
    if len(known) >= KNOWN_BLOCKS:
        known.clear()
    known[block] = (tuple(fields.pairs), tuple(fields.lowers))


def known_fields(buf: bytes | bytearray, begin: int, end: int) -> _Fields:
    """`valid_fields`, from the blocks split lately when this one is among them."""
    block, fields = _recall(_KNOWN_REQUEST, buf, begin, end)
    if fields is None:
        fields = valid_fields(buf, begin, end)
        _remember(_KNOWN_REQUEST, block, fields)
    return fields


def response_fields(buf: bytes | bytearray, begin: int, end: int) -> _Fields:
    """A response's header block `buf[begin:end]`, normalised: from the blocks split lately, else split as
    `valid_fields` when the strict field grammar passes it, else read with this thread's response parser."""
    block, fields = _recall(_KNOWN_RESPONSE, buf, begin, end)
    if fields is not None:
        return fields
    if _FIELDS_RE.fullmatch(buf, begin, end) is None:
        return _SINKS.response.parse(buf, begin, end)
    fields = valid_fields(buf, begin, end).normalised()
    _remember(_KNOWN_RESPONSE, block, fields)
    return fields
