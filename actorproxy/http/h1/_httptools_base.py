"""The httptools codec's shared machinery: the read buffer, head delimiting, body framing and write framing.

Rules:
- The protocol state of each side is a few fields mirroring h11's states (`_our`, `_their`, with h11's
  names); a write the state does not allow is an `INTERNAL` `H1_ERROR`, as with h11, and a peer's violation
  raises h11's `RemoteProtocolError` with h11's message, which the side turns into `ProtocolError`.
- A head ends at the first empty line (h11's rule: LF, optional CR, LF); an incomplete head is counted against
  `max_head_size` across reads (431, as h11), and scanning resumes where the last read stopped.
- Bodies are framed exactly as h11 frames them: Content-Length, chunked with trailers (h11's ChunkedReader,
  step for step), or read to EOF. Bytes past a message stay in the buffer for the next cycle or for `detach`.
  A chunked request body is read with the strict chunk rules instead (`_strictbody.py`), at the same steps.
- Writes are framed as h11's body writers frame them; a body piece and the end of a message are joined
  with what precedes them, so a call is one stream write.
"""

from __future__ import annotations

from typing import Final

import h11
import trio

from actorproxy.config import HttpLimits

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers
from ._base import _H1Connection
from ._httptools_fields import NO_FIELDS
from ._rules import (
    _CHUNK_HEADER_RE,
    _CHUNKED,
    _LENGTH,
    _UNTIL_EOF,
    _framing_fields,
    _h11_fields,
    _invalid_head,
    _lines,
    _OutFields,
)
from ._strictbody import check_trailers, chunk_line, trailers_end

# Protocol states, h11's names. DONE stands for h11's MUST_CLOSE too: `_keep_alive` tells them apart.
_IDLE: Final = "IDLE"
_SEND_RESPONSE: Final = "SEND_RESPONSE"
_SEND_BODY: Final = "SEND_BODY"
_DONE: Final = "DONE"
_MIGHT_SWITCH: Final = "MIGHT_SWITCH_PROTOCOL"
_SWITCHED: Final = "SWITCHED_PROTOCOL"
_CLOSED: Final = "CLOSED"
_ERROR: Final = "ERROR"


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


class _HttptoolsConnection(_H1Connection):
    """What both sides share: the read buffer, body framing, the write framing and detach."""

    __slots__ = ()  # in `_H1Connection`

    _role = "SERVER"  # h11's name for our side, in error messages

    def __init__(self, stream: trio.abc.Stream, read_size: int, max_head_size: int) -> None:
        super().__init__(stream, read_size)
        self._max_head_size = max_head_size
        self._buf: bytes | bytearray = b""  # received bytes; those before `_pos` are consumed
        self._pos = 0
        self._scanned = 0  # bytes after `_pos` known not to hold the end of a head
        # The peer's message (h11's their_state and reader).
        self._their = _IDLE
        self._rframing = _LENGTH
        self._rlength = 0  # the declared Content-Length
        self._rleft = 0  # bytes left of the Content-Length body, or of the current chunk
        self._rdiscard = b""  # what must follow a chunk's data (the rest of its CRLF)
        self._rtrailer = False  # the last chunk was read: trailers come next
        self._rfields: list[tuple[str, str]] = []  # the trailers read
        self._rtotal = 0  # content bytes of the chunked body so far (for `max_body_size`)
        # The strict chunk rules (`_strict.py`), for requests from clients; None reads chunks as h11 does.
        self._strict: HttpLimits | None = None
        self._fields = NO_FIELDS  # those of the head being read, until the codec has decided with them
        # Our message (h11's our_state and writer), and what both directions share.
        self._our = _IDLE
        self._wframing = _LENGTH
        self._wleft = 0
        self._keep_alive = True  # h11's keep_alive: neither message ruled out another exchange
        self._upgrade_proposed = False  # the request asks to switch protocols with Upgrade
        self._connect_proposed = False  # the request is a CONNECT

    def _append(self, data: bytes | bytearray) -> None:
        if not data:
            return  # the EOF: the side's _receive noted it
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
        self._rtotal = 0

    # -- bodies ----------------------------------------------------------------------------------------

    def _next_body_event(self) -> bytes | _Sentinel:
        """h11's next_event while a body is read: a piece, `_END`, `_PAUSED` or `_NEED_DATA`."""
        their = self._their
        if their is _ERROR:
            raise h11.RemoteProtocolError("Can't receive data when peer state is ERROR")
        if their is not _SEND_BODY:
            return _PAUSED
        try:
            if self._rframing is _LENGTH:  # the usual framing, read here without a further frame
                left = self._rleft
                avail = len(self._buf) - self._pos
                if left == 0:
                    event: bytes | _Sentinel | None = _END
                elif avail:
                    count = avail if avail < left else left
                    self._rleft = left - count
                    event = self._take(count)
                else:
                    event = None
            else:
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
        """The next event of a body read to EOF or chunked (`_next_body_event` reads a Content-Length's)."""
        avail = len(self._buf) - self._pos
        if self._rframing is _UNTIL_EOF:
            return self._take(avail) if avail else None
        return self._chunk_event()

    def _chunk_event(self) -> bytes | _Sentinel | None:
        """h11's ChunkedReader, step for step; a request's chunk lines and trailers under the strict chunk
        rules (`_strictbody.py`), at the same steps, so a violation is raised where `ChunkedBodyCheck`
        holds it for the h11 codec."""
        strict = self._strict
        buf = self._buf
        if self._rtrailer:
            if strict is None:
                lines = self._extract_lines()
                if lines is None:
                    return None
                self._rfields = _framing_fields(_h11_fields(lines), h11.RemoteProtocolError)
                return _END
            pos = self._pos
            end = trailers_end(buf, pos) if pos < len(buf) else -1
            if end < 0:
                return None
            check_trailers(buf, pos, end, strict)
            self._pos = end
            self._rfields = _h11_fields(_lines(buf[pos:end]))
            return _END
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
            if strict is None:
                end = buf.find(b"\r\n", self._pos)
                if end < 0:
                    return None
                line = bytes(buf[self._pos : end + 2])
                self._pos = end + 2
                match = _CHUNK_HEADER_RE.fullmatch(line)
                if match is None:
                    raise h11.RemoteProtocolError(f"illegal chunk header: {line!r}")
                self._rleft = int(match[1], 16)
            else:
                size_line = chunk_line(buf, self._pos, strict, self._rtotal)
                if size_line is None:
                    return None
                self._rleft, self._pos = size_line
                self._rtotal += self._rleft
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
            self._append(await self._receive())

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
        while self._in_body:
            try:
                event = self._next_body_event()
            except h11.RemoteProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if type(event) is bytes:
                if event:
                    return event
            elif event is _NEED_DATA:
                raise trio.WouldBlock
            else:
                self._body_piece(event)  # the end
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
        if self._connect_proposed or self._upgrade_proposed:
            self._end_of_ours()

    def _end_of_ours(self) -> None:
        """Hook: our message ended while it proposed a switch of protocols (the client side may now wait
        for it)."""

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
        self._detached = True
        return self._stream, bytes(self._buf[self._pos :])
