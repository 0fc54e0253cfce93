"""The admin API on a real listener, driven by httpx, curl and a real WebSocket client: the tree, the
clusters and a backend taken out of rotation, the token rules, the redacted configuration, reload, the
counters, and pushes that follow a crash."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio_websocket
from adminrun import TOKEN, AdminRunning, admin_yaml, run_admin
from upstream import Upstream

from actorproxy.config import ConfigError, ServerConf
from actorproxy.server import Server

WRITE = {"X-Admin-Token": TOKEN}


def find(nodes: list[dict[str, Any]], path: str) -> dict[str, Any] | None:
    for node in nodes:
        if node["path"] == path:
            return node
        found = find(node["children"], path)
        if found is not None:
            return found
    return None


async def served_by(running: AdminRunning, count: int) -> Counter[str]:
    async with httpx.AsyncClient(base_url=running.proxy_url) as client:
        return Counter([(await client.get("/echo")).json()["upstream"] for _ in range(count)])


@pytest.fixture
async def running(nursery: trio.Nursery, upstreams: list[Upstream]) -> AdminRunning:
    return await run_admin(nursery, admin_yaml([upstreams[0].port, upstreams[1].port]))


async def test_the_tree_lists_every_actor_with_state_uptime_restarts_and_mailbox(
    running: AdminRunning,
) -> None:
    async with running.client() as client:
        answer = await client.get("/api/tree")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    tree = answer.json()["tree"]
    assert [node["path"] for node in tree] == ["/upstream api", "/edge", "/admin"]
    lb = find(tree, "/upstream api/lb")
    assert lb is not None
    assert (lb["kind"], lb["state"], lb["restarts"], lb["mailbox_capacity"]) == (
        "LoadBalancerActor",
        "running",
        0,
        1024,
    )
    assert lb["uptime"] >= 0 and lb["mailbox"] == 0 and lb["children"] == []
    connections = find(tree, "/edge/connections")
    assert connections is not None and connections["kind"] == "DynamicSupervisor"


async def test_a_disabled_backend_leaves_rotation_and_comes_back(
    running: AdminRunning, upstreams: list[Upstream]
) -> None:
    first = f"127.0.0.1:{upstreams[0].port}"
    async with running.client() as client:
        [cluster] = (await client.get("/api/clusters")).json()["clusters"]
        assert cluster["name"] == "api" and cluster["ready"] == 2
        assert {b["address"]: (b["healthy"], b["enabled"]) for b in cluster["backends"]} == {
            first: (True, True),
            f"127.0.0.1:{upstreams[1].port}": (True, True),
        }
        assert set(await served_by(running, 4)) == {"up0", "up1"}
        disabled = await client.post(f"/api/clusters/api/backends/{first}/disable", headers=WRITE)
        assert disabled.status_code == 200
        assert disabled.json()["changed"] is True
        assert disabled.json()["backend"]["enabled"] is False
        assert await served_by(running, 4) == Counter({"up1": 4})
        [cluster] = (await client.get("/api/clusters")).json()["clusters"]
        assert cluster["ready"] == 1
        enabled = await client.post(f"/api/clusters/api/backends/{first}/enable", headers=WRITE)
        assert enabled.json()["backend"]["ready"] is True
        assert set(await served_by(running, 4)) == {"up0", "up1"}
        missing = await client.post("/api/clusters/api/backends/127.0.0.1:1/disable", headers=WRITE)
        assert missing.status_code == 404 and "127.0.0.1:1" in missing.json()["error"]
        nowhere = await client.post(f"/api/clusters/web/backends/{first}/disable", headers=WRITE)
        assert nowhere.status_code == 404 and "'web'" in nowhere.json()["error"]


async def test_write_actions_need_the_token_in_a_header(
    running: AdminRunning, upstreams: list[Upstream]
) -> None:
    path = f"/api/clusters/api/backends/127.0.0.1:{upstreams[0].port}/disable"
    async with running.client() as client:
        missing = await client.post(path)
        wrong = await client.post(path, headers={"X-Admin-Token": TOKEN[:-1] + "x"})
        # Never from the query string or a cookie.
        in_query = await client.post(f"{path}?token={TOKEN}")
        in_cookie = await client.post(path, headers={"Cookie": f"X-Admin-Token={TOKEN}"})
        [cluster] = (await client.get("/api/clusters")).json()["clusters"]
    assert (missing.status_code, wrong.status_code) == (401, 403)
    assert (in_query.status_code, in_cookie.status_code) == (401, 401)
    assert "X-Admin-Token" in missing.json()["error"]
    assert all(backend["enabled"] for backend in cluster["backends"])


async def test_bad_requests_get_clear_answers(running: AdminRunning) -> None:
    async with running.client() as client:
        unknown = await client.get("/api/nothing")
        wrong_method = await client.get("/api/reload")
        not_websocket = await client.get("/api/ws")
        cross_site = await client.post("/api/reload", headers={**WRITE, "Origin": "http://evil.example"})
        same_site = await client.get("/api/tree", headers={"Origin": running.admin_url})
    assert unknown.status_code == 404 and "/api/nothing" in unknown.json()["error"]
    assert wrong_method.status_code == 405 and "POST" in wrong_method.json()["error"]
    assert not_websocket.status_code == 400
    assert cross_site.status_code == 403
    assert same_site.status_code == 200


async def test_the_configuration_is_served_with_secrets_redacted(running: AdminRunning) -> None:
    async with running.client() as client:
        answer = await client.get("/api/config")
    assert TOKEN not in answer.text
    config = answer.json()
    assert config["admin"] == {"listen": "127.0.0.1:0", "token": "••••"}
    assert config["upstreams"][0]["name"] == "api"
    assert config["services"][0]["routes"][0]["upstream"] == "api"


async def test_reload_reports_what_it_did_and_what_it_refused(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf_path = tmp_path / "proxy.yaml"
    running = await run_admin(nursery, admin_yaml([upstreams[0].port]), conf_path)
    conf_path.write_text(admin_yaml([upstreams[0].port, upstreams[2].port]))
    async with running.client() as client:
        applied = (await client.post("/api/reload", headers=WRITE)).json()
        assert applied["ok"] is True
        [hook] = applied["hooks"]
        assert hook["details"]["replaced"] == ["api"]
        assert set(await served_by(running, 4)) == {"up0", "up2"}

        conf_path.write_text(admin_yaml([upstreams[1].port]).replace("path_prefix: /", "path_prefix: 7"))
        refused = (await client.post("/api/reload", headers=WRITE)).json()
        # The clusters the page shows are the running ones, which a reload replaces.
        [cluster] = (await client.get("/api/clusters")).json()["clusters"]
    assert refused["ok"] is False
    assert "services[0].routes[0].path_prefix" in refused["hooks"][0]["message"]
    assert {b["address"] for b in cluster["backends"]} == {
        f"127.0.0.1:{upstreams[0].port}",
        f"127.0.0.1:{upstreams[2].port}",
    }
    assert set(await served_by(running, 4)) == {"up0", "up2"}


async def test_services_report_their_counters_and_request_rates(running: AdminRunning) -> None:
    await served_by(running, 5)
    async with httpx.AsyncClient(base_url=running.proxy_url) as proxy:
        assert (await proxy.get("/status/503")).status_code == 503
    async with running.client() as client:
        with trio.fail_after(5):  # the monitor samples every second: wait for a point with the requests
            while True:
                services = (await client.get("/api/services")).json()
                points = services["history"]["edge"]
                if sum(point["rps"] for point in points) > 0:
                    break
                await trio.sleep(0.2)
    [edge] = services["services"]
    assert edge["name"] == "edge" and edge["requests"] == 6
    assert edge["responses"] == {"2xx": 5, "5xx": 1}
    assert services["interval"] == 1.0
    # Every request was timed into the service's request-duration histogram.
    assert edge["latency"]["count"] == 6 and sum(edge["latency"]["counts"]) == 6


async def test_the_websocket_pushes_a_crash_and_the_restart_at_once(running: AdminRunning) -> None:
    async with trio_websocket.open_websocket_url(f"ws{running.admin_url.removeprefix('http')}/api/ws") as ws:
        first = json.loads(await ws.get_message())
        assert first["type"] == "state"
        assert find(first["tree"], "/upstream api/lb") is not None
        assert {c["name"] for c in first["clusters"]} == {"api"}
        lb = await running.load_balancer_actor()
        await lb.tell("a message the load balancer does not understand")
        # Well within the page's promise of one second: the crash is pushed, not polled for.
        with trio.fail_after(1):
            while True:
                state = json.loads(await ws.get_message())
                node = find(state["tree"], "/upstream api/lb")
                events = [(e["event"], e["path"]) for e in state["events"]]
                if node is not None and node["restarts"] == 1 and ("restarted", "/upstream api/lb") in events:
                    break
    assert ("crashed", "/upstream api/lb") in events
    assert node["last_exit_crashed"] is True


async def test_curl_reads_the_tree_and_disables_a_backend(
    running: AdminRunning, upstreams: list[Upstream]
) -> None:
    async def curl(*args: str) -> dict[str, Any]:
        done = await trio.run_process(["curl", "-sS", "--fail-with-body", *args], capture_stdout=True)
        data: dict[str, Any] = json.loads(done.stdout)
        return data

    tree = await curl(f"{running.admin_url}/api/tree")
    assert find(tree["tree"], "/edge/connections") is not None
    second = f"127.0.0.1:{upstreams[1].port}"
    changed = await curl(
        "-X",
        "POST",
        "-H",
        f"X-Admin-Token: {TOKEN}",
        f"{running.admin_url}/api/clusters/api/backends/{second}/disable",
    )
    assert changed["backend"] == {**changed["backend"], "address": second, "enabled": False}
    assert await served_by(running, 3) == Counter({"up0": 3})
    with pytest.raises(subprocess.CalledProcessError):
        await curl("-X", "POST", f"{running.admin_url}/api/reload")


def test_the_admin_section_is_checked_naming_its_keys() -> None:
    with pytest.raises(ConfigError, match=r"admin\.token: required when listen \(0\.0\.0\.0:6193\)"):
        ServerConf.from_yaml("admin: {listen: 0.0.0.0:6193}")
    with pytest.raises(ConfigError, match=r"admin\.listen: not host:port"):
        ServerConf.from_yaml("admin: {listen: localhost}")
    with pytest.raises(ConfigError, match=r"admin\.token: at least 16 characters"):
        ServerConf.from_yaml("admin: {listen: 0.0.0.0:6193, token: short}")
    assert ServerConf.from_yaml("admin: {listen: '[::1]:6193'}").admin is not None
    with pytest.raises(ConfigError, match=r"admin\.token: required"):
        Server().add_admin_service("192.0.2.1:0")
    with pytest.raises(ConfigError, match=r"admin\.listen"):
        Server().add_admin_service("nowhere")
