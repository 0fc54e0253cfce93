"""`serve_h2`: a client's HTTP/2 connection, each of its streams a request through the phases.

Rules:
- The connection actor that accepted the socket runs `serve_h2` when the client speaks HTTP/2 (ALPN h2 on
  TLS, or the h2c preface on a listener that allows it); the actor stays the unit its supervisor sees.
- The streams run concurrently, each in its own task of a nursery here: the connection is to its streams
  what a supervisor is to temporary children (as the request is to the Exchange's two pumps). It is the
  only place a nursery is opened for them, and what it holds lives and dies with the connection: the
  reader (`H2ServerConnection.serve`, in this task), the writer, and one task per open stream (at most
  `max_concurrent_streams`).
- Each stream is isolated: `serve_request` with a `Session` whose `downstream` is the stream. A stream
  whose handler raises (a bug in our code; the phases' own errors are answered by `serve_request`) is
  answered 500 if its response has not started, else reset (INTERNAL_ERROR), logged with its request and
  counted in `connection_crashes`, as a crashing connection is; its siblings go on. A stream the client
  resets is cancelled (its upstream request with it).
- A gRPC request (`content-type: application/grpc...`) with a `grpc-timeout` field is bounded by it (the
  gRPC over HTTP/2 protocol's deadline): when it passes, the request is cancelled where it is (its
  upstream request with it) and answered, if its response has not started, with gRPC's trailers-only
  DEADLINE_EXCEEDED (HTTP 200, `grpc-status: 4`); a response under way is reset (CANCEL). The field goes
  upstream unchanged, so the server knows the deadline too.
- When the reader ends with an error (the client left, a flood, a protocol error: its GOAWAY queued), the
  open streams are cancelled and the writer sends what is queued (the GOAWAY) and stops; a graceful end
  (drained, idle) has no stream left.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from actorproxy.http import Error, RequestHeader, ResponseHeader
from actorproxy.http.h2 import CANCEL, H2ServerConnection, H2ServerStream

from ._engine import ProxyRuntime, serve_request
from ._session import Session

__all__ = ["GRPC_DEADLINE_EXCEEDED", "grpc_timeout", "serve_h2"]

logger = logging.getLogger("actorproxy.proxy")

# Seconds a crashed stream's 500 (or a gRPC deadline's answer) may take to go out.
CRASH_ANSWER_TIMEOUT = 1.0
# gRPC over HTTP/2: the units of grpc-timeout in seconds, and the status of a deadline that passed.
_GRPC_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
GRPC_DEADLINE_EXCEEDED = "4"


async def serve_h2(
    runtime: ProxyRuntime,
    conn: H2ServerConnection,
    *,
    preface: bytes = b"",
    client_addr: Any = None,
    server_addr: Any = None,
) -> None:
    """Serve `conn` until it ends (see the module rules)."""
    settings = runtime.settings
    async with trio.open_nursery() as nursery:
        nursery.start_soon(conn.write_loop)

        def on_stream(handler: H2ServerStream) -> None:
            nursery.start_soon(_serve_stream, runtime, handler, client_addr, server_addr)

        await conn.serve(on_stream, preface=preface, idle_timeout=settings.keepalive_timeout)
        if conn.error is not None:
            for handler in list(conn.handlers.values()):
                if handler.scope is not None:
                    handler.scope.cancel()


async def _serve_stream(
    runtime: ProxyRuntime, handler: H2ServerStream, client_addr: Any, server_addr: Any
) -> None:
    settings = runtime.settings
    try:
        with trio.CancelScope() as scope:
            handler.scope = scope
            if handler.connection.error is not None:
                return
            header = handler.read_request_nowait()
            assert header is not None
            session = Session(
                handler,
                header,
                client_addr=client_addr,
                server_addr=server_addr,
                keepalive_timeout=settings.keepalive_timeout,
                request_body_timeout=settings.request_body_timeout,
            )
            try:
                deadline = grpc_timeout(header)
                if deadline is None:
                    await serve_request(runtime, session)
                else:
                    with trio.move_on_after(deadline) as bounded:
                        await serve_request(runtime, session)
                    if bounded.cancelled_caught:
                        await _answer_deadline(handler, deadline)
            except Exception:
                runtime.counters.connection_crashes += 1
                logger.exception(
                    "HTTP/2 stream %d crashed: %s", handler.h2stream.id, session.request_summary()
                )
                await _answer_crash(handler)
    finally:
        handler.complete()


def grpc_timeout(header: RequestHeader) -> float | None:
    """The seconds a gRPC request's `grpc-timeout` allows; None for no gRPC request, no field, or one
    that is not `1*8DIGIT unit` (the gRPC over HTTP/2 protocol)."""
    headers = header.headers
    kind = headers.get("content-type")
    if kind is None or not kind.startswith("application/grpc"):
        return None
    value = headers.get("grpc-timeout")
    if value is None or not 2 <= len(value) <= 9 or not value[:-1].isdigit():
        return None
    unit = _GRPC_UNITS.get(value[-1])
    return None if unit is None else int(value[:-1]) * unit


async def _answer_deadline(handler: H2ServerStream, deadline: float) -> None:
    if handler.response_header is not None:
        handler.connection.reset(handler.h2stream, CANCEL)
        return
    header = ResponseHeader.build(200)
    header.insert_header("content-type", "application/grpc")
    header.insert_header("grpc-status", GRPC_DEADLINE_EXCEEDED)
    header.insert_header("grpc-message", f"deadline of {deadline:g} s exceeded at the proxy")
    await _last_answer(handler, header, "the DEADLINE_EXCEEDED answer")


async def _answer_crash(handler: H2ServerStream) -> None:
    if handler.response_header is not None:
        return  # `complete` resets a stream whose response did not end
    header = ResponseHeader.build(500)
    header.insert_header("Content-Length", "0")
    await _last_answer(handler, header, "the crashed stream's 500")


async def _last_answer(handler: H2ServerStream, header: ResponseHeader, what: str) -> None:
    """Send `header` as the whole response, shielded (the stream may be on its way out) and bounded."""
    with trio.move_on_after(CRASH_ANSWER_TIMEOUT) as scope:
        scope.shield = True
        try:
            await handler.write_response(header, end=True)
        except Error as exc:
            logger.debug("%s could not go out: %s", what, exc)
