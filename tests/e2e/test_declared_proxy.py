"""The proxy declared in YAML, run by a real `Server` on loopback and driven by httpx: routing, header edits,
the proxy's own 404 and 503, failover, and reloads that keep every connection.

Health checks run once at start (their frequency is far beyond a test's length), so what a test sees is the
routing and the retries, not a health round that happened to run.
"""

from __future__ import annotations

import logging
import textwrap
from collections import Counter
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from helpers import refused_port
from upstream import Upstream

from actorproxy.config import ConfigError, ServerConf
from actorproxy.declared import NO_ROUTE_BODY, DeclaredProxyHandle, build_proxy
from actorproxy.server import Server
from actors import ActorSystem

# Far beyond a test's length: the first health round (at start) is the only one.
ONCE = 3600


def routes_yaml(
    api: list[int], web: list[int], *, extra_routes: str = "", api_algorithm: str = "round_robin"
) -> str:
    """Service "edge" on 127.0.0.1:0 with clusters api and web (and "dead", whose only backend refuses)."""
    api_backends = ", ".join(f'"127.0.0.1:{port}"' for port in api)
    web_backends = ", ".join(f'"127.0.0.1:{port}"' for port in web)
    text = textwrap.dedent(
        f"""
        services:
          - name: edge
            listeners:
              - address: 127.0.0.1:0
            routes:
              - host: api.example.com
                upstream: api
              - path_prefix: /web
                upstream: web
                request_headers:
                  set: {{x-route: web}}
                  remove: [x-secret]
                response_headers:
                  set: {{x-served-by: actorproxy}}
                  remove: [x-upstream]
              - header: {{x-cluster: api}}
                upstream: api
              - path_prefix: /api
                upstream: api
                retries: 3
              - path_prefix: /dead
                upstream: dead
        upstreams:
          - name: api
            discovery:
              static: [{api_backends}]
            algorithm: {api_algorithm}
          - name: web
            discovery:
              static: [{web_backends}]
          - name: dead
            discovery:
              static: ["127.0.0.1:{DEAD_PORT}"]
            health_check:
              tcp: {{connect_timeout: 1.0}}
              frequency: {ONCE}
        """
    )
    # Extra routes go last, as items of the service's routes.
    return text.replace("\nupstreams:", "\n" + textwrap.indent(extra_routes, " " * 6) + "upstreams:")


DEAD_PORT = refused_port()


@attrs.frozen
class Running:
    server: Server
    handle: DeclaredProxyHandle
    url: str

    @property
    def system(self) -> ActorSystem:
        assert self.server.system is not None
        return self.server.system


async def run(nursery: trio.Nursery, text: str, conf_path: Path | None = None) -> Running:
    """Build the proxy declared in `text` into a fresh server and serve it in `nursery`."""
    conf = ServerConf.from_yaml(text)
    server = Server(conf)
    if conf_path is not None:
        await trio.Path(conf_path).write_text(text)
        server.conf_path = str(conf_path)
    handle = build_proxy(server)
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    return Running(server, handle, f"http://{host}:{port}")


def upstream_of(response: httpx.Response) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    name: str = response.json()["upstream"]
    return name


def client_port(response: httpx.Response) -> int:
    port: int = response.extensions["network_stream"].get_extra_info("client_addr")[1]
    return port


async def test_requests_are_routed_by_host_path_and_header(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port, up1.port], [up2.port]))
    async with httpx.AsyncClient(base_url=running.url) as client:
        # Host (any case, port ignored) wins over the later path routes.
        by_host = [
            upstream_of(await client.get("/web/x", headers={"host": "API.example.com:80"})) for _ in range(4)
        ]
        assert sorted(by_host) == ["up0", "up0", "up1", "up1"]
        assert upstream_of(await client.get("/web/page")) == "up2"
        assert upstream_of(await client.get("/web")) == "up2"
        assert upstream_of(await client.get("/elsewhere", headers={"x-cluster": "api"})) in {"up0", "up1"}
        assert upstream_of(await client.get("/api/users?id=1")) in {"up0", "up1"}
        # Segment-aware prefixes: /webinar is not under /web.
        missing = await client.get("/webinar")
    assert missing.status_code == 404
    assert all(r["target"] != "/webinar" for u in upstreams for r in u.requests)


async def test_header_edits_are_seen_by_the_upstream_and_the_client(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port, up1.port], [up2.port]))
    async with httpx.AsyncClient(base_url=running.url) as client:
        response = await client.get("/web/x", headers={"x-secret": "s3cret", "x-route": "client's"})
        untouched = await client.get("/api/x", headers={"x-secret": "s3cret"})
    assert response.status_code == 200
    seen = {name.lower(): value for name, value in up2.requests[-1]["headers"]}
    assert "x-secret" not in seen
    assert seen["x-route"] == "web"  # set replaces what the client sent
    assert response.headers["x-served-by"] == "actorproxy"
    assert "x-upstream" not in response.headers
    # Another route's requests and responses are not edited.
    assert untouched.headers["x-upstream"] in {"up0", "up1"}
    assert "x-served-by" not in untouched.headers
    api_seen = {name.lower() for name, _ in (up0.requests + up1.requests)[-1]["headers"]}
    assert "x-secret" in api_seen


async def test_no_route_is_a_404_from_the_proxy(nursery: trio.Nursery, upstreams: list[Upstream]) -> None:
    up0, _, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port], [up2.port]))
    async with httpx.AsyncClient(base_url=running.url) as client:
        response = await client.get("/nowhere")
        head = await client.head("/nowhere")
        after = await client.get("/web/after")  # the connection is still good
    assert response.status_code == 404
    assert response.text == NO_ROUTE_BODY
    assert response.headers["content-type"].startswith("text/plain")
    assert head.status_code == 404 and head.content == b""
    assert upstream_of(after) == "up2"
    assert sum(len(u.requests) for u in upstreams) == 1


async def test_a_cluster_without_a_ready_backend_answers_503(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, _, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port], [up2.port]))
    assert running.handle.load_balancer("dead").ready_backends() == frozenset()
    async with httpx.AsyncClient(base_url=running.url) as client:
        response = await client.get("/dead/x")
        after = await client.get("/api/x")
    assert response.status_code == 503
    assert "no ready backend in upstream 'dead'" in response.text
    assert upstream_of(after) == "up0"


async def serve_in(scope: trio.CancelScope, upstream: Upstream, *, task_status: Any) -> None:
    with scope:
        await upstream.serve(task_status=task_status)


async def test_traffic_goes_on_when_a_backend_dies(nursery: trio.Nursery) -> None:
    backends = [Upstream(f"b{n}") for n in range(3)]
    scopes = [trio.CancelScope() for _ in backends]
    for scope, upstream in zip(scopes, backends, strict=True):
        await nursery.start(partial(serve_in, scope, upstream))
    web = Upstream("web")
    await nursery.start(web.serve)
    running = await run(nursery, routes_yaml([b.port for b in backends], [web.port]))
    async with httpx.AsyncClient(base_url=running.url) as client:
        before = Counter([upstream_of(await client.get("/api/x")) for _ in range(6)])
        assert before == {"b0": 2, "b1": 2, "b2": 2}
        scopes[1].cancel()  # its listener and every connection to it close at once
        # The health check will not notice (it ran once, at start): the retries do, request by request.
        after = Counter([upstream_of(await client.get("/api/x")) for _ in range(12)])
    assert set(after) == {"b0", "b2"}
    assert sum(after.values()) == 12


async def test_a_route_added_by_a_reload_serves_the_next_request_of_an_open_connection(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port, up1.port], [up2.port]))
    web_lb = running.handle.load_balancer("web")
    async with httpx.AsyncClient(base_url=running.url) as client:
        first = await client.get("/web/1")
        ports = [client_port(first)]
        refused = await client.get("/extra/1")
        ports.append(client_port(refused))
        assert refused.status_code == 404

        added = "- path_prefix: /extra\n  upstream: web\n"
        report = await running.handle.reload(
            ServerConf.from_yaml(routes_yaml([up0.port, up1.port], [up2.port], extra_routes=added))
        )

        second = await client.get("/extra/2")
        ports.append(client_port(second))
    assert upstream_of(first) == upstream_of(second) == "up2"
    # One client connection throughout, and one upstream connection: the unchanged cluster kept its pool.
    assert len(set(ports)) == 1
    assert up2.connections == 1
    assert [r["target"] for r in up2.requests] == ["/web/1", "/extra/2"]
    assert report.kept == ("api", "web", "dead")
    assert report.services == ("edge",)
    assert running.handle.load_balancer("web") is web_lb


async def test_a_reload_replaces_changed_clusters_and_keeps_unchanged_ones(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port, up1.port], [up2.port]))
    handle, system = running.handle, running.system
    api_lb, web_lb, dead_lb = (handle.load_balancer(name) for name in ("api", "web", "dead"))

    text = routes_yaml([up1.port], [up2.port]).replace("  - name: dead", "  - name: gone")
    text = text.replace("upstream: dead", "upstream: gone")
    report = await handle.reload(ServerConf.from_yaml(text))

    assert (report.kept, report.replaced, report.added, report.removed) == (
        ("web",),
        ("api",),
        ("gone",),
        ("dead",),
    )
    assert handle.load_balancer("web") is web_lb
    assert handle.load_balancer("api") is not api_lb
    assert set(handle.clusters) == {"api", "web", "gone"}
    # The replaced and removed clusters' services are stopped; the new ones run beside the kept one.
    assert system.whereis("upstream api") is None
    assert system.whereis("upstream dead") is None
    assert system.whereis("upstream web") is not None
    assert system.whereis("upstream api #1") is not None
    assert system.whereis("upstream gone #1") is not None
    assert dead_lb is not handle.load_balancer("gone")
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert {upstream_of(await client.get("/api/x")) for _ in range(4)} == {"up1"}


async def test_a_request_in_flight_finishes_across_a_reload(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port], [up2.port]))
    answers: list[httpx.Response] = []
    async with httpx.AsyncClient(base_url=running.url) as client:

        async def hold() -> None:
            answers.append(await client.get("/hold", headers={"x-cluster": "api"}))

        async with trio.open_nursery() as requests:
            requests.start_soon(hold)
            with trio.fail_after(10):
                await up0.held.wait()
            # The api cluster moves to up1 (its old load balancer stops) while a request is in flight on up0.
            await running.handle.reload(ServerConf.from_yaml(routes_yaml([up1.port], [up2.port])))
            assert running.system.whereis("upstream api") is None
            up0.release.set()
        after = await client.get("/api/x")
    assert upstream_of(answers[0]) == "up0"
    assert upstream_of(after) == "up1"


async def test_a_broken_file_changes_nothing(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up0, up1, up2 = upstreams
    path = tmp_path / "proxy.yaml"
    running = await run(nursery, routes_yaml([up0.port], [up2.port]), conf_path=path)
    api_lb = running.handle.load_balancer("api")
    await trio.Path(path).write_text(routes_yaml([up1.port], [up2.port], api_algorithm="round_robbin"))
    with caplog.at_level(logging.ERROR, logger="actorproxy.declared"):
        await running.server.reload()
    assert "upstreams[0].algorithm" in caplog.text
    assert "nothing changed" in caplog.text
    assert running.handle.load_balancer("api") is api_lb
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert upstream_of(await client.get("/api/x")) == "up0"

    # Fixed, the same file reloads through the server's hook (what SIGHUP runs).
    await trio.Path(path).write_text(routes_yaml([up1.port], [up2.port]))
    await running.server.reload()
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert upstream_of(await client.get("/api/x")) == "up1"


async def test_what_a_reload_cannot_apply_is_logged_by_name_and_the_rest_applies(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port], [up2.port]))
    socket = tmp_path / "never.sock"
    changed = routes_yaml([up1.port], [up2.port]).replace(
        "- address: 127.0.0.1:0", f"- address: 127.0.0.1:0\n      - path: {socket}"
    )
    other = f"  - name: other\n    listeners: [{{path: {tmp_path}/other.sock}}]\n"
    other += "    routes: [{upstream: web}]\n"
    changed = "max_retries: 3\n" + changed.replace("\nupstreams:", "\n" + other + "upstreams:")
    with caplog.at_level(logging.WARNING, logger="actorproxy.declared"):
        report = await running.handle.reload(ServerConf.from_yaml(changed))
    assert any("'edge'" in w and f"unix:{socket}" in w for w in report.warnings), report.warnings
    assert any("'other' is new" in w for w in report.warnings), report.warnings
    assert any("max_retries" in w for w in report.warnings), report.warnings
    assert "listener changes need an upgrade or a restart" in caplog.text
    assert not await trio.Path(socket).exists()
    assert set(running.handle.services) == {"edge"}
    # The routes and clusters changed all the same.
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert upstream_of(await client.get("/api/x")) == "up1"


def flaky_yaml(dead: int, alive: int, retries: str) -> str:
    return textwrap.dedent(
        f"""
        services:
          - name: edge
            listeners: [{{address: "127.0.0.1:0"}}]
            routes:
              - path_prefix: /once
                upstream: flaky
                retries: 0
              - path_prefix: /
                upstream: flaky
                {retries}
        upstreams:
          - name: flaky
            discovery:
              static: ["127.0.0.1:{dead}", "127.0.0.1:{alive}"]
        """
    )


async def test_a_route_bounds_its_retries(nursery: trio.Nursery, upstreams: list[Upstream]) -> None:
    # No health check: the refusing backend stays ready, and round robin offers it every other time.
    running = await run(nursery, flaky_yaml(refused_port(), upstreams[0].port, "retries: 1"))
    async with httpx.AsyncClient(base_url=running.url) as client:
        once = Counter([(await client.get("/once")).status_code for _ in range(4)])
        retried = Counter([(await client.get("/any")).status_code for _ in range(4)])
    assert once == {502: 2, 200: 2}
    assert retried == {200: 4}


async def test_hashing_clusters_keep_a_path_on_one_backend(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(
        nursery, routes_yaml([up0.port, up1.port, up2.port], [up2.port], api_algorithm="consistent")
    )
    async with httpx.AsyncClient(base_url=running.url) as client:
        for path in ("/api/a", "/api/b", "/api/c/d"):
            seen = {upstream_of(await client.get(path)) for _ in range(5)}
            assert len(seen) == 1, (path, seen)
        spread = {upstream_of(await client.get(f"/api/{n}")) for n in range(30)}
    assert len(spread) > 1


async def test_a_cluster_that_cannot_start_leaves_everything_as_it_was(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    up0, up1, up2 = upstreams
    path = tmp_path / "proxy.yaml"
    running = await run(nursery, routes_yaml([up0.port], [up2.port]), conf_path=path)
    api_lb = running.handle.load_balancer("api")
    # api moves to up1 (a new load balancer starts fine), but web's backends file is missing: its first
    # discovery fails, so its load balancer never starts, and the reload is refused as a whole.
    broken = routes_yaml([up1.port], [up2.port]).replace(
        f'static: ["127.0.0.1:{up2.port}"]', f"file: {{path: {tmp_path}/missing.yaml}}"
    )
    await trio.Path(path).write_text(broken)
    with caplog.at_level(logging.ERROR, logger="actorproxy.declared"):
        await running.server.reload()
    assert "reload refused, nothing changed" in caplog.text
    assert running.handle.load_balancer("api") is api_lb
    names = running.system.registry.names()
    assert not [name for name in names if "#" in name], names
    async with httpx.AsyncClient(base_url=running.url) as client:
        assert upstream_of(await client.get("/api/x")) == "up0"
        assert upstream_of(await client.get("/web/x")) == "up2"


async def test_a_service_removed_from_the_file_keeps_its_routes(
    nursery: trio.Nursery, upstreams: list[Upstream]
) -> None:
    up0, up1, up2 = upstreams
    running = await run(nursery, routes_yaml([up0.port], [up2.port]))
    web_lb = running.handle.load_balancer("web")
    upstreams_only = routes_yaml([up1.port], [up2.port]).split("upstreams:", 1)[1]
    report = await running.handle.reload(ServerConf.from_yaml("upstreams:" + upstreams_only))
    assert any("'edge' is no longer in the file" in w for w in report.warnings), report.warnings
    async with httpx.AsyncClient(base_url=running.url) as client:
        # Its routes stay, bound to the clusters of the new file.
        assert upstream_of(await client.get("/api/x")) == "up1"
        without_web = "upstreams:" + upstreams_only.replace("  - name: web", "  - name: www")
        with pytest.raises(ConfigError, match="routes\\[1\\] needs upstream 'web'"):
            await running.handle.reload(ServerConf.from_yaml(without_web))
        assert upstream_of(await client.get("/web/x")) == "up2"
    assert running.handle.load_balancer("web") is web_lb
    assert set(running.handle.clusters) == {"api", "web", "dead"}
