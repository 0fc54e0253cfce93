"""Request phases end to end: each hook's effect seen by a real client or by the origin server.

Phase calls are counted after the proxy closed the connection (the request asked for `Connection: close`):
the connection ends only once the request's last phase, `logging`, has run, so no sleep is needed.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
import pytest
import trio
from helpers import refused_port
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.http import Error, ErrorType, ResponseHeader
from actorproxy.proxy import BodyChunk, HttpPeer, ProxyHttp, Session


class App(ProxyHttp):
    """Proxies to one upstream port; records every `logging` call."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.logged: list[tuple[str, Error | None]] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        self.logged.append((session.req_header.uri, e))


class Forbids(App):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        if session.req_header.path.startswith("/forbidden"):
            await session.respond_error(403)
            return True
        return False


async def test_request_filter_answers_403_itself(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = Forbids(upstreams[0].port)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        denied = await client.get("/forbidden/x")
        allowed = await client.get("/echo/ok")
    assert denied.status_code == 403
    assert denied.content == b""
    assert allowed.status_code == 200
    assert [r["target"] for r in upstreams[0].requests] == ["/echo/ok"]


async def test_error_answer_to_a_get_keeps_the_connection_alive(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Forbids(upstreams[0].port))
    async with await open_stream(base) as stream:
        denied = await exchange(stream, "GET", "/forbidden/x")
        assert denied.status == 403
        assert denied.header("connection") == "keep-alive"
        # The same connection serves the next request.
        allowed = await exchange(stream, "GET", "/echo/ok")
        assert allowed.status == 200


class Declines(App):
    async def proxy_upstream_filter(self, session: Session, ctx: Any) -> bool:
        return False


async def test_proxy_upstream_filter_false_answers_502(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(Declines(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.status_code == 502
    assert upstreams[0].requests == []


class Raises(App):
    async def request_filter(self, session: Session, ctx: Any) -> bool:
        if session.req_header.path == "/boom":
            raise RuntimeError("filter bug")
        return False


@pytest.mark.parametrize(
    "case",
    [
        ("upstream", "/echo/fine", 200, None),
        ("upstream", "/boom", 500, ErrorType.INTERNAL_ERROR),
        ("refused", "/echo/refused", 502, ErrorType.CONNECT_REFUSED),
    ],
    ids=["success", "filter-error", "upstream-failure"],
)
async def test_logging_runs_exactly_once_per_request(
    upstreams: list[Upstream], start_proxy: Any, case: tuple[str, str, int, ErrorType | None]
) -> None:
    where, target, status, etype = case
    port = upstreams[0].port if where == "upstream" else refused_port()
    app = Raises(port)
    base, _ = await start_proxy(app)
    async with await open_stream(base) as stream:
        response = await exchange(stream, "GET", target, headers=[("Connection", "close")], until_closed=True)
    assert response.status == status
    [(uri, error)] = app.logged
    assert uri == target
    if etype is None:
        assert error is None
    else:
        assert error is not None and error.etype == etype


class Summarises(Raises):
    def __init__(self, port: int, *, suppress: bool) -> None:
        super().__init__(port)
        self.suppress = suppress
        self.asked_to_suppress: list[ErrorType] = []

    def request_summary(self, session: Session, ctx: Any) -> str:
        return f"summary[{session.req_header.method} {session.req_header.path}]"

    def suppress_error_log(self, session: Session, ctx: Any, e: Error) -> bool:
        self.asked_to_suppress.append(e.etype)
        return self.suppress


async def test_error_log_uses_request_summary(
    upstreams: list[Upstream], start_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="actorproxy.proxy")
    app = Summarises(upstreams[0].port, suppress=False)
    base, _ = await start_proxy(app)
    async with await open_stream(base) as stream:
        response = await exchange(
            stream, "GET", "/boom", headers=[("Connection", "close")], until_closed=True
        )
    assert response.status == 500
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].startswith("summary[GET /boom]")
    assert "filter bug" in errors[0] or "RuntimeError" in errors[0]


async def test_suppress_error_log_hides_the_error(
    upstreams: list[Upstream], start_proxy: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="actorproxy.proxy")
    app = Summarises(upstreams[0].port, suppress=True)
    base, _ = await start_proxy(app)
    async with await open_stream(base) as stream:
        response = await exchange(
            stream, "GET", "/boom", headers=[("Connection", "close")], until_closed=True
        )
    assert response.status == 500
    assert app.asked_to_suppress == [ErrorType.INTERNAL_ERROR]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


class RewritesHeaders(App):
    async def upstream_request_filter(self, session: Session, upstream_request: Any, ctx: Any) -> None:
        upstream_request.insert_header("X-Via-Proxy", "actorproxy")

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        upstream_response.insert_header("X-Upstream", "hidden")
        upstream_response.insert_header("X-Served-By", "proxy")


async def test_upstream_request_filter_header_reaches_the_upstream(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(RewritesHeaders(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    added = [value for name, value in response.json()["headers"] if name.lower() == "x-via-proxy"]
    assert added == ["actorproxy"]


async def test_response_filter_header_reaches_the_client(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(RewritesHeaders(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert response.status_code == 200
    assert response.headers.get_list("x-upstream") == ["hidden"]
    assert response.headers["x-served-by"] == "proxy"


class RewritesBody(App):
    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        # The new body has another length: drop Content-Length so the codec re-frames it chunked.
        upstream_response.remove_header("Content-Length")

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        if body.data is not None:
            body.data = body.data.replace(b"x", b"ab")
        return None


async def test_response_body_filter_rewrites_the_body(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(RewritesBody(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/big?size=200000")
        follow = await client.get("/echo")  # the connection is still in a clean state
    assert response.status_code == 200
    assert "content-length" not in response.headers
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == b"ab" * 200_000
    assert follow.status_code == 200 and json.loads(follow.content)["target"] == "/echo"


class Throttles(App):
    DELAY = 0.02

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.calls = 0

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.calls += 1
        return self.DELAY


async def test_throttling_body_filter_still_delivers_the_whole_body(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = Throttles(upstreams[0].port)
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        start = trio.current_time()
        response = await client.get("/big?size=300000")
        elapsed = trio.current_time() - start
    assert response.status_code == 200
    assert response.content == b"x" * 300_000
    assert app.calls >= 2
    # Every call's delay was waited out before the next piece: the stream was really throttled.
    assert elapsed >= Throttles.DELAY * (app.calls - 1)


class ThrottlesUploads(App):
    DELAY = 0.02

    def __init__(self, port: int) -> None:
        super().__init__(port)
        self.calls = 0

    async def request_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.calls += 1
        return self.DELAY


async def test_throttling_request_body_filter_still_delivers_the_whole_body(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    app = ThrottlesUploads(upstreams[0].port)
    base, _ = await start_proxy(app)
    payload = bytes(range(256)) * 1200
    async with httpx.AsyncClient(base_url=base) as client:
        start = trio.current_time()
        response = await client.post("/status/200", content=payload)
        elapsed = trio.current_time() - start
    assert response.status_code == 200
    [record] = upstreams[0].requests
    assert record["body"].encode("latin-1") == payload
    assert app.calls >= 2
    assert elapsed >= ThrottlesUploads.DELAY * (app.calls - 1)
