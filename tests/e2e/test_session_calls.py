"""The `Session` calls of Pingora's guide and examples, used from filters and seen by a real client."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
from rawhttp import open_stream
from upstream import Upstream

from actorproxy.http import ResponseHeader
from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class Answers(ProxyHttp):
    """Answers by itself on a few paths; forwards the rest."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.seen: dict[str, Any] = {}

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        path = session.req_header.path
        if path == "/teapot":
            await session.respond_error_with_body(418, b"short and stout")
            return True
        if path == "/inspect":
            self.seen = {
                "token": session.get_header_bytes("x-token"),
                "missing": session.get_header_bytes("x-missing"),
                "empty": session.is_body_empty(),
                "http2": session.is_http2(),
                "summary": session.request_summary(),
            }
            await session.drain_request_body()
            self.seen["done"] = session.is_body_done()
            self.seen["buffer"] = session.get_retry_buffer()
            await session.respond_error_with_body(200, b"inspected")
            return True
        if path == "/bye":
            await session.shutdown()
            return True
        return False

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def test_respond_error_with_body(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(Answers(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/teapot")
        assert (response.status_code, response.text) == (418, "short and stout")
        assert response.headers["content-length"] == "15"
        assert response.headers["connection"] == "keep-alive"
        assert (await client.get("/echo")).status_code == 200  # the same connection goes on
    assert len(upstreams[0].requests) == 1


async def test_the_request_calls(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = Answers(upstreams[0].port)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post(
            "/inspect", content=b"a body", headers={"X-Token": "t1", "X-Request-Id": "req-7"}
        )
    assert (response.status_code, response.text) == (200, "inspected")
    assert response.headers["x-request-id"] == "req-7"  # a well-formed id is kept and returned
    host = base.removeprefix("http://")
    assert app.seen == {
        "token": b"t1",
        "missing": b"",
        "empty": False,
        "http2": False,
        "summary": f"POST /inspect, Host: {host}, request id req-7",
        "done": True,
        "buffer": b"a body",
    }


async def test_shutdown_closes_the_connection_without_an_answer(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Answers(upstreams[0].port))
    stream = await open_stream(base)
    await stream.send_all(b"GET /bye HTTP/1.1\r\nHost: x\r\n\r\n")
    with trio.fail_after(10):
        assert await stream.receive_some(65536) == b""


async def test_write_continue_response_and_the_body_after_it(start_proxy: Any) -> None:
    class Continue(ProxyHttp):
        async def request_filter(self, session: Session, ctx: Any) -> bool:
            await session.write_continue_response()
            body = b""
            while (piece := await session.read_request_body()) is not None:
                body += piece
            await session.respond_error_with_body(200, body.upper())
            return True

        async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
            raise AssertionError("not reached")

    base, _ = await start_proxy(Continue())
    stream = await open_stream(base)
    await stream.send_all(b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
    with trio.fail_after(10):
        interim = await stream.receive_some(65536)
    assert interim.startswith(b"HTTP/1.1 100 ")
    await stream.send_all(b"hello")
    answer = b""
    with trio.fail_after(10):
        while not answer.endswith(b"HELLO"):
            answer += await stream.receive_some(65536)
    assert answer.startswith(b"HTTP/1.1 200 ")


@pytest.mark.parametrize("data", [None, b""])
async def test_write_response_body_takes_none_or_nothing(data: bytes | None, start_proxy: Any) -> None:
    class Streams(ProxyHttp):
        async def request_filter(self, session: Session, ctx: Any) -> bool:
            await session.write_response_header(ResponseHeader(200, [("Content-Type", "text/plain")]))
            await session.write_response_body(b"one ")
            await session.write_response_body(data)
            await session.write_response_body(b"two", end_of_stream=True)
            return True

        async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
            raise AssertionError("not reached")

    base, _ = await start_proxy(Streams())
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/")).text == "one two"
