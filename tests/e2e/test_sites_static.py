"""A `root:` site behind a real listener: types, index files, redirects, ETags and 304, ranges and 416, and
raw requests that try to leave the root (`..`, `..%2f`, encoded dots, a symbolic link out of it)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pytest
from rawhttp import send_raw
from upstream import Upstream

from actorproxy.sites import SitesProxy, build_routing, route_for
from actorproxy.sites._definitions import SiteDefinition
from actors import ActorSystem

BODY = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
async def base(start_proxy: object, tmp_path: Path) -> str:
    root = tmp_path / "site"
    (root / "docs").mkdir(parents=True)
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "docs" / "index.html").write_text("<h1>docs</h1>")
    (root / "app.js").write_text("console.log(1)")
    (root / "data.bin").write_bytes(BODY)
    (root / ".env").write_text("SECRET=1")
    (tmp_path / "secret.txt").write_text("the secret outside the root")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    app = SitesProxy(start_timeout=1)
    app.routing = build_routing([route_for(SiteDefinition(name="files.test", kind="root", target=str(root)))])
    url, _ = await start_proxy(app)  # type: ignore[operator]
    return str(url)


async def get(base: str, path: str, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(base + path, headers={"host": "files.test", **headers})


async def test_files_get_their_type_and_directories_their_index(base: str) -> None:
    home = await get(base, "/")
    assert home.status_code == 200 and home.text == "<h1>home</h1>"
    assert home.headers["content-type"] == "text/html; charset=utf-8"
    script = await get(base, "/app.js")
    assert "javascript" in script.headers["content-type"]
    assert (await get(base, "/data.bin")).headers["content-type"] == "application/octet-stream"
    moved = await get(base, "/docs?x=1")
    assert moved.status_code == 301 and moved.headers["location"] == "/docs/?x=1"
    assert (await get(base, "/docs/")).text == "<h1>docs</h1>"
    assert (await get(base, "/missing.html")).status_code == 404
    assert (await get(base, "/.env")).status_code == 404
    async with httpx.AsyncClient() as client:
        posted = await client.post(base + "/", headers={"host": "files.test"}, content=b"x")
        assert posted.status_code == 405 and posted.headers["allow"] == "GET, HEAD"
        head = await client.head(base + "/data.bin", headers={"host": "files.test"})
        assert (
            head.status_code == 200 and head.headers["content-length"] == str(len(BODY)) and not head.content
        )


async def test_etag_and_last_modified_answer_304(base: str) -> None:
    first = await get(base, "/data.bin")
    assert first.content == BODY
    etag = first.headers["etag"]
    assert (await get(base, "/data.bin", **{"if-none-match": etag})).status_code == 304
    assert (await get(base, "/data.bin", **{"if-none-match": f'W/{etag}, "other"'})).status_code == 304
    assert (await get(base, "/data.bin", **{"if-none-match": '"other"'})).status_code == 200
    since = first.headers["last-modified"]
    assert (await get(base, "/data.bin", **{"if-modified-since": since})).status_code == 304


async def test_ranges(base: str) -> None:
    part = await get(base, "/data.bin", range="bytes=10-19")
    assert part.status_code == 206 and part.content == BODY[10:20]
    assert part.headers["content-range"] == f"bytes 10-19/{len(BODY)}"
    tail = await get(base, "/data.bin", range="bytes=-5")
    assert tail.content == BODY[-5:]
    past = await get(base, "/data.bin", range=f"bytes={len(BODY)}-")
    assert past.status_code == 416 and past.headers["content-range"] == f"bytes */{len(BODY)}"
    several = await get(base, "/data.bin", range="bytes=0-1,5-6")
    assert several.status_code == 200 and several.content == BODY
    etag = (await get(base, "/data.bin")).headers["etag"]
    assert (await get(base, "/data.bin", range="bytes=0-0", **{"if-range": etag})).status_code == 206
    assert (await get(base, "/data.bin", range="bytes=0-0", **{"if-range": '"old"'})).status_code == 200


@pytest.mark.parametrize(
    "target",
    [
        b"/../secret.txt",
        b"/..%2fsecret.txt",
        b"/docs/..%2f..%2fsecret.txt",
        b"/%2e%2e/secret.txt",
        b"/%2E%2E%2Fsecret.txt",
        b"/docs/%2e%2e/%2e%2e/secret.txt",
        b"/..%5csecret.txt",
        b"/leak.txt",
        b"/%252e%252e/secret.txt",
    ],
)
async def test_raw_requests_cannot_leave_the_root(base: str, target: bytes) -> None:
    reply = await send_raw(
        base, b"GET " + target + b" HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n"
    )
    [(status, _, body)] = reply.responses
    assert status in (400, 404)
    assert b"secret outside" not in body


async def test_a_host_that_is_no_site_gets_404(base: str, system: ActorSystem) -> None:
    async with httpx.AsyncClient() as client:
        response = await client.get(base + "/", headers={"host": "other.test"})
    assert response.status_code == 404 and "files.test" in response.text


async def test_a_proxy_site_goes_to_its_server_with_the_host_unchanged(
    start_proxy: object, upstreams: list[Upstream]
) -> None:
    app = SitesProxy(start_timeout=1)
    target = f"http://127.0.0.1:{upstreams[0].port}"
    app.routing = build_routing([route_for(SiteDefinition(name="*.api.test", kind="proxy", target=target))])
    url, _ = await start_proxy(app)  # type: ignore[operator]
    async with httpx.AsyncClient() as client:
        response = await client.get(url + "/echo", headers={"host": "v1.api.test"})
        assert response.status_code == 200
        assert ["host", "v1.api.test"] in response.json()["headers"]
        assert (await client.get(url + "/echo", headers={"host": "api.test"})).status_code == 404
