"""What every HTTP/1.1 codec provides: `ServerSide` faces the client, `ClientSide` faces the upstream.

Rules:
- These protocols are the contract, documented here once: each codec's classes (`_h11.py`, `_httptools.py`)
  have exactly these public members, structurally (they do not inherit from the protocols), and say only
  what is particular to them. `Codec` (`_select.py`) is typed by them, so mypy checks each codec against
  them, and a test checks the members at run time.
- The interface is messages, never a parser's types: `RequestHeader` / `ResponseHeader` heads, body chunks as
  non-empty `bytes` (None marks the end), trailers as `Headers`.
- One stream write per call: a head goes out together with the first body piece and, with `end=True`, the
  end of the message (measured +4-21% on the trio skeleton). Reads are `read_size` bytes (64 KiB).
- Framing follows the headers, as h11 decides it (RFC 9112 §6): Transfer-Encoding: chunked, else
  Content-Length, else (responses to HTTP/1.1 clients) chunked, else (HTTP/1.0) close-delimited. A head
  written with `end=True` and no framing header gets `Content-Length` of its body. A response that has no
  body (to HEAD, 1xx, 204, 304, 2xx to CONNECT) drops body bytes; trailers are dropped unless chunked.
  Requests and responses are always written as HTTP/1.1.
- Requests from clients pass the strict checks (`_strict.py`) before they are parsed: the head before the
  parser reads it, a chunked body as it is read, so no byte past a violation is handed over. An upstream
  response with both Content-Length and Transfer-Encoding is refused (502) and its connection not reused.
- A peer's protocol violation raises `ProtocolError`, an `Error` with the status to answer the client with:
  the strict checks' status or h11's hint for a bad request, 502 for a bad response. A violation of our own
  (an invalid header set by a filter, body after the end) is an `INTERNAL` `Error`. I/O failures are
  `READ_ERROR` / `WRITE_ERROR` (and the client side's `READ_TIMEDOUT` / `WRITE_TIMEDOUT`) with the
  transport's exception as the cause; `trio.Cancelled` propagates untouched.
- After an error on the wire (I/O, timeout, protocol, cancellation mid-write) the connection serves no
  further request and is never reused; the caller closes it. A head refused before anything was sent
  (an invalid header) leaves the connection as it was, so the caller can still answer 500.
- Keep-alive is HTTP/1.1's: a `Connection: close` on either side, or HTTP/1.0, ends the connection after
  the exchange (no HTTP/1.0 keep-alive, as in h11).
- `bytes_read` / `bytes_written` count wire bytes: heads, framing and bodies.
"""

from __future__ import annotations

from typing import Protocol

import trio

from actorproxy.config import HttpLimits

from .._header import Headers, RequestHeader, ResponseHeader

__all__ = ["ClientSide", "ServerSide"]


class _Connection(Protocol):
    """What both sides have: the stream, its byte counts, the body in hand, the end of the connection."""

    @property
    def stream(self) -> trio.abc.Stream:
        """The underlying stream (for a pool's idle watch); reading or writing it directly breaks framing."""

    @property
    def bytes_read(self) -> int:
        """Wire bytes received on this connection."""

    @property
    def bytes_written(self) -> int:
        """Wire bytes sent on this connection."""

    @property
    def body_done(self) -> bool:
        """The current message's body has been read to its end (at once for a message without a body)."""

    def read_body_nowait(self) -> bytes | None:
        """The next body piece if it is already buffered, or None at the end of the body.

        Lets a caller send a head together with the body that arrived with it, in one write.

        Raises:
            trio.WouldBlock: nothing is buffered; `read_body` would wait for the peer.
        """

    # -- the end of the connection -----------------------------------------------------------------------

    def detach(self) -> tuple[trio.abc.Stream, bytes]:
        """Give up the stream, for a raw tunnel after a 101 or a CONNECT.

        Returns:
            The stream, and the bytes already read from it that belong to the tunnel.
        """

    async def close(self) -> None:
        """Close the stream gracefully (a TLS close_notify, if any); a detached stream is left alone."""

    async def abort(self) -> None:
        """Close the stream at once, without a graceful shutdown; a detached stream is left alone."""


class ServerSide(_Connection, Protocol):
    """The downstream side of one client connection: read requests, write responses.

    One request/response cycle at a time: `read_request`, `read_body` until None, `write_response`,
    `write_body`, `finish`, then `start_next_cycle` to keep the connection alive (or close it).

    A codec builds one with `codec.server(stream, *, read_size=DEFAULT_READ_SIZE, limits=DEFAULT_LIMITS,
    max_head_size=None)`.

    Args:
        stream: the accepted connection.
        read_size: bytes per read.
        limits: how large a request may be (`HttpLimits`).
        max_head_size: replaces `limits.max_header_bytes`: the largest request head accepted; a larger one
            raises `ProtocolError` with hint 431.
    """

    @property
    def limits(self) -> HttpLimits:
        """The limits requests are held to (`max_head_size` applied)."""

    @property
    def expects_continue(self) -> bool:
        """The request carried `Expect: 100-continue` (HTTP/1.1) and has a body; the client may wait for
        `send_continue` before sending it."""

    @property
    def upgrade_requested(self) -> bool:
        """The request asks to switch protocols: an `Upgrade` header on HTTP/1.1 (Pingora's
        `is_upgrade_req`), or CONNECT."""

    @property
    def response_started(self) -> bool:
        """A final response head (or a 101) has been written, so no other response can be."""

    @property
    def response_header(self) -> ResponseHeader | None:
        """That head, as given to `write_response`."""

    # -- the request -------------------------------------------------------------------------------------

    async def read_request(self) -> RequestHeader | None:
        """Read the next request head.

        Returns:
            The head, or None when the client closed the connection cleanly before starting a request.

        Raises:
            ProtocolError: a malformed or refused head (`status_hint` says what to answer).
            Error: `CONNECTION_CLOSED` if the client closed mid-head, `READ_ERROR` on a transport failure.
        """

    def read_request_nowait(self) -> RequestHeader | None:
        """`read_request` when the head is buffered already, or arrives with one read that does not wait.

        Lets a caller bound the wait for a request with a deadline only when there is a wait (a keep-alive
        connection's next request is often there already under load). What it read stays buffered for
        `read_request`.

        Raises:
            trio.WouldBlock: the head is not complete yet (or the stream cannot be read without waiting).
            ProtocolError, Error: as `read_request`.
        """

    async def read_body(self) -> bytes | None:
        """The next chunk of the request body (never empty), or None at its end.

        A client that sent `Expect: 100-continue` may wait for `send_continue` before sending the body.
        """

    @property
    def request_trailers(self) -> Headers | None:
        """The trailer fields of a chunked request body, once `read_body` returned None (None if none)."""

    # -- the response ------------------------------------------------------------------------------------

    async def send_continue(self) -> None:
        """Write `100 Continue` if the client asked for it and no response has been written yet."""

    async def write_response(self, header: ResponseHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a response head, with the first piece of the body, in one write.

        A 1xx head is informational (a 101 switches protocols: `detach` next); it has no body and no end.

        Args:
            header: the head to write; it is not modified (`Connection: close` and `Content-Length` are
                added on the wire only).
            body: the first piece of the body.
            end: the body is complete: end the message too.

        Raises:
            Error: `WRITE_ERROR` if the client is gone; `INTERNAL` for a head h11's rules refuse to write.
        """

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the response body (dropped if the response has no body)."""

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the response; trailers are written only if the body is chunked. A second call does nothing."""

    # -- keep-alive --------------------------------------------------------------------------------------

    @property
    def keepalive(self) -> bool:
        """Whether the connection may serve another request after this one."""

    def set_keepalive(self, enabled: bool) -> None:
        """Allow or refuse another request; refusing adds `Connection: close` to a response not yet sent."""

    def next_request_ready(self) -> bool:
        """Whether the request and its response are both complete and the connection may serve another."""

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `next_request_ready`; False means the caller closes."""


class ClientSide(_Connection, Protocol):
    """The upstream side of one connection to a peer: write requests, read responses.

    One exchange at a time: `write_request`, `write_body`, `finish`, `read_response`, `read_body` until
    None, then `start_next_cycle` if `reusable` (the pool's decision) or close.

    A codec builds one with `codec.client(stream, *, read_size=DEFAULT_READ_SIZE,
    max_head_size=DEFAULT_MAX_HEAD_SIZE, read_timeout=None, write_timeout=None)`.

    Args:
        stream: the connection to the upstream.
        read_size: bytes per read.
        max_head_size: largest response head accepted.
        read_timeout: seconds each single read may take; None waits forever.
        write_timeout: seconds each single write may take; None waits forever.

    Attributes:
        read_timeout, write_timeout: as above; a pool may change them per peer between exchanges.
    """

    read_timeout: float | None
    write_timeout: float | None

    @property
    def informational(self) -> list[ResponseHeader]:
        """The 1xx responses (other than 101) of the current exchange, in order."""

    # -- the request -------------------------------------------------------------------------------------

    async def write_request(self, header: RequestHeader, body: bytes = b"", *, end: bool = False) -> None:
        """Write a request head, with the first piece of the body, in one write.

        The headers decide the framing: a request with a body needs Content-Length or
        Transfer-Encoding: chunked, except with `end=True`, where a missing Content-Length is added.
        Requests are always written as HTTP/1.1, with exactly one Host header (h11's rule).

        Raises:
            Error: `WRITE_ERROR` / `WRITE_TIMEDOUT` from the upstream; `INTERNAL` for a head h11's rules
                refuse.
        """

    async def write_body(self, data: bytes) -> None:
        """Write a piece of the request body."""

    async def finish(self, trailers: Headers | None = None) -> None:
        """End the request; trailers are written only if the body is chunked. A second call does nothing."""

    # -- the response ------------------------------------------------------------------------------------

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

    async def read_body(self) -> bytes | None:
        """The next chunk of the response body (never empty), or None at its end."""

    @property
    def response_trailers(self) -> Headers | None:
        """The trailer fields of a chunked response body, once `read_body` returned None (None if none)."""

    # -- reuse -------------------------------------------------------------------------------------------

    @property
    def reusable(self) -> bool:
        """Whether the exchange completed cleanly and the connection can carry another request."""

    def start_next_cycle(self) -> bool:
        """Get ready for the next request if `reusable`; False means the caller closes."""
