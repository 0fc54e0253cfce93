"""The Prometheus page of a real server on loopback, read back with prometheus-client's own parsers: what
the proxy counts, users' own metrics, content negotiation, and one sum over `threads: 2` workers that
survives a killed worker and a graceful upgrade."""

from __future__ import annotations

import os
import signal
import textwrap
from pathlib import Path

import httpx
import prometheus_client
import trio
from helpers import refused_port
from processes import START_TIMEOUT, actorproxy_process, has, listening
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families
from upstream import Upstream

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.metrics import PrometheusService
from actorproxy.server import Server

# Polling a page that other workers update every snapshot interval (1 s): a bound, not a delay.
SUM_TIMEOUT = 15.0
USER_COUNTER = prometheus_client.Counter("e2e_widgets", "Widgets an application made, for the metrics test.")


def conf_text(port: int, tmp_path: Path, **top: object) -> str:
    """A proxy to `port` and a dead cluster, with the metrics page. The page listens on 127.0.0.2: listening
    sockets are keyed by address, and workers or an upgrade take "host:0" for one socket."""
    extra = "".join(f"{key}: {value}\n" for key, value in top.items())
    return extra + textwrap.dedent(
        f"""
        upgrade_sock: {tmp_path}/upgrade.sock
        pid_file: {tmp_path}/proxy.pid
        grace_period_seconds: 2
        graceful_shutdown_timeout_seconds: 1
        metrics: {{listen: "127.0.0.2:0"}}
        services:
          - name: edge
            listeners: [{{address: "127.0.0.1:0"}}]
            routes:
              - {{path_prefix: /dead, upstream: dead}}
              - {{path_prefix: /limited, upstream: app, rate_limit: {{key: route, rate: 1/min, burst: 1}}}}
              - {{upstream: app}}
        upstreams:
          - {{name: app, discovery: {{static: ["127.0.0.1:{port}"]}}}}
          - name: dead
            discovery: {{static: ["127.0.0.1:{refused_port()}"]}}
            health_check: {{tcp: {{}}, frequency: 3600}}
        """
    )


def sample(text: str, name: str, **labels: str) -> float:
    """The sum of the samples `name` whose labels include `labels` (0 when there is none)."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name and labels.items() <= s.labels.items()
    )


async def get_many(url: str, count: int, path: str = "/echo") -> None:
    """`count` requests, each on a new connection (so workers share them)."""
    for _ in range(count):
        async with httpx.AsyncClient() as client:
            response = await client.get(url + path)
            assert response.status_code == 200, (url + path, response.status_code, response.text)


async def scrape(url: str) -> str:
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.status_code == 200, (url, response.status_code, response.text)
    return response.text


async def until_requests(url: str, expected: float) -> str:
    with trio.fail_after(SUM_TIMEOUT):
        while True:
            text = await scrape(url)
            if sample(text, "actorproxy_requests_total", service="edge") == expected:
                return text
            await trio.sleep(0.1)


async def test_the_page_shows_the_proxy_its_clusters_its_actors_and_users_metrics(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    server = Server(ServerConf.from_yaml(conf_text(upstreams[0].port, tmp_path)))
    handle = build_proxy(server)
    [page] = server.add_configured_services()
    assert isinstance(page, PrometheusService)
    await nursery.start(server.serve)
    edge = "http://{}:{}".format(*handle.services["edge"].service.bound[0][:2])
    url = "http://{}:{}/metrics".format(*page.bound[0][:2])
    USER_COUNTER.inc(3)
    async with httpx.AsyncClient(base_url=edge) as client:
        for _ in range(5):
            assert (await client.get("/echo")).status_code == 200
        assert (await client.get("/dead")).status_code == 503  # its only backend failed its health check
        assert (await client.get("/limited")).status_code == 200
        assert (await client.get("/limited")).status_code == 429
    done = await trio.run_process(["curl", "-sS", url], capture_stdout=True)
    text = done.stdout.decode()
    assert sample(text, "actorproxy_requests_total", service="edge", method="GET", code="2xx") == 6
    assert sample(text, "actorproxy_requests_total", service="edge", route="routes[0]", code="5xx") == 1
    assert sample(text, "actorproxy_connections_total", service="edge") == 1
    assert sample(text, "actorproxy_open_connections", service="edge") == 0  # the client has closed
    assert sample(text, "actorproxy_sent_bytes_total", service="edge") > 0
    assert sample(text, "actorproxy_pool_in_use_connections", service="edge") == 0
    assert sample(text, "actorproxy_request_duration_seconds_count", service="edge") == 8
    assert sample(text, "actorproxy_pool_reused_total", service="edge") == 5  # one connection, kept alive
    assert sample(text, "actorproxy_backends", upstream="app", state="ready") == 1
    assert sample(text, "actorproxy_backends", upstream="dead", state="unhealthy") == 1
    assert sample(text, "actorproxy_request_errors_total", service="edge") == 1
    assert sample(text, "actorproxy_actors", kind="ConnectionActor") >= 1
    assert sample(text, "actorproxy_actors", kind="LoadBalancerActor") == 2
    assert "actorproxy_supervisor_restarts_total" in text and "actorproxy_dead_letters_total" in text
    assert sample(text, "actorproxy_rate_limit_decisions_total", decision="allowed") == 1
    assert sample(text, "actorproxy_rate_limit_decisions_total", decision="limited") == 1
    assert sample(text, "e2e_widgets_total") >= 3  # prometheus-client's default registry is on the page
    assert sample(text, "actorproxy_requests_total", service="metrics") == 0  # the page is not a service


async def test_openmetrics_when_asked_and_clear_answers_elsewhere(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    server = Server(ServerConf.from_yaml(conf_text(upstreams[0].port, tmp_path)))
    build_proxy(server)
    [page] = server.add_configured_services()
    await nursery.start(server.serve)
    base = "http://{}:{}".format(*page.bound[0][:2])
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
        assert response.headers["content-type"].startswith("application/openmetrics-text")
        names = {family.name for family in openmetrics_families(response.text)}
        assert {"actorproxy_requests", "actorproxy_backends", "actorproxy_actors"} <= names
        plain = await client.get("/metrics")
        assert plain.headers["content-type"].startswith("text/plain; version=0.0.4")
        assert (await client.get("/elsewhere")).status_code == 404
        refused = await client.post("/metrics")
        assert (refused.status_code, refused.headers["allow"]) == (405, "GET, HEAD")


def pid_files(tmp_path: Path) -> set[int]:
    return {
        int(entry.stem)
        for entry in (tmp_path / "upgrade.sock.metrics").glob("*.json")
        if entry.stem.isdigit()
    }


async def test_workers_add_up_on_one_page_and_a_killed_worker_keeps_its_counts(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf = tmp_path / "proxy.yaml"
    conf.write_text(conf_text(upstreams[0].port, tmp_path, threads=2))
    async with actorproxy_process(nursery, conf) as proxy:
        line = await proxy.stdout.wait_for(has("metrics page at "))
        page = line.split("metrics page at ", 1)[1].strip()
        await get_many(proxy.url, 40)
        await until_requests(page, 40)
        with trio.fail_after(SUM_TIMEOUT):
            while len(pid_files(tmp_path)) < 2:  # noqa: ASYNC110 - both workers write their snapshots
                await trio.sleep(0.1)
        victim = min(pid_files(tmp_path))
        os.kill(victim, signal.SIGKILL)
        with trio.fail_after(SUM_TIMEOUT):  # the master forks a replacement, which writes its own
            while len(pid_files(tmp_path) - {victim}) < 2:  # noqa: ASYNC110
                await trio.sleep(0.1)
        await until_requests(page, 40)  # the dead worker's requests still count
        await get_many(proxy.url, 10)
        await until_requests(page, 50)
        proxy.process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            assert await proxy.process.wait() == 0


async def test_counts_carry_on_across_a_graceful_upgrade(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf = tmp_path / "proxy.yaml"
    conf.write_text(conf_text(upstreams[0].port, tmp_path))
    async with actorproxy_process(nursery, conf) as old:
        line = await old.stdout.wait_for(has("metrics page at "))
        page = line.split("metrics page at ", 1)[1].strip()
        await get_many(old.url, 7)
        async with actorproxy_process(nursery, conf, "-u", wait=False) as new:
            with trio.fail_after(START_TIMEOUT):
                await new.stderr.wait_for(has("waiting for the running server"))
                old.process.send_signal(signal.SIGQUIT)
                assert await old.process.wait() == 0
            await listening(new)
            await get_many(new.url, 5)
            await until_requests(page, 12)  # the old server's 7 and the new one's 5
            new.process.send_signal(signal.SIGTERM)
            with trio.fail_after(START_TIMEOUT):
                assert await new.process.wait() == 0
