"""The HTTP cache declared in YAML, served by a real `Server` on loopback: the route's settings, the
`x-cache` header under its configured name, the access log's `cache` field and the per-route metric, PURGE
with its token, and purging from the admin API."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from urllib.parse import urlencode

import httpx
import trio
from adminrun import TOKEN, run_admin
from upstream import Upstream

from actorproxy.metrics import service_families

# Bounds on waiting for the access log's writer (a guard, not a delay).
FILE_TIMEOUT = 30.0
PURGE_TOKEN = "purge-token-0123456789"


def cached_yaml(port: int, tmp_path: Path, cache: str) -> str:
    return textwrap.dedent(
        f"""
        admin: {{listen: 127.0.0.1:0, token: {TOKEN}}}
        store: {{backend: sqlite, path: {tmp_path / "store.db"}}}
        services:
          - name: edge
            listeners: [{{address: 127.0.0.1:0}}]
            access_log: {{path: {tmp_path / "access.log"}, format: json}}
            routes:
              - path_prefix: /cache
                upstream: app
                cache: {cache}
              - upstream: app
        upstreams:
          - {{name: app, discovery: {{static: ["127.0.0.1:{port}"]}}}}
        """
    )


async def lines_of(path: Path, count: int) -> list[str]:
    file = trio.Path(path)
    with trio.fail_after(FILE_TIMEOUT):
        while True:
            lines = (await file.read_text()).splitlines() if await file.exists() else []
            if len(lines) >= count:
                return lines
            await trio.sleep(0.05)


async def test_a_declared_cache_follows_its_route_settings_and_reports_what_it_did(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    origin = upstreams[0]
    text = cached_yaml(origin.port, tmp_path, "{default_ttl: 60, header: x-cache-status}")
    running = await run_admin(nursery, text)
    async with httpx.AsyncClient(base_url=running.proxy_url) as client:
        # No lifetime of its own: default_ttl makes it fresh for a minute.
        answers = [await client.get("/cache/plain") for _ in range(3)]
        posted = await client.post("/cache/plain", content=b"x")
        after = await client.get("/cache/plain")
        uncached = await client.get("/elsewhere/cache")
    assert [a.headers["x-cache-status"] for a in answers] == ["MISS", "HIT", "HIT"]
    assert answers[2].text == "/cache/plain #1" and "x-cache" not in answers[0].headers
    assert (posted.headers["x-cache-status"], after.headers["x-cache-status"]) == ("BYPASS", "MISS")
    assert "x-cache-status" not in uncached.headers
    logged = [json.loads(line) for line in await lines_of(tmp_path / "access.log", 6)]
    assert [line["cache"] for line in logged] == ["MISS", "HIT", "HIT", "BYPASS", "MISS", None]
    [family] = [
        f
        for f in service_families([running.handle.services["edge"].service])
        if f.name.endswith("cache_requests")
    ]
    counted = {sample.labels["outcome"]: sample.value for sample in family.samples}
    assert counted == {"MISS": 2, "HIT": 2, "BYPASS": 1}
    assert {sample.labels["route"] for sample in family.samples} == {"routes[0]"}


async def test_purge_by_method_with_its_token_and_from_the_admin_api(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    origin = upstreams[0]
    running = await run_admin(nursery, cached_yaml(origin.port, tmp_path, f"{{purge_token: {PURGE_TOKEN}}}"))
    fields = urlencode({"cc": "max-age=600"})
    paths = [f"/cache/{name}?{fields}" for name in ("a", "b", "c", "d")]
    host = running.proxy_url.removeprefix("http://")
    async with httpx.AsyncClient(base_url=running.proxy_url) as client, running.client() as admin:

        async def states() -> list[str]:
            return [(await client.get(path)).headers["x-cache"] for path in paths]

        assert await states() == ["MISS"] * 4
        refused = await client.request("PURGE", paths[0], headers={"x-purge-token": "wrong"})
        purged = await client.request("PURGE", paths[0], headers={"x-purge-token": PURGE_TOKEN})
        assert (refused.status_code, purged.text) == (403, "purged 1\n")
        assert await states() == ["MISS", "HIT", "HIT", "HIT"]

        no_token = await admin.post("/api/cache/purge", json={"key": f"GET http://{host}{paths[1]}"})
        bad = await admin.post("/api/cache/purge", json={"path": "/x"}, headers={"X-Admin-Token": TOKEN})
        by_key = await admin.post(
            "/api/cache/purge", json={"key": f"GET http://{host}{paths[1]}"}, headers={"X-Admin-Token": TOKEN}
        )
        by_prefix = await admin.post(
            "/api/cache/purge", json={"prefix": f"GET http://{host}/cache/"}, headers={"X-Admin-Token": TOKEN}
        )
        assert await states() == ["MISS"] * 4
    assert (no_token.status_code, bad.status_code) == (401, 400)
    assert by_key.json() == {"key": f"GET http://{host}{paths[1]}", "caches": 1, "purged": 1}
    assert by_prefix.json()["purged"] == 3  # a, c and d: b was gone already
    assert origin.served["/cache/a"] == 3 and origin.served["/cache/c"] == 2
