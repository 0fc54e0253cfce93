"""`actorproxy serve-sites` on the example (examples/sites, copied to a temporary directory), in a real
process: dig and dnspython resolve the sites, curl trusting only the local CA reaches the `run:` site and the
static site over HTTPS, the app is restarted after it crashes (`actorproxy sites` shows it), a directory
added to the park folder becomes a site while the server runs, and SIGTERM leaves no app process behind.

Every wait is for an event (a line on stdout, an answer) with a bounded deadline, never a sleep to settle.
No name outside the local zone is asked: the example's upstream resolvers are never contacted.
"""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO

import attrs
import dns.asyncquery
import dns.message
import dns.rcode
import httpx
import pytest
import trio

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "sites"
COMMAND = [sys.executable, "-m", "actorproxy.cli"]
# Starting Python, importing the proxy, creating the CA and starting the app; generous for a loaded CI.
START_TIMEOUT = 60
# The app's restart (back-off 0.5 s and Python's start) and a park folder's next look (2 s), with room.
CHANGE_TIMEOUT = 30
POLL_INTERVAL = 0.2


@attrs.frozen
class Served:
    process: trio.Process
    directory: Path
    http: int
    https: int
    dns: int
    lines: list[str]

    @property
    def root_ca(self) -> Path:
        return self.directory / "ca" / "rootCA.pem"

    @property
    def conf(self) -> Path:
        return self.directory / "sites" / "sites.yaml"


async def _read_until_ready(stdout: trio.abc.ReceiveStream, lines: list[str]) -> None:
    buffer = b""
    while b"serve-sites: ready" not in buffer:
        data = await stdout.receive_some()
        if not data:
            raise AssertionError(f"serve-sites exited before it was ready: {buffer.decode()}")
        buffer += data
    lines.extend(buffer.decode().splitlines())


@pytest.fixture
def stderr_log(tmp_path: Path) -> Iterator[IO[bytes]]:
    """Where the server's log goes (kept in the test's directory for a failure's post-mortem)."""
    with open(tmp_path / "stderr.log", "wb") as log:
        yield log


@pytest.fixture
async def served(tmp_path: Path, stderr_log: IO[bytes]) -> AsyncIterator[Served]:
    shutil.copytree(EXAMPLE, tmp_path / "sites", ignore=shutil.ignore_patterns(".actorproxy"))
    args = [
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--dns",
        "127.0.0.1:0",
        "--ca",
        str(tmp_path / "ca"),
        "--admin",
        "127.0.0.1:0",
    ]
    process = await trio.lowlevel.open_process(
        [*COMMAND, "serve-sites", str(tmp_path / "sites" / "sites.yaml"), *args],
        stdout=subprocess.PIPE,
        stderr=stderr_log,
        cwd=ROOT,
    )
    try:
        assert process.stdout is not None
        lines: list[str] = []
        with trio.fail_after(START_TIMEOUT):
            await _read_until_ready(process.stdout, lines)
        text = "\n".join(lines)
        ports = {kind: int(port) for kind, port in re.findall(r"serve-sites: (https?|dns) \S*?:(\d+)", text)}
        yield Served(process, tmp_path, ports["http"], ports["https"], ports["dns"], lines)
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            with trio.move_on_after(CHANGE_TIMEOUT):
                await process.wait()
            if process.returncode is None:
                process.kill()
                await process.wait()


def running(pid: int) -> bool:
    """Whether `pid` runs: it exists and is no zombie (an orphan waits for its reaper as a zombie, and in a
    container the reaper may never come)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


async def curl(served: Served, name: str, path: str = "/") -> tuple[int, str]:
    """(curl's exit status, body) of https://name/path, trusting only the local CA."""
    port = served.https
    command = ["curl", "-sS", "--max-time", "20", "--cacert", str(served.root_ca)]
    command += ["--resolve", f"{name}:{port}:127.0.0.1", f"https://{name}:{port}{path}"]
    done = await trio.run_process(command, capture_stdout=True, capture_stderr=True, check=False)
    return done.returncode, (done.stdout or done.stderr).decode()


async def eventually(check: object, what: str) -> object:
    """Poll `check()` (async, returning a value or None) until it returns a value, within CHANGE_TIMEOUT."""
    with trio.move_on_after(CHANGE_TIMEOUT):
        while True:
            value = await check()  # type: ignore[operator]
            if value is not None:
                return value
            await trio.sleep(POLL_INTERVAL)
    raise AssertionError(f"{what}: not within {CHANGE_TIMEOUT} s")


async def test_the_sites_resolve_by_dns(served: Served) -> None:
    dig = ["dig", "@127.0.0.1", "-p", str(served.dns), "+short", "+time=5", "+tries=1", "api.test"]
    done = await trio.run_process(dig, capture_stdout=True)
    assert done.stdout.decode().split() == ["127.0.0.1"]
    query = dns.message.make_query("hello.test", "AAAA")
    answer = await dns.asyncquery.udp(query, "127.0.0.1", port=served.dns, timeout=5)
    assert [rdata.address for rdata in answer.answer[0]] == ["::1"]
    missing = await dns.asyncquery.udp(
        dns.message.make_query("nothing.test", "A"), "127.0.0.1", port=served.dns, timeout=5
    )
    assert missing.rcode() == dns.rcode.NXDOMAIN


async def test_https_reaches_the_run_site_and_the_static_site(served: Served) -> None:
    status, body = await curl(served, "api.test")
    assert status == 0, body
    reply = json.loads(body)
    assert reply["app"] == "api" and reply["host"] == f"api.test:{served.https}"
    status, body = await curl(served, "hello.test")
    assert status == 0 and "<h1>hello.test</h1>" in body
    assert any("site https://api.test:" in line for line in served.lines)


async def test_a_crashed_app_is_restarted_and_sites_shows_it(served: Served) -> None:
    _, body = await curl(served, "api.test")
    first = json.loads(body)["pid"]
    await curl(served, "api.test", "/crash")

    async def restarted() -> int | None:
        status, body = await curl(served, "api.test")
        if status != 0 or not body.startswith("{"):
            return None
        pid: int = json.loads(body)["pid"]
        return pid if pid != first else None

    assert await eventually(restarted, "the app answering from a new process") != first

    async def listed() -> str | None:
        done = await trio.run_process(
            [*COMMAND, "sites", str(served.conf)], capture_stdout=True, capture_stderr=True, cwd=ROOT
        )
        out = done.stdout.decode()
        return out if re.search(r"api\.test\s+running .*restarts=1", out) else None

    out = await eventually(listed, "`actorproxy sites` showing the restart")
    assert "hello.test" in str(out) and "serving (pid" in str(out)
    # The admin page's tree shows the site's process actor, restarted once.
    admin = next(line.split()[2] for line in served.lines if line.startswith("serve-sites: admin "))
    async with httpx.AsyncClient() as client:
        tree = (await client.get(f"{admin}api/tree")).json()["tree"]
    nodes = list(_walk(tree))
    site = [node for node in nodes if "api.test" in node["path"] and node["restarts"] >= 1]
    assert site, [node["path"] for node in nodes]


def _walk(nodes: list[dict[str, object]]) -> Iterator[dict[str, object]]:
    for node in nodes:
        yield node
        yield from _walk(node["children"])  # type: ignore[arg-type]


async def test_a_directory_added_to_the_park_folder_becomes_a_site(served: Served) -> None:
    new = served.directory / "sites" / "park" / "fresh"
    new.mkdir()
    (new / "index.html").write_text("<p>fresh</p>")

    async def served_fresh() -> str | None:
        status, body = await curl(served, "fresh.test")
        return body if status == 0 and "fresh" in body else None

    assert await eventually(served_fresh, "fresh.test served") == "<p>fresh</p>"


async def test_sigterm_stops_the_app_processes_too(served: Served) -> None:
    _, body = await curl(served, "api.test")
    pid = json.loads(body)["pid"]
    served.process.send_signal(signal.SIGTERM)
    with trio.fail_after(CHANGE_TIMEOUT):
        code = await served.process.wait()
    assert code == 0
    assert not running(pid)
