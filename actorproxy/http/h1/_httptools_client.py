"""The upstream side of the httptools codec: `HttptoolsClientConnection` writes requests, reads responses.

Rules:
- It is `ClientSide` (`_protocols.py`) with h11's observable behaviour (`_h11.py`): heads, body pieces,
  trailers, errors (with the retry decision), reuse and the bytes on the wire.
- A request head is validated as h11 does before sending (one Host, a token method, a visible-ASCII target,
  framing fields) and joined with the first body piece: one write per call.
- A status line is matched with h11's grammar; its fields are split when the strict field grammar passes
  them, else read by llhttp (`_httptools_fields.py`). The response is framed by the request's method as
  h11 frames it (HEAD, 204, 304 and a 2xx to CONNECT are bodiless; no length means read to EOF); a
  response with both Content-Length and Transfer-Encoding is refused (502) and its connection not reused
  (RFC 9112 §6.3).
- A 101, or a 2xx to CONNECT, switches protocols as in h11: our side follows once the request has ended.
"""

from __future__ import annotations

import http
from typing import Final

import h11
import trio

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader
from ._base import DEFAULT_MAX_HEAD_SIZE, DEFAULT_READ_SIZE, _ClientBase
from ._httptools_base import (
    _DONE,
    _ERROR,
    _IDLE,
    _MIGHT_SWITCH,
    _NEED_DATA,
    _SEND_BODY,
    _SEND_RESPONSE,
    _SWITCHED,
    _HttptoolsConnection,
    _Sentinel,
)
from ._httptools_fields import NO_FIELDS, _Fields, response_fields
from ._rules import (
    _CHUNKED,
    _LENGTH,
    _METHOD_RE,
    _STANDARD_METHODS,
    _STATUS_LINE_RE,
    _TARGET_RE,
    _UNTIL_EOF,
    _comma_items,
    _invalid_head,
    _is_latin1,
    _OutFields,
)

__all__ = ["HttptoolsClientConnection"]

# The standard status lines of HTTP/1.1 and HTTP/1.0, as `_STATUS_LINE_RE` would read them: most responses
# start with one (a dict lookup instead of a match and three conversions).
_STATUS_LINES: Final = {
    f"HTTP/{version} {status.value} {status.phrase}".encode("latin-1"): (version, status.value, status.phrase)
    for version in ("1.1", "1.0")
    for status in http.HTTPStatus
}


class HttptoolsClientConnection(_ClientBase, _HttptoolsConnection):
    """`ClientSide` on llhttp, with h11's verdicts."""

    # The client side's own state (the rest is in `_H1Connection`'s slots): no dict.
    __slots__ = ("_must_close", "_request_start", "_sent_method", "informational")

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
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._sent_method: str | None = None  # h11's _request_method: the method on the wire
        self._reset_exchange()

    def _end_of_body(self) -> None:
        self._their = _DONE

    def _sharing_stream(self) -> bool:
        return self._our is _SEND_BODY  # the request body is still being written, by its pump

    def _end_of_ours(self) -> None:
        # h11: a request that proposed a switch waits for the answer; one already switched follows it.
        if self._connect_proposed or self._upgrade_proposed:
            self._our = _SWITCHED if self._their is _SWITCHED else _MIGHT_SWITCH

    # -- writing the request ---------------------------------------------------------------------------

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        self._reset_exchange()
        self._method = method = header.method
        headers = header.headers
        pairs, lowers, trusted = headers._fields()
        self._chunked = "transfer-encoding" in lowers
        if end and body and not self._chunked and "content-length" not in lowers:
            pairs.append(("Content-Length", str(len(body))))
            lowers.append("content-length")
        target = header.uri
        try:
            fields = _OutFields(pairs, lowers, trusted=trusted)
            hosts = fields.lowers.count("host")
            if hosts == 0:
                raise h11.LocalProtocolError("Missing mandatory Host: header")
            if hosts > 1:
                raise h11.LocalProtocolError("Found multiple Host: headers")
            if method not in _STANDARD_METHODS and (
                not method.isascii() or _METHOD_RE.fullmatch(method) is None
            ):
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
            if "connection" in fields.lowers and fields.lists("connection", "close"):
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

    # -- reading the response --------------------------------------------------------------------------

    async def read_response(self, *, skip_informational: bool = True) -> ResponseHeader:
        while True:
            response = await self._next_response()
            if response.status >= 200:
                fields = self._fields
                self._fields = NO_FIELDS  # decided with: a pooled connection keeps none of it
                lowers = fields.lowers
                chunked = "transfer-encoding" in lowers
                length = None
                if "content-length" in lowers:
                    length = fields.pairs[lowers.index("content-length")][1]
                if chunked and length is not None:
                    raise self._smuggling_response()
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
            self._append(await self._receive())

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
        known = _STATUS_LINES.get(bytes(buf[pos:line_end]))
        if known is not None:
            version, status, reason = known  # a standard status line: no match, no decoding
        else:
            match = _STATUS_LINE_RE.fullmatch(buf, pos, line_end)
            if match is None:
                raise h11.RemoteProtocolError(f"illegal status line: {bytes(buf[pos:line_end])!r}")
            version = match[1].decode("latin-1")
            status = int(match[2])
            reason = (match[3] or b"").decode("latin-1")
        fields = response_fields(buf, newline + 1, end)
        if status < 100:
            raise h11.RemoteProtocolError(
                f"InformationalResponse status_code should be in range [100, 200), not {status}"
            )
        self._process_response(status, fields, version)
        self._pos = end
        self._scanned = 0
        self._fields = fields
        headers = Headers._from_parsed(fields.pairs, fields.lowers)
        return ResponseHeader(status, headers, reason=reason, version=version)

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
        lowers = fields.lowers
        if version < "1.1":
            self._keep_alive = False
        elif "connection" in lowers:
            # The usual answer says `Connection: keep-alive` once, as it is: no list to split.
            first = fields.pairs[lowers.index("connection")][1]
            usual = first == "keep-alive" and lowers.count("connection") == 1
            if not usual and "close" in _comma_items(fields.values("connection")):
                self._keep_alive = False

    def _switch(self) -> None:
        self._their = _SWITCHED
        if self._our is _MIGHT_SWITCH:
            self._our = _SWITCHED

    # -- reuse -----------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
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
        if not self.reusable:
            return False
        self._our = self._their = _IDLE
        self._sent_method = None
        self._reset_exchange()
        self._buf = b""  # all read (`reusable` says so): a pooled connection keeps none of its last response
        self._pos = 0
        return True

    def __repr__(self) -> str:
        return (
            f"<HttptoolsClientConnection client={self._our} server={self._their}"
            f" reusable={self.reusable} read={self.bytes_read} written={self.bytes_written}>"
        )
