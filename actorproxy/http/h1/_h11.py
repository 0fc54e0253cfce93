"""The h11 codec, the reference: `H11ServerConnection` faces the client, `H11ClientConnection` the upstream.

Rules:
- The interface and its contract are `ServerSide` / `ClientSide` (`_protocols.py`). Where codecs could
  differ, this one is the reference: the httptools codec gives h11's verdicts, and the tests run on both.
- h11 is the protocol state machine; this module is the thin adapter around it and the one place where h11
  exceptions become `Error` (`raise Error(...) from exc`); the stream's exceptions become `Error` at the
  I/O boundary both codecs share (`_base.py`). `trio.Cancelled` always propagates untouched.
- Requests are checked in front of h11 by the strict checks (`_strict.py`) for what h11 accepts and a proxy
  must not forward (request smuggling, limits): the head on a copy of what h11 buffers, before h11 reads it;
  a chunked body by `ChunkedBodyCheck` as h11 reads it, with h11's data held back at a violation (h11 gets
  no chance to hand over a byte past it).
- Heads and bodies we write go through h11 as events, after the framing of the contract is settled on
  the fields; what h11 returns for one call is joined into one write. Keep-alive is h11's: HTTP/1.1 only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import h11
import trio

from actorproxy.config import DEFAULT_LIMITS, HttpLimits

from .._error import Error, ErrorSource, ErrorType
from .._header import Headers, RequestHeader, ResponseHeader
from ._base import (
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_READ_SIZE,
    _ClientBase,
    _H1Connection,
    _server_limits,
    _ServerBase,
)
from ._rules import _check_status_line, _has_token, _invalid_head
from ._strict import HeadScanner, check_head, check_request, noted_fields
from ._strictbody import ChunkedBodyCheck

__all__ = ["H11ClientConnection", "H11ServerConnection"]

# What building an h11 event from our heads raises for a bad name, value, method or target.
_HEAD_ERRORS = (h11.LocalProtocolError, UnicodeEncodeError)


class _H11Connection(_H1Connection):
    """What both sides share on h11: the state machine, the event loop over the stream, detach."""

    def __init__(self, stream: trio.abc.Stream, conn: h11.Connection, read_size: int) -> None:
        super().__init__(stream, read_size)
        self._h11 = conn
        # The strict chunk rules over a chunked request body (server side), and the body bytes handed over.
        self._body_check: ChunkedBodyCheck | None = None
        self._delivered = 0

    # -- shared machinery ------------------------------------------------------------------------------

    def _held_error(self) -> None:
        """Raise the strict checks' verdict on the body once the bytes before the violation are handed over:
        h11 would read on past it (a bare CR in a chunk extension, framing fields in trailers)."""
        check = self._body_check
        if check is not None and check.error is not None and self._delivered >= check.error_after:
            raise check.error

    async def _next_event(self) -> h11.Event | type[h11.PAUSED] | type[h11.NEED_DATA]:
        conn = self._h11
        while True:
            try:
                self._held_error()
                event = conn.next_event()
            except h11.ProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is not h11.NEED_DATA:
                return event
            data = await self._receive()
            if self._body_check is not None:
                self._body_check.feed(data)
            # h11 takes any bytes-like object (its docstring), though it annotates `bytes`.
            conn.receive_data(cast(bytes, data))

    def _encode(self, events: Iterable[h11.Event]) -> bytes:
        send = self._h11.send_with_data_passthrough
        parts: list[bytes] = []
        try:
            for event in events:
                parts += send(event) or ()
        except h11.LocalProtocolError as exc:
            self._failed = True
            raise Error(ErrorType.H1_ERROR, ErrorSource.INTERNAL, context=str(exc), cause=exc) from exc
        except AttributeError as exc:
            # h11 0.16 bug: refusing a second 101, or a 2xx to CONNECT, after a response started, its
            # _SWITCH_UPGRADE / _SWITCH_CONNECT refusal formats `event_type.__name__` on a tuple. The refusal
            # is the same LocalProtocolError as any event our state does not allow.
            self._failed = True
            context = f"can't handle event type {type(event).__name__} when role={self._h11.our_role}"
            raise Error(ErrorType.H1_ERROR, ErrorSource.INTERNAL, context=context, cause=exc) from exc
        # A single part (a Content-Length body chunk) is returned as is by join, without a copy.
        return b"".join(parts)

    def _encode_data(self, data: bytes) -> bytes:
        return self._encode((h11.Data(data=data),))

    def _raw_headers(self, headers: Headers) -> list[tuple[bytes, bytes]]:
        try:
            return headers.raw()
        except UnicodeEncodeError as exc:
            raise Error(
                ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL, context="header not latin-1", cause=exc
            ) from exc

    def _end_of_message(self, trailers: Headers | None) -> h11.EndOfMessage:
        if not trailers or not self._chunked:
            return h11.EndOfMessage()
        try:
            return h11.EndOfMessage(headers=trailers.raw())
        except _HEAD_ERRORS as exc:
            raise _invalid_head(exc) from exc

    def _take_empty_body(self) -> None:
        # h11 yields the end of an empty body without reading anything. Taking it with the head spares
        # the caller a read_body for every GET and lets the cycle complete without one.
        try:
            event = self._h11.next_event()
        except h11.ProtocolError as exc:
            self._failed = True
            raise self._protocol_error(exc) from exc
        if isinstance(event, h11.EndOfMessage) or event is h11.PAUSED:
            self._in_body = False
        else:  # h11 never yields anything else here; refuse to lose it silently
            raise Error.explain(ErrorType.H1_ERROR, f"unexpected {event!r}", ErrorSource.INTERNAL)

    async def _read_body(self) -> bytes | None:
        while self._in_body:
            data = self._body_event(await self._next_event())
            if data:
                return data
        return None

    def read_body_nowait(self) -> bytes | None:
        while self._in_body:
            try:
                self._held_error()
                event = self._h11.next_event()
            except h11.ProtocolError as exc:
                self._failed = True
                raise self._protocol_error(exc) from exc
            if event is h11.NEED_DATA:
                raise trio.WouldBlock
            data = self._body_event(event)
            if data:
                return data
        return None

    def _body_event(self, event: Any) -> bytes | None:
        if isinstance(event, h11.Data):
            if not event.data:
                return None
            self._delivered += len(event.data)
            return bytes(event.data)
        # EndOfMessage, or PAUSED after a switch of protocols (101, CONNECT): no more body.
        self._in_body = False
        if isinstance(event, h11.EndOfMessage) and event.headers:
            self._trailers = Headers.from_raw(event.headers.raw_items())
        return None

    async def _finish(self, trailers: Headers | None) -> None:
        state = self._h11.our_state
        if state is h11.DONE or state is h11.MUST_CLOSE or state is h11.SWITCHED_PROTOCOL:
            return  # already ended: finishing twice is harmless, as in Pingora
        data = self._encode((self._end_of_message(trailers),))
        if data:  # the end of a Content-Length body is no bytes at all
            await self._send(data)

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        self._detached = True
        leftover, _closed = self._h11.trailing_data
        return self._stream, leftover


class H11ServerConnection(_ServerBase, _H11Connection):
    """`ServerSide` on h11.

    The strict checks run on a copy of what h11 buffers: a head is delimited and held to the limits here
    before h11 parses it, and a chunked body is followed by `ChunkedBodyCheck`.
    """

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        limits: HttpLimits = DEFAULT_LIMITS,
        max_head_size: int | None = None,
    ) -> None:
        limits = _server_limits(limits, max_head_size)
        super().__init__(
            stream, h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes), read_size
        )
        self.limits = limits
        self._scanner = HeadScanner(limits)
        # The head being read, as the client sent it (a copy of what h11 buffers), and where it ends.
        self._head = bytearray()
        self._head_end = -1
        self._keepalive = True  # ours to decide: set_keepalive
        self._reset_cycle()

    # -- reading the request ---------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        self._begin_request()
        while (event := self._request_event()) is h11.NEED_DATA:
            self._feed(await self._receive())
        return self._took_request(event)

    def read_request_nowait(self) -> RequestHeader | None:
        self._begin_request()
        event = self._request_event()
        if event is h11.NEED_DATA:
            self._feed(self._receive_nowait())
            event = self._request_event()
            if event is h11.NEED_DATA:
                raise trio.WouldBlock
        return self._took_request(event)

    def _begin_request(self) -> None:
        conn = self._h11
        if conn.their_state is not h11.IDLE or self._failed:
            raise Error.explain(
                ErrorType.INTERNAL_ERROR, "read_request before start_next_cycle", ErrorSource.INTERNAL
            )
        self._body_check = None
        self._scanner.reset()
        # What h11 holds (a pipelined request's first bytes), then every read: the head as the client sent it.
        self._head = bytearray(conn.trailing_data[0])
        self._head_end = -1

    def _request_event(self) -> Any:
        """h11's next event for the head read so far, after the strict checks; NEED_DATA while incomplete."""
        try:
            if self._head and self._head_end < 0:
                self._head_end = self._check_head(self._head)
            return self._h11.next_event()
        except h11.ProtocolError as exc:
            self._failed = True
            raise self._protocol_error(exc) from exc

    def _feed(self, data: bytes | bytearray) -> None:
        self._h11.receive_data(cast(bytes, data))
        self._head += data

    def _took_request(self, event: Any) -> RequestHeader | None:
        """The request h11 read (None for ConnectionClosed), with the cycle's state set from its fields."""
        if isinstance(event, h11.ConnectionClosed):
            return None
        if not isinstance(event, h11.Request):  # unreachable from IDLE, whatever the client sends
            raise Error.explain(ErrorType.H1_ERROR, f"unexpected {event!r}", ErrorSource.INTERNAL)
        request = RequestHeader(
            event.method.decode("latin-1"),
            event.target.decode("latin-1"),
            Headers.from_raw(event.headers.raw_items()),
            event.http_version.decode("latin-1"),
        )
        self._method = request.method
        self._version = request.version
        self._in_body = True
        self._delivered = 0
        headers = request.headers
        if "transfer-encoding" in headers:
            self._body_check = ChunkedBodyCheck(self.limits)
            self._body_check.feed(self._head[self._head_end :])
        elif headers.get("content-length", "0") == "0":
            self._take_empty_body()
        self._head = bytearray()
        http11 = request.version == "1.1"
        self._peer_keepalive = http11 and not _has_token(headers, "connection", "close")
        self.expects_continue = http11 and self._in_body and _has_token(headers, "expect", "100-continue")
        self.upgrade_requested = request.method == "CONNECT" or (http11 and "upgrade" in headers)
        return request

    def _check_head(self, buf: bytearray) -> int:
        """The strict checks on the head at the start of `buf`, before h11 reads it: where it ends, or -1."""
        end = self._scanner.scan(buf, 0)
        if end >= 0:
            method, target, version, start = check_head(buf, 0, end, self._scanner.match)
            check_request(method, target, version, noted_fields(buf, start, end), self.limits)
        return end

    # -- writing the response --------------------------------------------------------------------------

    async def send_continue(self) -> None:
        if not self.expects_continue or self._continue_sent or self.response_started:
            return
        self._continue_sent = True
        await self._send(
            self._encode((h11.InformationalResponse(status_code=100, headers=[], reason=b"Continue"),))
        )

    async def write_response(self, header: ResponseHeader, body: bytes = b"", *, end: bool = False) -> None:
        status = header.status
        _check_status_line(header)
        raw = self._raw_headers(header.headers)
        if status < 200:
            data = self._encode((self._head_event(h11.InformationalResponse, header, raw),))
            if status == 101:
                self.response_started = True
                self.response_header = header
                self._body_allowed = False
            await self._send(data)
            return
        headers = header.headers
        method = self._method
        tunnel = method == "CONNECT" and status < 300  # RFC 9110 §9.3.6: the connection becomes a tunnel
        body_allowed = not (status in (204, 304) or method == "HEAD" or tunnel)
        if not self.keepalive:
            raw = [field for field in raw if field[0].lower() != b"connection"]
            raw.append((b"Connection", b"close"))
        elif not tunnel and self._h11.their_http_version == b"1.1" and "connection" not in headers:
            # Pingora's: a final response on a connection kept alive says so.
            raw.append((b"Connection", b"keep-alive"))
        framed = "content-length" in headers or "transfer-encoding" in headers
        if end and body_allowed and not framed:
            raw.append((b"Content-Length", str(len(body)).encode("ascii")))
            framed = True
        self._chunked = (
            body_allowed and self._version == "1.1" and ("transfer-encoding" in headers or not framed)
        )
        events: list[h11.Event] = [self._head_event(h11.Response, header, raw)]
        if body and body_allowed:
            events.append(h11.Data(data=body))
        if end and not tunnel:
            events.append(h11.EndOfMessage())
        data = self._encode(events)
        # Started before the write: if it fails, part of the head may be out and no other response may follow.
        self.response_started = True
        self.response_header = header
        self._body_allowed = body_allowed
        if _has_token(headers, "connection", "close"):
            self._keepalive = False
        await self._send(data)

    def _head_event(
        self,
        kind: type[h11.Response | h11.InformationalResponse],
        header: ResponseHeader,
        raw: list[tuple[bytes, bytes]],
    ) -> h11.Response | h11.InformationalResponse:
        try:
            return kind(status_code=header.status, headers=raw, reason=header.reason.encode("latin-1"))
        except _HEAD_ERRORS as exc:
            raise _invalid_head(exc) from exc

    # -- keep-alive ------------------------------------------------------------------------------------

    def next_request_ready(self) -> bool:
        conn = self._h11
        return self.keepalive and conn.our_state is h11.DONE and conn.their_state is h11.DONE

    def start_next_cycle(self) -> bool:
        if not self.next_request_ready():
            return False
        self._h11.start_next_cycle()
        self._reset_cycle()
        return True

    def __repr__(self) -> str:
        return (
            f"<H11ServerConnection client={self._h11.their_state} server={self._h11.our_state}"
            f" keepalive={self.keepalive} read={self.bytes_read} written={self.bytes_written}>"
        )


class H11ClientConnection(_ClientBase, _H11Connection):
    """`ClientSide` on h11."""

    def __init__(
        self,
        stream: trio.abc.Stream,
        *,
        read_size: int = DEFAULT_READ_SIZE,
        max_head_size: int = DEFAULT_MAX_HEAD_SIZE,
        read_timeout: float | None = None,
        write_timeout: float | None = None,
    ) -> None:
        super().__init__(
            stream, h11.Connection(h11.CLIENT, max_incomplete_event_size=max_head_size), read_size
        )
        self.read_timeout = read_timeout
        self.write_timeout = write_timeout
        self._reset_exchange()

    # -- writing the request ---------------------------------------------------------------------------

    def _sharing_stream(self) -> bool:
        return self._h11.our_state is h11.SEND_BODY  # the request body is still being written, by its pump

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        self._reset_exchange()
        self._method = header.method
        headers = header.headers
        raw = self._raw_headers(headers)
        self._chunked = "transfer-encoding" in headers
        if end and body and not self._chunked and "content-length" not in headers:
            raw.append((b"Content-Length", str(len(body)).encode("ascii")))
        try:
            request = h11.Request(method=header.method, target=header.uri, headers=raw)
        except _HEAD_ERRORS as exc:
            raise _invalid_head(exc) from exc
        events: list[h11.Event] = [request]
        if body:
            events.append(h11.Data(data=body))
        if end:
            events.append(h11.EndOfMessage())
        await self._send(self._encode(events))

    # -- reading the response --------------------------------------------------------------------------

    async def read_response(self, *, skip_informational: bool = True) -> ResponseHeader:
        while True:
            event = await self._next_event()
            if isinstance(event, h11.Response):
                response = _response_header(event)
                headers = response.headers
                chunked = "transfer-encoding" in headers
                if chunked and "content-length" in headers:
                    raise self._smuggling_response()
                self._in_body = True
                method = self._method
                if (
                    response.status in (204, 304)
                    or method == "HEAD"
                    or (method == "CONNECT" and response.status < 300)
                    or (not chunked and headers.get("content-length") == "0")
                ):
                    self._take_empty_body()
                return response
            if isinstance(event, h11.InformationalResponse):
                response = _response_header(event)
                if response.status == 101:
                    return response
                self.informational.append(response)
                if not skip_informational:
                    return response
                continue
            raise Error.explain(
                ErrorType.H1_ERROR, f"no response expected now ({event!r})", ErrorSource.INTERNAL
            )

    # -- reuse -----------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        conn = self._h11
        if (
            self._failed
            or self._detached
            or self._must_close
            or conn.our_state is not h11.DONE
            or conn.their_state is not h11.DONE
        ):
            return False
        # Bytes past the response (or an EOF) make the next response ambiguous: Pingora refuses reuse too.
        leftover, closed = conn.trailing_data
        return not leftover and not closed

    def start_next_cycle(self) -> bool:
        if not self.reusable:
            return False
        self._h11.start_next_cycle()
        self._reset_exchange()
        return True

    def __repr__(self) -> str:
        return (
            f"<H11ClientConnection client={self._h11.our_state} server={self._h11.their_state}"
            f" reusable={self.reusable} read={self.bytes_read} written={self.bytes_written}>"
        )


def _response_header(event: h11.Response | h11.InformationalResponse) -> ResponseHeader:
    return ResponseHeader(
        event.status_code,
        Headers.from_raw(event.headers.raw_items()),
        reason=event.reason.decode("latin-1"),
        version=event.http_version.decode("latin-1"),
    )
