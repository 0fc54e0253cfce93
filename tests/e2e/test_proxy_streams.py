"""Message framing and connection reuse end to end: trailers both ways, keep-alive on both sides."""

from __future__ import annotations

from typing import Any

import httpx
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream, *, idle_timeout: float | None = None) -> None:
        self.upstream = upstream
        self.idle_timeout = idle_timeout
        self.reused: list[bool] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        peer = HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")
        peer.options.idle_timeout = self.idle_timeout
        return peer

    async def connected_to_upstream(self, session: Session, reused: bool, peer: HttpPeer, ctx: Any) -> None:
        self.reused.append(reused)


async def test_response_trailers_reach_the_client(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with await open_stream(base) as stream:
        response = await exchange(stream, "GET", "/chunked")
        again = await exchange(stream, "GET", "/chunked")
    assert response.status == 200
    assert response.header("transfer-encoding") == "chunked"
    assert response.body == b"hello chunked world"
    assert response.trailers == [("x-checksum", "done")]
    assert again.trailers == [("x-checksum", "done")]


async def test_request_trailers_reach_the_upstream(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with await open_stream(base) as stream:
        response = await exchange(
            stream,
            "POST",
            "/echo/upload",
            headers=[("Transfer-Encoding", "chunked"), ("Trailer", "x-request-digest")],
            body=[b"first piece, ", b"second piece"],
            trailers=[("x-request-digest", "sha256=abc")],
        )
    assert response.status == 200
    [record] = upstreams[0].requests
    assert record["body"] == "first piece, second piece"
    assert record["trailers"] == [("x-request-digest", "sha256=abc")]


async def test_sequential_requests_share_one_upstream_connection(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = ToFirst(upstreams[0])
    base, _ = await start_proxy(app)
    # A new client each time: the downstream connections differ, the upstream one is pooled.
    for n in range(5):
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.get(f"/echo/{n}")
        assert response.status_code == 200
    assert len(upstreams[0].requests) == 5
    assert upstreams[0].connections == 1
    assert app.reused == [False, True, True, True, True]


async def test_idle_timeout_zero_disables_upstream_reuse(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = ToFirst(upstreams[0], idle_timeout=0)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        for n in range(5):
            response = await client.get(f"/echo/{n}")
            assert response.status_code == 200
    assert len(upstreams[0].requests) == 5
    assert upstreams[0].connections == 5
    assert app.reused == [False] * 5


class RecordsClients(ToFirst):
    def __init__(self, upstream: Upstream) -> None:
        super().__init__(upstream)
        self.clients: list[Any] = []

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        self.clients.append(session.client_addr)
        return False


async def test_httpx_keeps_both_sides_alive(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = RecordsClients(upstreams[0])
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        for n in range(6):
            method = "POST" if n % 2 else "GET"
            response = await client.request(method, f"/echo/{n}", content=b"body" if n % 2 else None)
            assert response.status_code == 200
            assert response.headers.get("connection") == "keep-alive"
    assert len(app.clients) == 6
    assert len(set(app.clients)) == 1  # one downstream connection (one client port) for all six
    assert app.clients[0][0] == "127.0.0.1"
    assert upstreams[0].connections == 1
