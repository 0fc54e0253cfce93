"""The server as a real process: SIGTERM drains, SIGQUIT hands over to a new process, SIGHUP reloads,
worker processes, daemon mode and `-t`.

Every process runs `serverproc.py` (a user's script: `Server.from_args()` ... `run_forever()`) against
an upstream in this process; time is real and every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
import trio
from h2client import RawH2, drain_finishes_held_stream
from processes import Lines
from upstream import Upstream

SCRIPT = Path(__file__).with_name("serverproc.py")
ROOT = Path(__file__).parents[2]


@attrs.define
class ServerProcess:
    process: trio.Process
    stdout: Lines
    stderr: Lines
    pid: int = 0
    port: int = 0

    async def ready(self, *, serving: bool = True) -> None:
        """Wait for the bound addresses, and (unless detaching) for the server to answer signals."""
        line = await self.stdout.wait_for(lambda line: line.startswith("{"))
        info = json.loads(line)
        self.pid = info["pid"]
        [(_, address)] = info["addresses"].items()
        self.port = address[1]
        if serving:
            await self.stderr.wait_for(lambda line: "serving (pid" in line)

    def signal(self, signum: int) -> None:
        self.process.send_signal(signum)


@asynccontextmanager
async def server_process(
    nursery: trio.Nursery, upstream: Upstream, *args: str, listen: str = "127.0.0.1:0", h2c: bool = False
) -> AsyncIterator[ServerProcess]:
    env = {**os.environ, "UPSTREAM_PORT": str(upstream.port), "LISTEN": listen, "PYTHONPATH": str(ROOT)}
    env["H2C"] = "1" if h2c else "0"
    process = await trio.lowlevel.open_process(
        [sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env
    )
    assert process.stdout is not None and process.stderr is not None
    server = ServerProcess(process, Lines(), Lines())
    nursery.start_soon(server.stdout.pump, process.stdout)
    nursery.start_soon(server.stderr.pump, process.stderr)
    try:
        yield server
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def write_conf(tmp_path: Path, **settings: Any) -> str:
    conf = {
        "upgrade_sock": str(tmp_path / "upgrade.sock"),
        "pid_file": str(tmp_path / "proxy.pid"),
        "grace_period_seconds": 5,
        "graceful_shutdown_timeout_seconds": 1,
        **settings,
    }
    path = tmp_path / "conf.yaml"
    path.write_text("".join(f"{key}: {json.dumps(value)}\n" for key, value in conf.items()))
    return str(path)


@attrs.define
class Load:
    """Keep-alive GETs from several clients until `stop`: what they saw, and which process answered."""

    statuses: Counter[int | str] = attrs.Factory(Counter)
    pids: Counter[str] = attrs.Factory(Counter)
    done: int = 0
    stop: bool = False
    _progress: trio.Event = attrs.Factory(trio.Event)

    async def client(self, base: str) -> None:
        async with httpx.AsyncClient(base_url=base) as client:
            while not self.stop:
                try:
                    response = await client.get("/echo")
                    self.statuses[response.status_code] += 1
                    self.pids[response.headers["x-worker-pid"]] += 1
                except httpx.HTTPError as exc:
                    self.statuses[type(exc).__name__] += 1
                self.done += 1
                self._progress.set()
                self._progress = trio.Event()

    async def until(self, condition: Callable[[], bool]) -> None:
        while not condition():
            await self._progress.wait()


async def refused(port: int) -> bool:
    try:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
    except OSError:
        return True
    await stream.aclose()
    return False


# -- SIGTERM ---------------------------------------------------------------------------------------------


async def test_sigterm_lets_the_request_in_flight_finish_and_refuses_new_connections(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    upstream = upstreams[0]
    conf = write_conf(tmp_path)
    async with server_process(nursery, upstream, "-c", conf) as server:
        with trio.fail_after(15):
            await server.ready()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=10) as client:
                slow: list[httpx.Response] = []

                async def hold() -> None:
                    slow.append(await client.get("/hold"))

                async with trio.open_nursery() as requests:
                    requests.start_soon(hold)
                    await upstream.held.wait()
                    stopped_at = trio.current_time()
                    server.signal(signal.SIGTERM)
                    await server.stderr.wait_for(lambda line: "stopped accepting" in line)
                    assert await refused(server.port)
                    assert server.process.returncode is None  # still draining the request in flight
                    upstream.release.set()
                code = await server.process.wait()
            assert [r.status_code for r in slow] == [200]
            assert code == 0
            assert trio.current_time() - stopped_at < 5 + 1
            await server.stdout.wait_for(lambda line: line == "stopped cleanly")


async def test_an_idle_keepalive_connection_gets_one_more_request_during_the_drain(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    async with server_process(nursery, upstreams[0], "-c", write_conf(tmp_path)) as server:
        with trio.fail_after(15):
            await server.ready()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert (await client.get("/echo")).status_code == 200
                server.signal(signal.SIGTERM)
                await server.stderr.wait_for(lambda line: "1 connections finishing" in line)
                last = await client.get("/echo")  # on the same, idle, connection
                assert last.status_code == 200
                assert last.headers["connection"] == "close"
            assert await server.process.wait() == 0


async def test_sigterm_sends_http2_clients_goaway_and_their_open_streams_finish(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    upstream = upstreams[0]
    async with server_process(nursery, upstream, "-c", write_conf(tmp_path), h2c=True) as server:
        with trio.fail_after(15):
            await server.ready()
            client = await RawH2.connect(server.port)
            try:
                sigterm = partial(server.signal, signal.SIGTERM)
                await drain_finishes_held_stream(client, sigterm, upstream.held, upstream.release)
            finally:
                await client.aclose()
            assert await server.process.wait() == 0


# -- SIGQUIT: the graceful upgrade -----------------------------------------------------------------------


@pytest.mark.parametrize("threads", [1, 2])
async def test_upgrade_under_load_refuses_nothing_and_fails_nothing(
    threads: int, nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf = write_conf(tmp_path, threads=threads)
    load = Load()

    async with server_process(nursery, upstreams[0], "-c", conf) as old:
        with trio.fail_after(30):
            await old.ready()
            async with server_process(nursery, upstreams[0], "-c", conf, "-u") as new:
                async with trio.open_nursery() as clients:
                    for _ in range(4):
                        clients.start_soon(load.client, f"http://127.0.0.1:{old.port}")
                    await load.until(lambda: load.done >= 100)
                    # The new process waits on upgrade_sock; SIGQUIT makes the old one send its sockets.
                    await new.stderr.wait_for(lambda line: "waiting for the running server" in line)
                    old.signal(signal.SIGQUIT)
                    await new.ready()
                    assert new.port == old.port
                    assert await old.process.wait() == 0
                    served_before = sum(load.pids.values())
                    await load.until(lambda: sum(load.pids.values()) >= served_before + 200)
                    load.stop = True
                new.signal(signal.SIGTERM)
                assert await new.process.wait() == 0
    assert load.statuses.keys() == {200}, load.statuses
    # Old and new processes both answered (with threads, the workers are the ones answering).
    assert len(load.pids) >= 2


async def test_an_upgrade_nobody_takes_leaves_the_server_serving(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf = write_conf(tmp_path, upgrade_sock_connect_accept_max_retries=0)
    async with server_process(nursery, upstreams[0], "-c", conf) as server:
        with trio.fail_after(15):
            await server.ready()
            server.signal(signal.SIGQUIT)
            await server.stderr.wait_for(lambda line: "still serving" in line)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert (await client.get("/echo")).status_code == 200
            server.signal(signal.SIGTERM)
            assert await server.process.wait() == 0


# -- SIGHUP --------------------------------------------------------------------------------------------------


async def test_sighup_runs_the_reload_hooks_and_keeps_serving(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    async with server_process(nursery, upstreams[0], "-c", write_conf(tmp_path)) as server:
        with trio.fail_after(15):
            await server.ready()
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}") as client:
                assert (await client.get("/echo")).status_code == 200
                server.signal(signal.SIGHUP)
                await server.stdout.wait_for(lambda line: line == f"reloaded {server.pid}")
                assert (await client.get("/echo")).status_code == 200
            server.signal(signal.SIGTERM)
            assert await server.process.wait() == 0


# -- workers -------------------------------------------------------------------------------------------------


async def test_two_workers_serve_and_a_killed_one_is_replaced(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    async with server_process(nursery, upstreams[0], "-c", write_conf(tmp_path, threads=2)) as server:
        with trio.fail_after(30):
            await server.ready()
            started = [
                await server.stderr.wait_for(lambda line, n=n: f"worker {n} started" in line)
                for n in range(2)
            ]
            workers = {line.rsplit("pid ", 1)[1].rstrip(")") for line in started}
            seen: Counter[str] = Counter()
            # A new connection per request, many at once, so both workers' accept loops get some.
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            async with httpx.AsyncClient(
                base_url=f"http://127.0.0.1:{server.port}", limits=no_reuse
            ) as client:

                async def fetch() -> None:
                    response = await client.get("/echo")
                    assert response.status_code == 200
                    seen[response.headers["x-worker-pid"]] += 1

                while set(seen) != workers:
                    async with trio.open_nursery() as batch:
                        for _ in range(20):
                            batch.start_soon(fetch)

                victim = sorted(workers)[0]
                mark = len(server.stderr.lines)
                os.kill(int(victim), signal.SIGKILL)
                line = await server.stderr.wait_for(lambda line: "started (pid" in line, start=mark)
                replacement = line.rsplit("pid ", 1)[1].rstrip(")")
                assert replacement not in workers
                seen.clear()
                while replacement not in seen:
                    async with trio.open_nursery() as batch:
                        for _ in range(20):
                            batch.start_soon(fetch)
                assert victim not in seen
            server.signal(signal.SIGTERM)
            assert await server.process.wait() == 0
            assert not any("worker" in line and "died" in line for line in server.stderr.lines[mark + 2 :])


# -- daemon mode and -t -------------------------------------------------------------------------------------


async def test_daemon_mode_writes_the_pid_file_and_stops_on_sigterm(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    conf = write_conf(tmp_path, error_log=str(tmp_path / "error.log"))
    pid_file = tmp_path / "proxy.pid"
    async with server_process(nursery, upstreams[0], "-c", conf, "-d") as launcher:
        with trio.fail_after(15):
            await launcher.ready(serving=False)
            assert await launcher.process.wait() == 0  # the terminal gets its prompt back
            # A daemon has no channel back to its launcher: its pid file is the sign it is up.
            while not await trio.Path(pid_file).exists():  # noqa: ASYNC110
                await trio.sleep(0.02)
            pid = int((await trio.Path(pid_file).read_text()).strip())
            assert pid != launcher.pid
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{launcher.port}") as client:
                response = await client.get("/echo")
            assert response.status_code == 200 and response.headers["x-worker-pid"] == str(pid)
            os.kill(pid, signal.SIGTERM)
            while await trio.Path(pid_file).exists():  # noqa: ASYNC110 - removed as it exits
                await trio.sleep(0.02)
            assert "drained" in await trio.Path(tmp_path / "error.log").read_text()


async def test_dash_t_checks_the_configuration(tmp_path: Path) -> None:
    good = write_conf(tmp_path)
    result = await trio.run_process(
        [sys.executable, str(SCRIPT), "-t", "-c", good],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "UPSTREAM_PORT": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 0, result
    assert b"is valid" in result.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text("threads: four\ngrace_period_seconds: 1\n")
    result = await trio.run_process(
        [sys.executable, str(SCRIPT), "-t", "-c", str(bad)],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
        env={**os.environ, "UPSTREAM_PORT": "1", "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == 1
    assert b"threads" in result.stderr
