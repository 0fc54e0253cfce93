"""Service-level behaviour: several endpoints per service, and filters that answer through the session."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.http import Headers, ResponseHeader
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session


class ToPeer(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def test_one_service_serves_on_several_endpoints(
    upstreams: list[Upstream], start_proxy: Any, tmp_path: Path
) -> None:
    socket_path = str(tmp_path / "proxy.sock")

    def listen(service: HttpProxyService) -> None:
        service.add_tcp("127.0.0.1:0")
        service.add_uds(socket_path)
        service.add_tcp("127.0.0.1:0")

    _, service = await start_proxy(ToPeer(upstreams[0].port), listen=listen)
    first, second = service.bound[0], service.bound[2]
    assert first != second
    for host, port in (first, second):
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
            assert (await client.get("/echo/tcp")).status_code == 200
    transport = httpx.AsyncHTTPTransport(uds=socket_path)
    async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
        assert (await client.get("/echo/uds")).status_code == 200
    assert [r["target"] for r in upstreams[0].requests] == ["/echo/tcp", "/echo/tcp", "/echo/uds"]


class AnswersItself(ProxyHttp):
    """Writes the whole response (head, two body pieces, trailers) from request_filter."""

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        header = ResponseHeader.build(200)
        header.insert_header("Transfer-Encoding", "chunked")
        header.insert_header("X-Answered-By", "filter")
        await session.write_response_header(header)
        await session.write_response_body(b"written ")
        await session.write_response_body(b"by the filter")
        await session.write_response_trailers(Headers([("X-Done", "yes")]))
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        raise AssertionError("never asked: the filter answered")


async def test_a_filter_can_write_the_whole_response_with_trailers(start_proxy: Any) -> None:
    base, _ = await start_proxy(AnswersItself())
    stream = await open_stream(base)
    first = await exchange(stream, "GET", "/anything", headers=[("TE", "trailers")])
    second = await exchange(stream, "GET", "/again")  # the connection stays usable afterwards
    await stream.aclose()
    for response in (first, second):
        assert response.status == 200
        assert response.header("x-answered-by") == "filter"
        assert response.body == b"written by the filter"
        assert response.trailers == [("X-Done", "yes")]  # case kept
