"""The proxy end to end: httpx → actorproxy → origin servers on loopback."""

from __future__ import annotations

from typing import Any

import httpx
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


async def test_get_is_proxied_and_both_sides_keep_alive(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        for n in range(10):
            response = await client.get(f"/echo/{n}", headers={"X-Case-Kept": "yes"})
            assert response.status_code == 200
            assert response.json()["target"] == f"/echo/{n}"
            assert ("X-Case-Kept", "yes") in [tuple(h) for h in response.json()["headers"]]
    assert len(upstreams[0].requests) == 10
    # One upstream connection served all ten requests: the pool reused it.
    assert upstreams[0].connections == 1


async def test_post_body_reaches_the_upstream(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.post("/echo", content=b"a" * 100_000)
    assert response.status_code == 200
    assert response.json()["body"] == "a" * 100_000


async def test_chunked_response_with_trailers_is_streamed(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/chunked")
    assert response.status_code == 200
    assert response.text == "hello chunked world"
    assert response.headers["transfer-encoding"] == "chunked"


async def test_head_has_no_body(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.head("/echo")
        follow = await client.get("/echo")
    assert response.status_code == 200 and response.content == b""
    assert follow.status_code == 200
