"""Failures end to end: filter errors under load, refused and slow upstreams, retries and their bound."""

from __future__ import annotations

from typing import Any

import httpx
import trio
import trio.testing
from helpers import refused_port
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.http import Error, ErrorType
from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToPort(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


class FailsEveryTenth(ToPort):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        number = int(session.req_header.path.rsplit("/", 1)[1])
        if number % 10 == 0:
            raise ValueError(f"request {number} refused by a buggy filter")
        return False


async def test_filter_errors_under_200_concurrent_requests(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(FailsEveryTenth(upstreams[0].port))
    statuses: dict[int, int] = {}
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=10) as client:

        async def one(number: int) -> None:
            response = await client.get(f"/echo/{number}")
            statuses[number] = response.status_code
            if response.status_code == 200:
                assert response.json()["target"] == f"/echo/{number}"

        async with trio.open_nursery() as nursery:
            for number in range(1, 201):
                nursery.start_soon(one, number)
        after = await client.get("/echo/7")
    async with httpx.AsyncClient(base_url=base) as fresh:
        fresh_after = await fresh.get("/echo/8")
    assert {n for n, status in statuses.items() if status == 500} == set(range(10, 201, 10))
    assert {n for n, status in statuses.items() if status == 200} == {n for n in range(1, 201) if n % 10}
    assert after.status_code == 200 and fresh_after.status_code == 200
    assert len(upstreams[0].requests) == 182


async def test_refused_upstream_answers_502(start_proxy: Any) -> None:
    base, _ = await start_proxy(ToPort(refused_port()))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.status_code == 502


class Failover(ProxyHttp):
    """Pingora's failover example: the first peer, and after a refused connect, the second."""

    def __init__(self, first: int, second: int) -> None:
        self.first = first
        self.second = second
        self.peers: list[int] = []
        self.failed: list[tuple[int | None, ErrorType]] = []

    def new_ctx(self) -> dict[str, int]:
        return {"tries": 0}

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        port = self.first if ctx["tries"] < 1 else self.second
        self.peers.append(port)
        return HttpPeer(("127.0.0.1", port), tls=False, sni="")

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        self.failed.append((peer.port, e.etype))
        if ctx["tries"] > 0:
            return e
        ctx["tries"] += 1
        e.set_retry(True)
        return e


async def test_retry_fails_over_to_the_second_peer(upstreams: list[Upstream], start_proxy: Any) -> None:
    dead = refused_port()
    app = Failover(dead, upstreams[1].port)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo/failover")
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "up1"
    assert app.peers == [dead, upstreams[1].port]
    assert app.failed == [(dead, ErrorType.CONNECT_REFUSED)]
    assert len(upstreams[1].requests) == 1


async def test_failover_gives_up_when_the_second_peer_fails_too(start_proxy: Any) -> None:
    first, second = refused_port(), refused_port()
    app = Failover(first, second)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.status_code == 502
    assert app.peers == [first, second]


class Impatient(ToPort):
    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        peer = await super().upstream_peer(session, ctx)
        peer.options.read_timeout = 0.2
        return peer


async def test_upstream_read_timeout_answers_504(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(Impatient(upstreams[0].port))
    async with await open_stream(base) as stream:
        start = trio.current_time()
        response = await exchange(stream, "GET", "/slow?delay=2")
        elapsed = trio.current_time() - start
    assert response.status == 504
    assert 0.2 <= elapsed < 2.0
    assert [r["target"] for r in upstreams[0].requests] == ["/slow?delay=2"]


async def test_an_upstream_read_waits_without_a_cancel_scope_its_deadline_kept_by_the_pool_actor(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, service = await start_proxy(Impatient(upstreams[0].port))
    deadlines = service.pool.deadlines
    assert deadlines.watched
    async with await open_stream(base) as stream, trio.open_nursery() as nursery:
        answers: list[int] = []

        async def ask() -> None:
            answers.append((await exchange(stream, "GET", "/slow?delay=2")).status)

        nursery.start_soon(ask)
        await trio.testing.wait_all_tasks_blocked()  # the upstream sleeps; the proxy waits for its answer
        assert len(deadlines) == 1  # that read's deadline (0.2 s), armed there
        assert deadlines.next_deadline() < trio.current_time() + 1
    assert answers == [504]
    # What remains armed is the client connection's wait for its next request (keep-alive: 60 s).
    assert len(deadlines) <= 1
    assert deadlines.next_deadline() > trio.current_time() + 1


async def test_upstream_read_timeout_with_a_request_body_answers_504(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Impatient(upstreams[0].port))
    async with await open_stream(base) as stream:
        response = await exchange(
            stream, "POST", "/slow?delay=2", headers=[("Content-Length", "4")], body=[b"data"]
        )
    assert response.status == 504
    assert [r["body"] for r in upstreams[0].requests] == ["data"]


class AlwaysRetry(ToPort):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.attempts = 0

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        self.attempts += 1
        return await super().upstream_peer(session, ctx)

    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        e.set_retry(True)
        return e


async def test_max_retries_bounds_the_attempts(start_proxy: Any) -> None:
    app = AlwaysRetry(refused_port())
    base, service = await start_proxy(app, max_retries=3)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.status_code == 502
    assert app.attempts == 3  # Pingora's rule: max_retries tries in all
    assert service.counters.retries == 2


class RecordsReuse(ToPort):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.reused: list[bool] = []

    async def connected_to_upstream(self, session: Session, reused: bool, peer: HttpPeer, ctx: Any) -> None:
        self.reused.append(reused)


async def test_get_on_a_reused_connection_the_upstream_dropped_is_retried(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = RecordsReuse(upstreams[0].port)
    base, service = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        first = await client.get("/drop-on-reuse/1")
        second = await client.get("/drop-on-reuse/2")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["target"] == "/drop-on-reuse/2"
    # The pooled connection was tried, found closed before any response byte, and the GET went to a new one.
    assert app.reused == [False, True, False]
    assert upstreams[0].dropped == 1
    assert upstreams[0].connections == 2
    assert service.counters.retries == 1


async def test_put_with_a_body_on_a_reused_connection_the_upstream_dropped_is_retried(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = RecordsReuse(upstreams[0].port)
    base, service = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        first = await client.get("/drop-on-reuse/1")
        second = await client.put("/drop-on-reuse/2", content=b"idempotent, and whole in the retry buffer")
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.json()["body"] == "idempotent, and whole in the retry buffer"
    assert app.reused == [False, True, False]
    assert service.counters.retries == 1


async def test_post_on_a_reused_connection_the_upstream_dropped_is_not_retried(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = RecordsReuse(upstreams[0].port)
    base, service = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        first = await client.get("/drop-on-reuse/1")
        second = await client.post("/drop-on-reuse/2", content=b"not idempotent")
    assert (first.status_code, second.status_code) == (200, 502)
    assert app.reused == [False, True]
    assert upstreams[0].dropped == 1
    assert service.counters.retries == 0


async def test_upstream_closing_idle_connections_costs_the_client_nothing(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToPort(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        statuses = [(await client.get("/close-after")).status_code for _ in range(3)]
    # Each pooled connection was closed by the origin; whether the pool saw it at checkout or the request
    # failed on it and was retried, every GET is answered.
    assert statuses == [200, 200, 200]
    assert upstreams[0].connections == 3


class RecordsErrors(ToPort):
    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.logged: list[Error | None] = []

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        self.logged.append(e)


async def test_upstream_failing_mid_body_cuts_the_client_off(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = RecordsErrors(upstreams[0].port)
    base, _ = await start_proxy(app)
    received = b""
    async with await open_stream(base) as stream:
        await stream.send_all(b"GET /truncated HTTP/1.1\r\nHost: localhost\r\n\r\n")
        while data := await stream.receive_some(65536):
            received += data
    # The head had gone out: no error answer can follow, the connection just ends before the body does.
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    assert b"content-length: 1000" in head.lower()
    assert body == b"0123456789"
    [error] = app.logged
    assert error is not None and error.etype == ErrorType.CONNECTION_CLOSED
