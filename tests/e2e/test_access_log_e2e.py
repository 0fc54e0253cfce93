"""Access logs and request ids through a real proxy on loopback: the id kept or made, sent upstream and
returned, the log lines a real client's requests leave, W3C `traceparent` passed through, and SIGUSR1
reopening a rotated access log and error log in a real daemon with two workers."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import textwrap
from pathlib import Path

import httpx
import trio
from helpers import refused_port
from upstream import Upstream

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.server import Server

ROOT = Path(__file__).resolve().parents[2]
# Bounds on waiting for a file another process writes (a guard, not a delay).
FILE_TIMEOUT = 30.0


def conf_text(port: int, log: Path, fmt: str = "json", **top: object) -> str:
    extra = "".join(f"{key}: {json.dumps(value)}\n" for key, value in top.items())
    return extra + textwrap.dedent(
        f"""
        services:
          - name: edge
            listeners: [{{address: "127.0.0.1:0"}}]
            access_log: {{path: "{log}", format: {json.dumps(fmt)}}}
            routes:
              - {{path_prefix: /dead, upstream: dead}}
              - {{upstream: app}}
        upstreams:
          - {{name: app, discovery: {{static: ["127.0.0.1:{port}"]}}}}
          - {{name: dead, discovery: {{static: ["127.0.0.1:{refused_port()}"]}}}}
        """
    )


def _text(path: Path) -> str:
    return path.read_text() if path.exists() else ""


async def lines_of(path: Path, count: int) -> list[str]:
    with trio.fail_after(FILE_TIMEOUT):
        while True:
            lines = _text(path).splitlines()
            if len(lines) >= count:
                return lines
            await trio.sleep(0.05)


async def test_ids_are_kept_or_made_sent_upstream_returned_and_logged(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    server = Server(ServerConf.from_yaml(conf_text(upstreams[0].port, log)))
    handle = build_proxy(server)
    await nursery.start(server.serve)
    base = "http://{}:{}".format(*handle.services["edge"].service.bound[0][:2])
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    async with httpx.AsyncClient(base_url=base) as client:
        kept = await client.get("/echo?x=1", headers={"X-Request-Id": "client-id-1", "traceparent": trace})
        made = await client.get("/echo", headers={"X-Request-Id": "bad id with spaces"})
        failed = await client.get("/dead")
    assert kept.headers["x-request-id"] == "client-id-1"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])  # a malformed one is replaced
    assert re.fullmatch(r"[0-9a-f]{32}", failed.headers["x-request-id"])  # the proxy's own 502 says it too
    seen = [dict(request["headers"]) for request in upstreams[0].requests]
    assert seen[0]["X-Request-Id"] == "client-id-1" and seen[0]["traceparent"] == trace
    assert seen[1]["X-Request-Id"] == made.headers["x-request-id"]
    lines = [json.loads(line) for line in await lines_of(log, 3)]
    assert [line["request_id"] for line in lines] == [
        "client-id-1",
        made.headers["x-request-id"],
        failed.headers["x-request-id"],
    ]
    first = lines[0]
    assert (first["method"], first["path"], first["status"], first["protocol"]) == (
        "GET",
        "/echo?x=1",
        200,
        "HTTP/1.1",
    )
    assert first["upstream"] == f"127.0.0.1:{upstreams[0].port}" and first["route"] == "routes[1]"
    assert first["client"] == "127.0.0.1" and first["bytes_sent"] > first["bytes_received"] > 0
    assert first["duration"] >= first["upstream_ttfb"] > 0 and first["retries"] == 0
    assert (lines[2]["status"], lines[2]["error"], lines[2]["route"]) == (502, "ConnectRefused", "routes[0]")


async def test_no_ids_when_the_header_is_null(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    text = conf_text(upstreams[0].port, tmp_path / "a.log", "{status} {request_id}")
    text = text.replace("    access_log:", "    request_id_header: null\n    access_log:")
    server = Server(ServerConf.from_yaml(text))
    handle = build_proxy(server)
    await nursery.start(server.serve)
    base = "http://{}:{}".format(*handle.services["edge"].service.bound[0][:2])
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo")
    assert "x-request-id" not in response.headers
    assert "X-Request-Id" not in dict(upstreams[0].requests[0]["headers"])
    assert await lines_of(tmp_path / "a.log", 1) == ["200 -"]


async def test_sigusr1_reopens_rotated_logs_in_a_daemon_with_two_workers(
    upstreams: list[Upstream], tmp_path: Path
) -> None:
    access, errors, pid_file = tmp_path / "access.log", tmp_path / "error.log", tmp_path / "proxy.pid"
    conf = tmp_path / "proxy.yaml"
    conf.write_text(
        conf_text(
            upstreams[0].port,
            access,
            "{request_id} {status}",
            daemon=True,
            threads=2,
            error_log=str(errors),
            pid_file=str(pid_file),
            upgrade_sock=str(tmp_path / "upgrade.sock"),
            grace_period_seconds=1,
            graceful_shutdown_timeout_seconds=1,
        )
    )
    await trio.run_process([sys.executable, "-m", "actorproxy.cli", "-c", str(conf)], cwd=ROOT)
    with trio.fail_after(FILE_TIMEOUT):
        while not (errors.exists() and "listening on" in errors.read_text()):  # noqa: ASYNC110
            await trio.sleep(0.05)
    pid = int(pid_file.read_text())
    # Two workers announce into one file: take the address alone (their lines may interleave).
    base = re.search(r"listening on (http://127\.0\.0\.1:\d+)", errors.read_text())
    assert base is not None
    try:
        async with httpx.AsyncClient(base_url=base[1]) as client:
            for n in range(4):
                await client.get("/echo", headers={"X-Request-Id": f"before-{n}"})
            await lines_of(access, 4)
            access.rename(tmp_path / "access.log.1")
            errors.rename(tmp_path / "error.log.1")
            os.kill(pid, signal.SIGUSR1)
            # Each worker says so in the new error log once its files are reopened (the access log is
            # opened again at its next write): then every later request is logged in the new files.
            with trio.fail_after(FILE_TIMEOUT):
                while len(set(re.findall(r"reopened log files \(pid (\d+)\)", _text(errors)))) < 2:  # noqa: ASYNC110
                    await trio.sleep(0.05)
            for n in range(6):
                async with httpx.AsyncClient(base_url=base[1]) as fresh:  # new connections: both workers
                    await fresh.get("/echo", headers={"X-Request-Id": f"after-{n}"})
            await client.get("/dead", headers={"X-Request-Id": "broken"})
        new_lines = await lines_of(access, 7)
        old_lines = (tmp_path / "access.log.1").read_text().splitlines()
        logged = (new_lines, old_lines, _text(errors))
        assert sorted(new_lines) == sorted([f"after-{n} 200" for n in range(6)] + ["broken 502"]), logged
        assert old_lines == [f"before-{n} 200" for n in range(4)], logged
        with trio.fail_after(FILE_TIMEOUT):
            while "request id broken" not in errors.read_text():  # noqa: ASYNC110 - the error line
                await trio.sleep(0.05)
        assert "request id broken" not in (tmp_path / "error.log.1").read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
