"""Rate limits declared in YAML, served by a real `Server` on loopback and driven by httpx and raw sockets:
429 per key, a spoofed X-Forwarded-For that does not dodge the limit, in-flight limits freed when clients
give up on a slow upstream."""

from __future__ import annotations

import textwrap

import httpx
import trio
from upstream import Upstream

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.server import Server

# Waiting for a freed in-flight place, polling the proxy: generous for a loaded machine.
FREED_TIMEOUT = 10.0


async def serve(
    nursery: trio.Nursery, upstream: Upstream, rate_limit: str, tmp: str, service: str = ""
) -> str:
    """The declared proxy with one route to `upstream` limited by `rate_limit`; returns its URL."""
    text = textwrap.dedent(
        f"""
        upgrade_sock: {tmp}/upgrade.sock
        services:
          - name: edge
            listeners: [{{address: 127.0.0.1:0}}]
            {service}
            routes:
              - upstream: app
                rate_limit: {rate_limit}
        upstreams:
          - {{name: app, discovery: {{static: ["127.0.0.1:{upstream.port}"]}}}}
        """
    )
    server = Server(ServerConf.from_yaml(text))
    handle = build_proxy(server)
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    return f"http://{host}:{port}"


async def test_a_key_over_its_limit_gets_429_while_another_key_passes(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: str
) -> None:
    url = await serve(nursery, upstreams[0], "{key: 'header:x-api-key', rate: 1/min, burst: 3}", tmp_path)
    async with httpx.AsyncClient(base_url=url) as client:
        first = [(await client.get("/echo", headers={"x-api-key": "a"})).status_code for _ in range(4)]
        other = await client.get("/echo", headers={"x-api-key": "b"})
        refused = await client.get("/echo", headers={"x-api-key": "a"})
    assert first == [200, 200, 200, 429]
    assert other.status_code == 200
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "60"
    assert refused.headers["ratelimit-policy"] == '"rate";q=1;w=60'
    assert refused.headers["ratelimit"].startswith('"rate";r=0;t=')
    assert len(upstreams[0].requests) == 4  # refused requests never went upstream


async def test_a_spoofed_forwarded_address_does_not_dodge_the_limit(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: str
) -> None:
    # The proxy trusts only 10.0.0.0/8; the test's client is 127.0.0.1.
    url = await serve(
        nursery,
        upstreams[0],
        "{key: client_ip, rate: 1/min, burst: 2}",
        tmp_path,
        "trusted_proxies: [10.0.0.0/8]",
    )
    async with httpx.AsyncClient(base_url=url) as client:
        statuses = [
            (await client.get("/echo", headers={"x-forwarded-for": f"198.51.100.{n}"})).status_code
            for n in range(4)
        ]
    assert statuses == [200, 200, 429, 429]


async def test_behind_a_trusted_proxy_the_forwarded_address_is_the_key(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: str
) -> None:
    url = await serve(
        nursery,
        upstreams[0],
        "{key: client_ip, rate: 1/min, burst: 1}",
        tmp_path,
        "trusted_proxies: [127.0.0.1]",
    )
    async with httpx.AsyncClient(base_url=url) as client:
        one = [
            (await client.get("/echo", headers={"x-forwarded-for": "198.51.100.1"})).status_code for _ in "ab"
        ]
        # A client can only prepend: the address the trusted proxy appended is the one counted.
        prepended = await client.get("/echo", headers={"x-forwarded-for": "203.0.113.5, 198.51.100.1"})
        two = await client.get("/echo", headers={"x-forwarded-for": "198.51.100.2"})
    assert one == [200, 429]
    assert prepended.status_code == 429
    assert two.status_code == 200


async def test_in_flight_places_held_by_a_slow_upstream_are_freed_when_clients_give_up(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: str
) -> None:
    upstream = upstreams[0]
    url = await serve(nursery, upstream, "{key: 'header:x-api-key', inflight: 2}", tmp_path)
    port = int(url.rsplit(":", 1)[1])
    held = [await trio.open_tcp_stream("127.0.0.1", port) for _ in range(2)]
    for stream in held:
        await stream.send_all(b"GET /hold HTTP/1.1\r\nHost: x\r\nX-Api-Key: a\r\n\r\n")
    with trio.fail_after(FREED_TIMEOUT):
        while sum(r["target"] == "/hold" for r in upstream.requests) < 2:  # noqa: ASYNC110 - an origin's list
            await trio.sleep(0.01)
    async with httpx.AsyncClient(base_url=url) as client:
        third = await client.get("/echo", headers={"x-api-key": "a"})
        assert (third.status_code, third.headers["ratelimit-policy"]) == (429, '"inflight";q=2')
        assert (await client.get("/echo", headers={"x-api-key": "b"})).status_code == 200
        # The two clients give up while the upstream still holds their requests.
        for stream in held:
            await stream.aclose()
        with trio.fail_after(FREED_TIMEOUT):
            while (await client.get("/echo", headers={"x-api-key": "a"})).status_code == 429:  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert not upstream.release.is_set()  # the upstream never answered them


async def test_a_reload_adds_and_changes_limits_without_a_restart(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: str
) -> None:
    text = textwrap.dedent(
        f"""
        upgrade_sock: {tmp_path}/upgrade.sock
        services:
          - name: edge
            listeners: [{{address: 127.0.0.1:0}}]
            routes:
              - {{upstream: app}}
        upstreams:
          - {{name: app, discovery: {{static: ["127.0.0.1:{upstreams[0].port}"]}}}}
        """
    )
    server = Server(ServerConf.from_yaml(text))
    handle = build_proxy(server)
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    limited = text.replace(
        "- {upstream: app}", "- {upstream: app, rate_limit: {key: route, rate: 1/min, burst: 2}}"
    )
    async with httpx.AsyncClient(base_url=f"http://{host}:{port}") as client:
        assert [(await client.get("/echo")).status_code for _ in range(3)] == [200] * 3
        await handle.reload(ServerConf.from_yaml(limited))
        assert [(await client.get("/echo")).status_code for _ in range(3)] == [200, 200, 429]
        [stats] = handle.services["edge"].app.limit_statistics()
        assert (stats.label, stats.allowed, stats.limited) == ("edge.routes[0]", 2, 1)
        # Another limit starts from a whole burst, not from the old one's state.
        await handle.reload(ServerConf.from_yaml(limited.replace("burst: 2", "burst: 3")))
        assert [(await client.get("/echo")).status_code for _ in range(4)] == [200, 200, 200, 429]
