"""The `actorproxy` command in real processes: `check`, `-t`, `demo`, and `-c FILE` serving and reloading.

A served process says where it listens on stdout once its listeners are open, and logs "reloaded" on
stderr once a reload is applied: the tests wait for those lines, never for time to pass.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import trio
from upstream import Upstream

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "actorproxy.cli"]
# Starting Python and importing the proxy; generous for a loaded CI machine.
START_TIMEOUT = 30


def proxy_yaml(*ports: int, algorithm: str = "round_robin", extra_route: str = "") -> str:
    backends = ", ".join(f'"127.0.0.1:{port}"' for port in ports)
    return textwrap.dedent(
        f"""
        grace_period_seconds: 5
        services:
          - name: edge
            listeners:
              - address: 127.0.0.1:0
            routes:
              {extra_route}
              - path_prefix: /
                upstream: app
        upstreams:
          - name: app
            discovery:
              static: [{backends}]
            algorithm: {algorithm}
            health_check:
              tcp:
              frequency: 3600
        """
    )


async def run_command(*args: str) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(START_TIMEOUT):
        return await trio.run_process(
            [*COMMAND, *args], capture_stdout=True, capture_stderr=True, check=False, cwd=ROOT
        )


class Output:
    """What a process wrote to one of its pipes so far, read on demand."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.text = ""

    async def wait_for(self, needle: str) -> str:
        """Read until `needle` appears; return the line that holds it."""
        while needle not in self.text:
            data = await self.stream.receive_some(65536)
            if not data:
                raise AssertionError(f"the stream ended before {needle!r}: {self.text!r}")
            self.text += data.decode()
        return next(line for line in self.text.splitlines() if needle in line)

    async def read_to_end(self) -> str:
        """Read until the process closes the pipe; return all it wrote."""
        while data := await self.stream.receive_some(65536):
            self.text += data.decode()
        return self.text


@asynccontextmanager
async def running(*args: str) -> AsyncIterator[tuple[trio.Process, Output, Output]]:
    """The command running with `args`; killed at the end if still alive."""
    process = await trio.lowlevel.open_process(
        [*COMMAND, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        yield process, Output(process.stdout), Output(process.stderr)
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(10):
                await process.wait()


async def test_check_passes_a_good_file_and_summarizes_it(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    await trio.Path(path).write_text(proxy_yaml(9001, 9002))
    result = await run_command("check", "-c", str(path))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.decode().splitlines()
    assert lines[0] == f"ok: {path}"
    assert "service edge: 127.0.0.1:0; 1 routes" in lines[1]
    assert "upstream app: 2 backends, round_robin, tcp health check every 3600 s" in lines[2]


async def test_check_refuses_a_bad_file_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    await trio.Path(path).write_text(proxy_yaml(9001, algorithm="round_robbin"))
    result = await run_command("check", str(path))
    assert result.returncode == 1
    error = result.stderr.decode()
    assert "upstreams[0].algorithm" in error and "did you mean 'round_robin'" in error
    assert result.stdout == b""


async def test_check_refuses_what_only_building_finds(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    text = proxy_yaml(9001).replace(
        "- address: 127.0.0.1:0", f"- address: 127.0.0.1:0\n        tls: {{cert: {tmp_path}/no.pem, key: k}}"
    )
    await trio.Path(path).write_text(text)
    result = await run_command("check", "-c", str(path))
    assert result.returncode == 1
    assert "services[0].listeners[0].tls: cannot load the certificate and key" in result.stderr.decode()


async def test_the_example_file_checks() -> None:
    result = await run_command("check", "examples/proxy.yaml")
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().startswith("ok: examples/proxy.yaml")


async def test_dash_t_validates_and_exits(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.yaml", tmp_path / "bad.yaml"
    await trio.Path(good).write_text(proxy_yaml(9001))
    await trio.Path(bad).write_text(proxy_yaml(9001).replace("upstream: app", "upstream: ap"))
    passed = await run_command("-t", "-c", str(good))
    failed = await run_command("-c", str(bad), "-t")
    assert passed.returncode == 0, passed.stderr
    assert b"is valid" in passed.stdout
    assert failed.returncode == 1
    assert "services[0].routes[0].upstream: no upstream named 'ap'" in failed.stderr.decode()


async def test_without_a_file_the_command_says_what_to_run() -> None:
    result = await run_command()
    assert result.returncode == 2
    assert b"actorproxy -c FILE" in result.stderr and b"actorproxy demo" in result.stderr


async def test_demo_serves_round_robin_and_stops_on_sigterm() -> None:
    async with running("demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0") as (process, stdout, _):
        with trio.fail_after(START_TIMEOUT):
            line = await stdout.wait_for("curl -i ")
            admin_line = await stdout.wait_for("admin page: ")
        url = line.split("curl -i ", 1)[1].strip()
        async with httpx.AsyncClient() as client:
            turns = [(await client.get(url)).headers["x-upstream"] for _ in range(6)]
            assert sorted(turns[:3]) == ["one", "three", "two"] and turns[3:] == turns[:3]
            # The demo starts with the admin page on, and prints where it is.
            admin = admin_line.split("admin page: ", 1)[1].split()[0]
            page = await client.get(admin)
            assert page.status_code == 200 and "<title>actorproxy admin</title>" in page.text
            [cluster] = (await client.get(f"{admin}api/clusters")).json()["clusters"]
            assert cluster["ready"] == 3
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            assert await process.wait() == 0


async def test_dash_c_serves_the_declared_proxy_and_sighup_reloads_it(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    up0, up1, up2 = upstreams
    path = tmp_path / "proxy.yaml"
    await trio.Path(path).write_text(proxy_yaml(up0.port, up1.port))
    async with running("-c", str(path)) as (process, stdout, stderr):
        with trio.fail_after(START_TIMEOUT):
            line = await stdout.wait_for("edge: listening on ")
        url = line.split("listening on ", 1)[1].strip()
        async with httpx.AsyncClient(base_url=url) as client:
            seen = {(await client.get("/echo")).headers["x-upstream"] for _ in range(4)}
            assert seen == {"up0", "up1"}
            assert (await client.get("/three/x")).headers["x-upstream"] in {"up0", "up1"}

            route = "- path_prefix: /three\n                upstream: three"
            text = proxy_yaml(up0.port, up1.port, extra_route=route)
            text += f'  - name: three\n    discovery:\n      static: ["127.0.0.1:{up2.port}"]\n'
            await trio.Path(path).write_text(text)
            process.send_signal(signal.SIGHUP)
            with trio.fail_after(START_TIMEOUT):
                await stderr.wait_for("reloaded")
            # The same client connection takes the new route at its next request.
            assert (await client.get("/three/x")).headers["x-upstream"] == "up2"
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            assert await process.wait() == 0
    assert up2.connections == 1


async def test_dash_c_serves_the_admin_section(upstreams: list[Upstream], tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    await trio.Path(path).write_text(proxy_yaml(upstreams[0].port) + "admin: {listen: 127.0.0.1:0}\n")
    async with running("-c", str(path)) as (process, stdout, _):
        with trio.fail_after(START_TIMEOUT):
            line = await stdout.wait_for("admin page: ")
        admin = line.split("admin page: ", 1)[1].strip()
        async with httpx.AsyncClient() as client:
            tree = (await client.get(f"{admin}api/tree")).json()["tree"]
            assert [node["path"] for node in tree][:2] == ["/upstream app", "/edge"]
            # Loopback without a token: writes still need the header, whatever its value.
            assert (await client.post(f"{admin}api/reload")).status_code == 401
            reloaded = await client.post(f"{admin}api/reload", headers={"X-Admin-Token": "-"})
            assert reloaded.json()["ok"] is True
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            assert await process.wait() == 0


async def test_with_worker_processes_worker_0_serves_the_admin(
    upstreams: list[Upstream], tmp_path: Path
) -> None:
    path = tmp_path / "proxy.yaml"
    text = proxy_yaml(upstreams[0].port) + "threads: 2\nadmin: {listen: 127.0.0.1:0}\n"
    await trio.Path(path).write_text(text)
    async with running("-c", str(path)) as (process, stdout, stderr):
        with trio.fail_after(START_TIMEOUT):
            line = await stdout.wait_for("admin page: ")
        admin = line.split("admin page: ", 1)[1].strip()
        # A fresh connection each time: whichever worker it reached, the answer is worker 0's.
        answers = []
        for _ in range(4):
            async with httpx.AsyncClient() as client:
                answers.append((await client.get(f"{admin}api/tree")).json())
        assert {(answer["worker"], answer["pid"]) for answer in answers} == {(0, answers[0]["pid"])}
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(START_TIMEOUT):
            assert await process.wait() == 0
        # The other worker has no admin listener, and says nothing of one.
        assert (await stdout.read_to_end()).count("admin page: ") == 1
        assert "crashed" not in await stderr.read_to_end()


async def test_a_reachable_admin_without_a_token_is_refused_naming_the_key(tmp_path: Path) -> None:
    path = tmp_path / "proxy.yaml"
    await trio.Path(path).write_text(proxy_yaml(9001) + "admin: {listen: 0.0.0.0:0}\n")
    result = await run_command("check", str(path))
    assert result.returncode == 1
    assert "admin.token: required when listen (0.0.0.0:0) is not a loopback address" in result.stderr.decode()


def test_the_console_script_is_declared() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert project["project"]["scripts"] == {"actorproxy": "actorproxy.cli:main"}


async def test_the_installed_script_runs() -> None:
    script = Path(sys.executable).with_name("actorproxy")
    if not os.access(script, os.X_OK):
        pytest.skip("actorproxy is not installed next to this interpreter (pip install -e .)")
    with trio.fail_after(START_TIMEOUT):
        result = await trio.run_process([str(script), "--help"], capture_stdout=True, check=False)
    assert result.returncode == 0
    assert b"actorproxy demo" in result.stdout and b"--conf" in result.stdout
