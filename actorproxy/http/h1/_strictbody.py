"""The strict checks on a chunked request body: chunk-size lines and trailers (see `_strict` for the head).

Rules (as `_strict`'s: pure, sans-IO, refusals raise h11's `RemoteProtocolError` with the status to answer):
- 400 for a chunk-size line that is not `1*HEXDIG *( BWS ";" BWS name [ BWS "=" BWS ( token /
  quoted-string ) ] )` CRLF (RFC 9112 §7.1; whitespace after the size, also before a first ";" since h11
  cannot read it; a bare CR, LF or any control character in an extension) or is longer than
  `max_chunk_line`.
- 413 when the chunk sizes add up to more than `max_body_size`, found at the size line, before the chunk
  is read.
- 400 for trailer fields that break the field grammar or carry what frames, routes or controls a message
  (RFC 9110 §6.5.1: Content-Length, Transfer-Encoding, Host, Trailer, and the connection's own fields).
"""

from __future__ import annotations

import re
from typing import Final

import h11

from actorproxy.config import DEFAULT_LIMITS, HttpLimits

from ._strict import _FIELDS_RE, _TCHAR, _grammar_violation, _refuse

__all__ = ["ChunkedBodyCheck", "check_trailers", "chunk_line", "trailers_end"]

_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*+"'
# No whitespace between the size and the first ";": BWS there is a sender's MUST NOT (RFC 9110 §5.6.3), and
# h11 refuses it, so the h11 codec could not read what this would accept.
_CHUNK_EXT = rb";[ \t]*+%s++(?:[ \t]*+=[ \t]*+(?:%s++|%s))?+" % (_TCHAR, _TCHAR, _QUOTED)
_CHUNK_LINE_RE: Final = re.compile(rb"([0-9A-Fa-f]{1,20})(?:%s(?:[ \t]*+%s)*+)?+" % (_CHUNK_EXT, _CHUNK_EXT))
# RFC 9110 §6.5.1: fields a trailer must not carry (framing, routing, the connection's own).
_TRAILER_FORBIDDEN: Final = frozenset(
    {
        b"content-length",
        b"transfer-encoding",
        b"host",
        b"trailer",
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"upgrade",
    }
)

# -- chunked bodies ------------------------------------------------------------------------------------------


def chunk_line(buf: bytes | bytearray, pos: int, limits: HttpLimits, total: int) -> tuple[int, int] | None:
    """The chunk-size line at `buf[pos]`: its size and where the chunk's data starts; None while incomplete.

    Args:
        buf, pos: the buffered bytes and where the line starts.
        limits: `max_chunk_line` and `max_body_size`.
        total: content bytes of the body before this chunk, for `max_body_size`.

    Raises:
        h11.RemoteProtocolError: 400 for a line over its limit or off the grammar, 413 for a body over
            `max_body_size`.
    """
    newline = buf.find(b"\n", pos, pos + limits.max_chunk_line + 2)
    if newline < 0:
        if len(buf) - pos > limits.max_chunk_line + 1:  # + 1: its CR may be the last byte so far
            raise _refuse(f"chunk-size line over {limits.max_chunk_line} bytes")
        return None
    if newline == pos or buf[newline - 1] != 13:
        raise _refuse("bare LF in a chunk-size line (lines end with CRLF)")
    if newline - 1 - pos > limits.max_chunk_line:
        raise _refuse(f"chunk-size line over {limits.max_chunk_line} bytes")
    match = _CHUNK_LINE_RE.fullmatch(buf, pos, newline - 1)
    if match is None:
        raise _refuse(f"illegal chunk-size line: {bytes(buf[pos : newline + 1])[:128]!r}")
    size = int(match[1], 16)
    limit = limits.max_body_size
    if limit is not None and total + size > limit:
        raise _refuse(f"chunked body over the {limit} bytes allowed", 413)
    return size, newline + 1


def trailers_end(buf: bytes | bytearray, pos: int) -> int:
    """Where the trailer section at `buf[pos]` ends (past its empty line, as h11 finds it); -1 while
    incomplete.

    Raises:
        h11.RemoteProtocolError: a bare LF ends the body.
    """
    first = buf[pos : pos + 2]
    if first == b"\r\n":
        return pos + 2
    if first[:1] == b"\n":
        raise _refuse("bare LF after the last chunk (lines end with CRLF)")
    crlf = buf.find(b"\n\r\n", pos)
    lf = buf.find(b"\n\n", pos, len(buf) if crlf < 0 else crlf + 1)
    return lf + 2 if lf >= 0 else crlf + 3 if crlf >= 0 else -1


def check_trailers(buf: bytes | bytearray, pos: int, end: int, limits: HttpLimits) -> None:
    """The trailer section `buf[pos:end]` (its fields and empty line): the field grammar, no field that
    frames or routes the message (RFC 9110 §6.5.1), the header limits.

    Raises:
        h11.RemoteProtocolError: 400, or 431 over `max_header_bytes` / `max_header_count`.
    """
    if end - pos == 2:
        return
    if end - pos > limits.max_header_bytes:
        raise _refuse(f"trailers over {limits.max_header_bytes} bytes", 431)
    if _FIELDS_RE.fullmatch(buf, pos, end) is None:
        head = b"X / HTTP/1.1\r\n" + bytes(buf[pos:end])
        raise _refuse(f"trailers: {_grammar_violation(head)}")
    lines = bytes(buf[pos : end - 2]).split(b"\r\n")
    if len(lines) > limits.max_header_count:
        raise _refuse(f"more than {limits.max_header_count} trailer fields", 431)
    for line in lines:
        name = line.partition(b":")[0].lower()
        if name in _TRAILER_FORBIDDEN:
            raise _refuse(f"{name.decode('latin-1')} in trailers (RFC 9110 §6.5.1)")


# States of ChunkedBodyCheck.
_SIZE: Final = 0
_DATA: Final = 1
_DATA_END: Final = 2
_TRAILERS: Final = 3
_DONE: Final = 4


class ChunkedBodyCheck:
    """Follows a chunked request body over its raw bytes, for a codec whose own chunk reader is laxer.

    `feed` takes the bytes after the head as they arrive. The first violation is kept in `error`, with the
    content bytes that come before it in `error_after`: the codec hands those over, then raises it, exactly
    where a strict reader would have stopped. Chunk data is counted, never copied; only an incomplete line
    is kept.
    """

    __slots__ = ("_left", "_pending", "_state", "_total", "error", "error_after", "limits")

    def __init__(self, limits: HttpLimits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._state = _SIZE
        self._left = 0  # data bytes left in the current chunk, or CRLF bytes expected after it
        self._total = 0  # content bytes so far
        self._pending = bytearray()  # an incomplete line (or trailer section) carried to the next feed
        self.error: h11.RemoteProtocolError | None = None
        self.error_after = 0

    @property
    def done(self) -> bool:
        """The body ended (its trailer section included), or a violation was found."""
        return self._state is _DONE or self.error is not None

    def feed(self, data: bytes | bytearray) -> None:
        """Follow `data`, the next bytes from the client (bytes past the end of the body are ignored)."""
        if self.error is not None or self._state is _DONE or not data:
            return
        pending = self._pending
        if pending:
            pending += data
            buf: bytes | bytearray = pending
        else:
            buf = data
        try:
            pos = self._follow(buf)
        except h11.RemoteProtocolError as exc:
            self.error = exc
            self.error_after = self._total
            self._pending = bytearray()
            return
        if self._state is _DONE:
            self._pending = bytearray()
        elif buf is pending:
            del pending[:pos]
        else:
            self._pending = bytearray(buf[pos:])

    def _follow(self, buf: bytes | bytearray) -> int:
        """Advance over `buf`; return where the unconsumed bytes start."""
        pos = 0
        limits = self.limits
        while True:
            state = self._state
            if state is _SIZE:
                line = chunk_line(buf, pos, limits, self._total)
                if line is None:
                    return pos
                size, pos = line
                if size:
                    self._state, self._left = _DATA, size
                else:
                    self._state = _TRAILERS
            elif state is _DATA:
                take = min(self._left, len(buf) - pos)
                pos += take
                self._left -= take
                self._total += take
                if self._left:
                    return pos
                self._state, self._left = _DATA_END, 2
            elif state is _DATA_END:
                got = bytes(buf[pos : pos + self._left])
                expected = b"\r\n"[2 - self._left :]
                if got != expected[: len(got)]:
                    raise _refuse(f"malformed chunk footer: {got!r} (expected {expected!r})")
                pos += len(got)
                self._left -= len(got)
                if self._left:
                    return pos
                self._state = _SIZE
            elif state is _TRAILERS:
                if pos >= len(buf):
                    return pos
                end = trailers_end(buf, pos)
                if end < 0:
                    return pos
                check_trailers(buf, pos, end, limits)
                self._state = _DONE
                return end
            else:
                return pos
