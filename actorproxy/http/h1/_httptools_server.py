"""The downstream side of the httptools codec: `HttptoolsServerConnection` reads requests, writes responses.

Rules:
- It is `ServerSide` (`_protocols.py`) with h11's observable behaviour (`_h11.py`): heads, body pieces,
  trailers, errors, keep-alive and the bytes on the wire.
- A request head goes through the strict checks first (`_strict.py`: limits, grammar, version, Host, target,
  framing, expectations), then its fields are split (`_httptools_fields.py`); a chunked request
  body is read with the strict chunk rules (`_httptools_base.py`).
- A response head is validated and cleaned up as h11 does before sending (framing fields, `Connection:
  close`, no chunked coding to an HTTP/1.0 client), then joined with the first body piece: one write per call.
"""

from __future__ import annotations

import h11
import trio

from actorproxy.config import DEFAULT_LIMITS, HttpLimits

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader
from ._base import DEFAULT_READ_SIZE, _server_limits, _ServerBase
from ._httptools_base import (
    _CLOSED,
    _CONNECTION_CLOSED,
    _DONE,
    _ERROR,
    _IDLE,
    _NEED_DATA,
    _SEND_BODY,
    _SEND_RESPONSE,
    _SWITCHED,
    _HttptoolsConnection,
    _Sentinel,
)
from ._httptools_fields import NO_FIELDS, known_fields
from ._rules import (
    _CHUNKED,
    _LENGTH,
    _STATUS_LINES,
    _check_status_line,
    _comma_items,
    _has_token,
    _invalid_head,
    _is_latin1,
    _latin1,
    _lists,
    _OutFields,
)
from ._strict import CHECKED_FIELDS, HeadScanner, check_head, check_request

__all__ = ["HttptoolsServerConnection"]


class HttptoolsServerConnection(_ServerBase, _HttptoolsConnection):
    """`ServerSide` on llhttp, with h11's verdicts."""

    # The server side's public attributes (the private state is in `_H1Connection`'s slots): no dict.
    __slots__ = ("expects_continue", "limits", "response_header", "response_started", "upgrade_requested")

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        limits: HttpLimits = DEFAULT_LIMITS,
        max_head_size: int | None = None,
    ) -> None:
        limits = _server_limits(limits, max_head_size)
        super().__init__(stream, read_size, limits.max_header_bytes)
        self.limits = limits
        self._strict = limits
        self._scanner = HeadScanner(limits)
        self._keepalive = True  # ours to decide: set_keepalive
        self._their_version: str | None = None  # h11's their_http_version: outlives a cycle
        self._reset_cycle()

    def _end_of_body(self) -> None:
        self._their = _DONE

    # -- reading the request ---------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        self._begin_request()
        while (request := self._buffered_request()) is _NEED_DATA:
            self._append(await self._receive())
        return self._took_request(request)

    def read_request_nowait(self) -> RequestHeader | None:
        self._begin_request()
        # Nothing buffered (the usual case between two requests) is NEED_DATA: read at once.
        if self._pos < len(self._buf) or self._eof:
            request = self._buffered_request()
            if request is not _NEED_DATA:
                return self._took_request(request)
        self._append(self._receive_nowait())
        request = self._buffered_request()
        if request is _NEED_DATA:
            raise trio.WouldBlock
        return self._took_request(request)

    def _begin_request(self) -> None:
        if self._their is not _IDLE or self._failed:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "read_request before start_next_cycle", ErrorSource.INTERNAL
            )
        self._scanner.reset()

    def _buffered_request(self) -> RequestHeader | _Sentinel:
        """The request head in the buffer, ConnectionClosed, or NEED_DATA; a refused head raises."""
        try:
            return self._next_request()
        except h11.RemoteProtocolError as exc:
            self._their = _ERROR
            self._failed = True
            raise self._protocol_error(exc) from exc

    def _took_request(self, request: RequestHeader | _Sentinel) -> RequestHeader | None:
        """The request read (None for ConnectionClosed), with the cycle's state set from its fields."""
        if request is _CONNECTION_CLOSED:
            return None
        assert isinstance(request, RequestHeader)
        fields = self._fields
        self._fields = NO_FIELDS  # decided with: an idle connection keeps nothing of its last request
        lowers = fields.lowers
        self._method = request.method
        self._version = request.version
        if "transfer-encoding" not in lowers and (
            "content-length" not in lowers or (fields.pairs[lowers.index("content-length")][1] or "0") == "0"
        ):
            # The end of an empty body comes with the head (`_take_empty_body`'s steps, for a state this
            # side set in `_request`: a Content-Length body of 0 bytes).
            self._their = _DONE
            self._in_body = False
        else:
            self._in_body = True
        http11 = request.version == "1.1"
        self._peer_keepalive = http11 and not (
            "connection" in lowers and _lists(fields.values("connection"), "close")
        )
        self.expects_continue = (
            http11
            and self._in_body
            and "expect" in lowers
            and _lists(fields.values("expect"), "100-continue")
        )
        self.upgrade_requested = request.method == "CONNECT" or (http11 and "upgrade" in lowers)
        return request

    def _next_request(self) -> RequestHeader | _Sentinel:
        """h11's next_event from IDLE: a request, ConnectionClosed, or NEED_DATA."""
        if self._pos < len(self._buf):
            end = self._scanner.scan(self._buf, self._pos)
            if end >= 0:
                return self._request(end)
            return self._need_data()
        if self._eof:
            # h11: ConnectionClosed from IDLE; the server side can then only close.
            self._their = _CLOSED
            if self._our is _IDLE:
                self._our = _DONE
            return _CONNECTION_CLOSED
        return _NEED_DATA

    def _request(self, end: int) -> RequestHeader:
        buf = self._buf
        # The strict checks decide first (`_strict.py`); the fields, known to be well formed, are then split.
        method, target, version, start = check_head(buf, self._pos, end, self._scanner.match)
        fields = known_fields(buf, start, end)
        check_request(method, target, version, fields.noted(CHECKED_FIELDS), self.limits)
        lowers = fields.lowers
        if "content-length" in lowers or "transfer-encoding" in lowers:  # else `normalised` is itself
            fields = fields.normalised()
        if self._our is not _IDLE:
            raise h11.RemoteProtocolError(
                f"can't handle event type Request when role=SERVER and state={self._our}"
            )
        self._pos = end
        # h11's _process_event for a request: switch proposals, states, keep-alive, framing.
        lowers = fields.lowers
        self._connect_proposed = method == "CONNECT"
        self._upgrade_proposed = "upgrade" in lowers and bool(_comma_items(fields.values("upgrade")))
        self._our = _SEND_RESPONSE
        self._their_version = version
        if version < "1.1" or (
            "connection" in lowers and "close" in _comma_items(fields.values("connection"))
        ):
            self._keep_alive = False
        chunked, length = fields.framing()
        self._start_body(_CHUNKED if chunked else _LENGTH, max(length, 0))
        self._fields = fields
        return RequestHeader(method, target, Headers._from_parsed(fields.pairs, fields.lowers), version)

    # -- writing the response --------------------------------------------------------------------------

    async def send_continue(self) -> None:
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
        status = header.status
        known = _STATUS_LINES.get(status)  # `_standard_status_line`, without its frame
        start = known[1] if known is not None and known[0] == header.reason else None
        if start is None:
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
        pairs, lowers, trusted = headers._fields()
        has_connection = "connection" in lowers
        if not has_connection and not tunnel and self._their_version == "1.1" and self.keepalive:
            # `_connection_field`'s usual answer, without its frame.
            pairs.append(("Connection", "keep-alive"))
            lowers.append("connection")
        else:
            pairs, lowers = self._connection_field(pairs, lowers, has_connection, tunnel)
        chunked_field = "transfer-encoding" in lowers
        framed = chunked_field or "content-length" in lowers
        if end and body_allowed and not framed:
            pairs.append(("Content-Length", str(len(body))))
            lowers.append("content-length")
            framed = True
        chunked = self._chunked
        self._chunked = body_allowed and self._version == "1.1" and (chunked_field or not framed)
        try:
            fields = _OutFields(pairs, lowers, trusted=trusted)
        except (h11.LocalProtocolError, UnicodeEncodeError) as exc:
            if not _is_latin1(headers):
                self._chunked = chunked  # h11's codec refuses such a head before it sets the framing
            raise _invalid_head(exc) from exc
        if start is None:
            try:
                start = f"HTTP/1.1 {status} {header.reason}\r\n".encode("latin-1")
            except UnicodeEncodeError as exc:
                raise _invalid_head(exc) from exc
        data = self._response(start, status, fields, body if body_allowed else b"", end and not tunnel)
        # Started before the write: if it fails, part of the head may be out and no other response may follow.
        self.response_started = True
        self.response_header = header
        self._body_allowed = body_allowed
        if has_connection and _has_token(headers, "connection", "close"):
            self._keepalive = False
        await self._send(data)

    def _connection_field(
        self, pairs: list[tuple[str, str]], lowers: list[str], has_connection: bool, tunnel: bool
    ) -> tuple[list[tuple[str, str]], list[str]]:
        """The response's fields with `Connection: close` when the connection ends after it, or
        `Connection: keep-alive` when it does not and the response names none (Pingora's)."""
        if not self.keepalive:
            if has_connection:
                # Dropped fields are not validated, but h11's codec encodes every field given first.
                _latin1(pair for pair, lower in zip(pairs, lowers, strict=True) if lower == "connection")
                pairs = [pair for pair, lower in zip(pairs, lowers, strict=True) if lower != "connection"]
                lowers = [lower for lower in lowers if lower != "connection"]
            pairs.append(("Connection", "close"))
            lowers.append("connection")
        elif not tunnel and not has_connection and self._their_version == "1.1":
            pairs.append(("Connection", "keep-alive"))
            lowers.append("connection")
        return pairs, lowers

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
            if fields.lists("connection", "close"):
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
        head = method == "HEAD"
        framing, length = fields.framing("GET" if head else method, status)
        need_close = False
        if framing is _LENGTH and self._keep_alive and not head:
            return framing, length  # nothing to clean up: the framing read is the framing written
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

    # -- keep-alive ------------------------------------------------------------------------------------

    def next_request_ready(self) -> bool:
        return self.keepalive and self._keep_alive and self._our is _DONE and self._their is _DONE

    def start_next_cycle(self) -> bool:
        if not self.next_request_ready():
            return False
        self._our = self._their = _IDLE
        self._reset_cycle()
        if self._pos >= len(self._buf):
            self._buf = b""  # all read: an idle connection keeps none of its last request's bytes
            self._pos = 0
        return True

    def __repr__(self) -> str:
        return (
            f"<HttptoolsServerConnection client={self._their} server={self._our}"
            f" keepalive={self.keepalive} read={self.bytes_read} written={self.bytes_written}>"
        )
