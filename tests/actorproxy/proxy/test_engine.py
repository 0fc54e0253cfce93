"""The request lifecycle on memory streams: phase order, retries, upstream reuse, body streaming, errors."""

from __future__ import annotations

from typing import Any

import h11
import pytest
import trio
from memory_proxy import ORIGIN, OTHER_ORIGIN, ToOrigin, read_until_closed
from trio.testing import MockClock

from actorproxy.http import Error, ErrorSource, ErrorType, RequestHeader, ResponseHeader
from actorproxy.proxy import BodyChunk, HttpPeer, Session
from actorproxy.testing import MemoryNetwork, Origin, OriginRequest, OriginResponse, exchange


class Recorder(ToOrigin):
    """Records each phase as it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[str] = []

    async def early_request_filter(self, session: Session, ctx: Any) -> None:
        self.calls.append("early_request_filter")

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        self.calls.append("request_filter")
        return False

    async def request_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.calls.append("request_body_filter")
        return None

    async def proxy_upstream_filter(self, session: Session, ctx: Any) -> bool:
        self.calls.append("proxy_upstream_filter")
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        self.calls.append("upstream_peer")
        return await super().upstream_peer(session, ctx)

    async def connected_to_upstream(self, session: Session, reused: bool, peer: HttpPeer, ctx: Any) -> None:
        self.calls.append("connected_to_upstream")

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: Any
    ) -> None:
        self.calls.append("upstream_request_filter")

    async def upstream_response_filter(
        self, session: Session, upstream_response: ResponseHeader, ctx: Any
    ) -> None:
        self.calls.append("upstream_response_filter")

    async def upstream_response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.calls.append("upstream_response_body_filter")
        return None

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        self.calls.append("response_filter")

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.calls.append("response_body_filter")
        return None

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        self.calls.append("logging")


async def test_the_phases_run_in_pingoras_order(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    app = Recorder()
    proxy = await start_proxy(app)
    async with await proxy.connect() as stream:
        response = await exchange(
            stream,
            "POST",
            "/phases",
            headers=[("Content-Length", "4"), ("Connection", "close")],
            body=[b"data"],
        )
        await read_until_closed(stream)  # closed once the last phase ran
    assert response.status == 200
    assert origin.requests[0].body == b"data"
    assert app.calls[:6] == [
        "early_request_filter",
        "request_filter",
        "proxy_upstream_filter",
        "upstream_peer",
        "connected_to_upstream",
        "upstream_request_filter",
    ]
    # The request body (one piece, then its end) is pumped while the response is read, after its head went.
    assert app.calls.count("request_body_filter") == 2
    body_filters = ["upstream_response_body_filter", "response_body_filter"]
    assert [call for call in app.calls[6:] if call != "request_body_filter"] == [
        "upstream_response_filter",
        "response_filter",
        *body_filters,  # the body
        *body_filters,  # its end
        "logging",
    ]


class FailsOver(ToOrigin):
    """The first peer, then after a failed connect the second (Pingora's failover example)."""

    def __init__(self, first: tuple[str, int], second: tuple[str, int]) -> None:
        super().__init__()
        self.addresses = [first, second]
        self.failed: list[tuple[Any, ErrorType, ErrorSource]] = []

    def new_ctx(self) -> dict[str, int]:
        return {"tries": 0}

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(self.addresses[min(ctx["tries"], 1)], tls=False, sni="")

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        self.failed.append((peer.address, e.etype, e.source))
        ctx["tries"] += 1
        e.set_retry(True)
        return e


async def test_a_refused_connect_is_retried_on_the_next_peer(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    second = Origin(name="second")
    network.serve(OTHER_ORIGIN, second.serve)
    app = FailsOver(ORIGIN, OTHER_ORIGIN)  # nobody serves ORIGIN
    proxy = await start_proxy(app)
    response = await proxy.get("/failover")
    assert response.status == 200
    assert response.header("x-origin") == "second"
    assert app.failed == [(ORIGIN, ErrorType.CONNECT_REFUSED, ErrorSource.UPSTREAM)]
    assert network.refused[ORIGIN] == 1
    assert network.opened(OTHER_ORIGIN) == 1
    assert proxy.service.counters.retries == 1


async def test_retries_stop_at_max_retries(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    app = FailsOver(ORIGIN, ORIGIN)
    proxy = await start_proxy(app, max_retries=3)
    response = await proxy.get("/never")
    assert response.status == 502
    assert network.refused[ORIGIN] == 3  # Pingora's rule: max_retries tries in all
    assert proxy.service.counters.retries == 2


async def test_one_upstream_connection_serves_sequential_requests(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    async with await proxy.connect() as first:
        for n in range(3):
            assert (await exchange(first, "GET", f"/first/{n}")).status == 200
    # Another client connection takes the same pooled upstream connection.
    assert (await proxy.get("/second")).status == 200
    assert origin.targets == ["/first/0", "/first/1", "/first/2", "/second"]
    assert proxy.network.opened(ORIGIN) == 1
    assert {request.connection for request in origin.requests} == {0}


async def test_an_upstream_connection_the_origin_closes_is_not_reused(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    async def close_after(request: OriginRequest) -> OriginResponse:
        return OriginResponse(body=b"once", close=True)

    network.serve(ORIGIN, Origin(close_after).serve)
    proxy = await start_proxy()
    async with await proxy.connect() as stream:
        for _ in range(3):
            response = await exchange(stream, "GET", "/once")
            assert (response.status, response.body) == (200, b"once")
    assert network.opened(ORIGIN) == 3
    assert proxy.service.pool.statistics().idle == 0


async def test_the_request_body_streams_upstream_before_it_is_complete(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    first_piece = trio.Event()
    received = bytearray()

    async def upstream(stream: trio.abc.Stream) -> None:
        conn = h11.Connection(h11.SERVER)
        while not isinstance(event := conn.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                conn.receive_data(bytes(await stream.receive_some(65536)))
            elif isinstance(event, h11.Data):
                received.extend(event.data)
                first_piece.set()
        data = conn.send(h11.Response(status_code=200, headers=[("Content-Length", "2")]))
        await stream.send_all((data or b"") + (conn.send(h11.Data(data=b"ok")) or b""))

    network.serve(ORIGIN, upstream)
    proxy = await start_proxy()
    async with await proxy.connect() as stream:
        await stream.send_all(b"POST /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nfirst")
        with trio.fail_after(5):
            await first_piece.wait()  # the origin has the first half; the client has not sent the rest
        assert bytes(received) == b"first"
        await stream.send_all(b"-half")
        answer = await stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok")
    assert bytes(received) == b"first-half"


async def test_a_refused_connect_answers_502(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    proxy = await start_proxy()
    response = await proxy.get("/nobody")
    assert response.status == 502
    assert network.refused[ORIGIN] == 1
    assert proxy.service.counters.errors == {ErrorType.CONNECT_REFUSED.name: 1}


async def test_an_origin_that_closes_without_answering_gets_502(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any
) -> None:
    async def hang_up(stream: trio.abc.Stream) -> None:
        await stream.receive_some(65536)  # the request arrives; no answer

    network.serve(ORIGIN, hang_up)
    proxy = await start_proxy()
    response = await proxy.get("/hang-up")
    assert response.status == 502
    assert network.opened(ORIGIN) == 1  # a fresh connection: not retried
    assert proxy.service.pool.statistics().idle == 0


class Raises(ToOrigin):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        raise RuntimeError("a bug in a filter")


async def test_an_exception_in_a_filter_answers_500_and_nothing_goes_upstream(
    autojump_clock: MockClock, origin: Origin, start_proxy: Any
) -> None:
    proxy = await start_proxy(Raises())
    async with await proxy.connect() as stream:
        started = trio.current_time()
        response = await exchange(stream, "GET", "/boom", until_closed=True)
        assert trio.current_time() == started  # closed after the answer, not at the keep-alive timeout
    assert response.status == 500
    assert response.header("connection") == "close"
    assert origin.requests == []
    assert proxy.service.counters.internal_errors == 1


@pytest.mark.parametrize("status", [200, 404, 503])
async def test_the_origins_status_reaches_the_client(
    autojump_clock: MockClock, network: MemoryNetwork, start_proxy: Any, status: int
) -> None:
    async def answer(request: OriginRequest) -> OriginResponse:
        return OriginResponse(status=status)

    network.serve(ORIGIN, Origin(answer).serve)
    proxy = await start_proxy()
    assert (await proxy.get("/status")).status == status
    assert proxy.service.counters.responses == {status // 100: 1}
