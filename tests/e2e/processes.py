"""Real `actorproxy` processes for end-to-end tests, and the lines their pipes produce.

`actorproxy_process(nursery, conf_path)` runs `actorproxy -c FILE` (a declared proxy, maybe with workers),
reads both pipes as they fill (so a chatty process never blocks on a full pipe), waits for its
"<service>: listening on <url>" line, and kills it at the end if it is still alive. `accepted_by` tells
which worker process holds a client's connection.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import attrs
import trio

ROOT = Path(__file__).resolve().parents[2]
# Starting Python and importing the proxy; generous for a loaded CI machine.
START_TIMEOUT = 30


@attrs.define
class Lines:
    """The lines a stream has produced so far; `wait_for` waits for one that matches."""

    lines: list[str] = attrs.Factory(list)
    _more: trio.Event = attrs.Factory(trio.Event)

    async def pump(self, stream: trio.abc.ReceiveStream) -> None:
        buffer = b""
        while data := await stream.receive_some(65536):
            buffer += data
            *complete, buffer = buffer.split(b"\n")
            self.lines.extend(line.decode(errors="replace") for line in complete)
            self._more.set()
            self._more = trio.Event()

    async def wait_for(self, match: Callable[[str], bool], start: int = 0) -> str:
        while True:
            for line in self.lines[start:]:
                if match(line):
                    return line
            start = len(self.lines)
            await self._more.wait()


@attrs.define
class ProxyProcess:
    """A running `actorproxy -c FILE`: its process, its output so far, and its first service's URL."""

    process: trio.Process
    stdout: Lines
    stderr: Lines
    url: str = ""


@asynccontextmanager
async def actorproxy_process(
    nursery: trio.Nursery, conf_path: Path | str, *options: str, wait: bool = True
) -> AsyncIterator[ProxyProcess]:
    """`actorproxy -c conf_path [options]`, listening (its URL read from its output); killed at the end if
    alive. With `wait=False` it is handed over as soon as it runs (`-u` listens only once the running
    server has sent its sockets): call `listening(process)` when it should be."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "actorproxy.cli", "-c", str(conf_path), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        start_new_session=True,  # its worker processes in its group, to be killed with it
    )
    assert process.stdout is not None and process.stderr is not None
    running = ProxyProcess(process, Lines(), Lines())
    nursery.start_soon(running.stdout.pump, process.stdout)
    nursery.start_soon(running.stderr.pump, process.stderr)
    try:
        if wait:
            await listening(running)
        yield running
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(10):
                await process.wait()
        # Workers outlive a killed master (as nginx's do): none is left running after the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


async def listening(running: ProxyProcess) -> None:
    """Wait (bounded) until `running` says it listens, and note its first service's URL."""
    with trio.fail_after(START_TIMEOUT):
        line = await running.stdout.wait_for(lambda line: "listening on " in line)
    running.url = line.split("listening on ", 1)[1].strip()


def has(needle: str) -> Callable[[str], bool]:
    """A `Lines.wait_for` match: the line holds `needle`."""
    return lambda line: needle in line


def _socket_inodes(pid: int) -> set[str]:
    inodes: set[str] = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except FileNotFoundError:
        return inodes  # the process has ended (a worker replaced meanwhile): it holds nothing
    for fd in fds:
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def accepted_by(worker_pids: list[int], client_ports: list[int]) -> Counter[int]:
    """How many of the connections from `client_ports` each worker process holds (read from /proc)."""
    by_inode = {}
    with open("/proc/net/tcp") as table:
        for line in table.read().splitlines()[1:]:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            by_inode[fields[9]] = remote_port
    held: Counter[int] = Counter()
    for pid in worker_pids:
        held[pid] = sum(by_inode.get(inode) in client_ports for inode in _socket_inodes(pid))
    return held
