"""gRPC through the proxy: a real `grpcio` client to an h2c listener, a real `grpcio` server behind it (h2c
with prior knowledge upstream). Generic handlers with raw bytes (no generated code): unary, server
streaming, client streaming, bidirectional streaming, an error status in the trailers, and `grpc-timeout`
as the deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from typing import Any

import grpc
import pytest
import trio
from h2client import RawH2
from h2origin import H2Origin

from actorproxy.proxy import ALPN, HttpPeer, HttpProxyService, PeerOptions, ProxyHttp, Session

SERVICE = "test.Echo"
# A wait longer than any test: a handler that sleeps it is ended by the deadline only.
LONG = 30.0


def _unary(request: bytes, context: grpc.ServicerContext) -> bytes:
    if request == b"fail":
        context.abort(grpc.StatusCode.FAILED_PRECONDITION, "asked to fail")
    if request == b"slow":
        remaining = context.time_remaining()
        context.set_trailing_metadata([("x-remaining", f"{remaining:.3f}")])
        # A slow handler: it answers only once the RPC has ended (the deadline, or the proxy's reset).
        ended = threading.Event()
        context.add_callback(ended.set)
        ended.wait(LONG)
    context.set_trailing_metadata([("x-trailer", "unary")])
    return b"echo:" + request


def _server_stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
    for n in range(int(request)):
        yield f"item {n}".encode() * 100


def _client_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
    return b"|".join(requests)


def _bidi(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
    for request in requests:
        yield request.upper()


def _identity(data: bytes) -> bytes:
    return data


HANDLERS = grpc.method_handlers_generic_handler(
    SERVICE,
    {
        "Unary": grpc.unary_unary_rpc_method_handler(_unary, _identity, _identity),
        "ServerStream": grpc.unary_stream_rpc_method_handler(_server_stream, _identity, _identity),
        "ClientStream": grpc.stream_unary_rpc_method_handler(_client_stream, _identity, _identity),
        "Bidi": grpc.stream_stream_rpc_method_handler(_bidi, _identity, _identity),
    },
)


@pytest.fixture
def grpc_port() -> Iterator[int]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


class ToGrpc(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="", options=PeerOptions(alpn=ALPN.H2))


def h2c(service: HttpProxyService) -> None:
    service.add_tcp("127.0.0.1:0", h2c=True)


@pytest.fixture
async def channel_target(grpc_port: int, start_proxy: Any) -> str:
    base, _ = await start_proxy(ToGrpc(grpc_port), listen=h2c)
    return base.removeprefix("http://")


def call(target: str, method: str, kind: str) -> Any:
    """A callable for `method` on a new channel to `target` (closed when the process ends)."""
    channel = grpc.insecure_channel(target)
    make = {
        "unary": channel.unary_unary,
        "server": channel.unary_stream,
        "client": channel.stream_unary,
        "bidi": channel.stream_stream,
    }[kind]
    return make(f"/{SERVICE}/{method}")


async def in_thread(function: Any, *args: Any, **kwargs: Any) -> Any:
    return await trio.to_thread.run_sync(lambda: function(*args, **kwargs))


async def test_unary(channel_target: str) -> None:
    unary = call(channel_target, "Unary", "unary")
    response, outcome = await in_thread(unary.with_call, b"hello", timeout=10)
    assert response == b"echo:hello"
    assert outcome.code() == grpc.StatusCode.OK
    assert ("x-trailer", "unary") in outcome.trailing_metadata()


async def test_server_streaming(channel_target: str) -> None:
    stream = call(channel_target, "ServerStream", "server")
    items = await in_thread(lambda: list(stream(b"50", timeout=10)))
    assert items == [f"item {n}".encode() * 100 for n in range(50)]


async def test_client_streaming(channel_target: str) -> None:
    stream = call(channel_target, "ClientStream", "client")
    pieces = [f"piece{n}".encode() * 1000 for n in range(20)]
    response = await in_thread(stream, iter(pieces), timeout=10)
    assert response == b"|".join(pieces)


async def test_bidirectional_streaming_answers_each_message_before_the_next(channel_target: str) -> None:
    bidi = call(channel_target, "Bidi", "bidi")

    def converse() -> list[bytes]:
        # Each message is sent only once the answer to the previous one came: a proxy that waited for the
        # whole request body (or the whole response) would hang here.
        outbox: list[bytes] = []
        answers: list[bytes] = []
        ready = futures.Future[None]()
        ready.set_result(None)
        gates = [ready]

        def requests() -> Iterator[bytes]:
            for n in range(5):
                gates[-1].result(timeout=10)
                gates.append(futures.Future())
                outbox.append(f"message {n}".encode())
                yield outbox[-1]

        for answer in bidi(requests(), timeout=10):
            answers.append(answer)
            gates[-1].set_result(None)
        return answers

    answers = await in_thread(converse)
    assert answers == [f"MESSAGE {n}".encode() for n in range(5)]


async def test_an_error_status_comes_in_the_trailers(channel_target: str) -> None:
    unary = call(channel_target, "Unary", "unary")
    with pytest.raises(grpc.RpcError) as caught:
        await in_thread(unary, b"fail", timeout=10)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert error.details() == "asked to fail"


async def test_grpc_timeout_is_the_deadline(channel_target: str) -> None:
    unary = call(channel_target, "Unary", "unary")
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as caught:
        await in_thread(unary, b"slow", timeout=0.5)
    error: Any = caught.value
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < LONG / 2


async def test_the_proxy_ends_a_grpc_call_at_its_deadline(nursery: trio.Nursery, start_proxy: Any) -> None:
    # An upstream that answers after 5 s whatever the deadline says (no gRPC server: it ignores the field).
    origin = H2Origin()
    await nursery.start(origin.serve)
    base, _ = await start_proxy(ToGrpc(origin.port), listen=h2c)
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]))
    try:
        started = trio.current_time()
        grpc_fields = [("content-type", "application/grpc"), ("te", "trailers"), ("grpc-timeout", "300m")]
        late = await client.request("/slow?delay=5", method="POST", body=b"\0\0\0\0\0", extra=grpc_fields)
        await client.until(lambda: client.done(late), 4)
        answer = client.answers[late]
        assert answer.status == 200
        assert answer.headers["grpc-status"] == "4"  # DEADLINE_EXCEEDED, trailers-only
        assert answer.ended
        assert trio.current_time() - started < 4
        assert not client.closed  # the connection goes on
    finally:
        await client.aclose()
    assert origin.requests[0]["path"] == "/slow?delay=5"
