"""The SQLite store across processes: killed with SIGKILL mid-write (no corruption, nothing half-written
visible), several processes on one file, and a server's worker processes each opening it after the fork."""

from __future__ import annotations

import os
import signal
import sqlite3
import sys
from pathlib import Path

import trio

from actorproxy.store import SqliteBackend, Store

STOREPROC = Path(__file__).with_name("storeproc.py")
CHUNK = 4096
# Bounds on waiting for a child process to reach a point (never slept: the child's output is awaited).
PROCESS_TIMEOUT = 30.0


async def start(*args: str) -> trio.Process:
    return await trio.lowlevel.open_process(
        [sys.executable, str(STOREPROC), *args], stdout=-1, env={**os.environ, "PYTHONUNBUFFERED": "1"}
    )


class Output:
    """A child's stdout, read a line at a time."""

    def __init__(self, process: trio.Process) -> None:
        assert process.stdout is not None
        self.stream = process.stdout
        self.buffer = b""

    async def line(self) -> str:
        with trio.fail_after(PROCESS_TIMEOUT):
            while b"\n" not in self.buffer:
                data = await self.stream.receive_some()
                if not data:
                    raise EOFError(f"the child exited; output so far: {self.buffer!r}")
                self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def integrity(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        result: str = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    return result


async def kill(process: trio.Process) -> None:
    process.send_signal(signal.SIGKILL)
    with trio.fail_after(PROCESS_TIMEOUT):
        await process.wait()
    assert process.returncode == -signal.SIGKILL


async def test_a_writer_killed_in_a_loop_leaves_a_sound_file_with_every_reported_entry(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    process = await start("values", str(path))
    output = Output(process)
    reported = [int(await output.line()) for _ in range(20)]
    await kill(process)
    assert integrity(path) == "ok"
    async with Store(SqliteBackend(path, chunk_size=CHUNK)) as store:
        for n in reported:
            assert await store.get(f"k{n}") == f"v{n}".encode()
            reader = await store.open_reader(f"b{n}")
            assert reader is not None
            assert reader.meta == f"m{n}".encode()
            assert await reader.read() == bytes([n % 256]) * (3 * CHUNK + n)
        # Whatever the child committed after its last report is whole too: a body is all or nothing.
        stats = await store.statistics()
        assert stats.entries is not None and stats.entries >= 2 * len(reported)


async def test_a_body_writer_killed_mid_write_leaves_no_entry_and_the_sweep_reclaims_it(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    process = await start("body", str(path), "page")
    output = Output(process)
    assert await output.line() == "writing"
    await kill(process)
    assert integrity(path) == "ok"
    async with Store(SqliteBackend(path, chunk_size=CHUNK)) as store:
        reader = await store.open_reader("page")
        assert reader is not None and await reader.read() == b"committed"  # the old body, not a torn new one
        assert await store.sweep() >= 1  # the dead process's rows
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("SELECT count(*) FROM bodies WHERE state = 'writing'").fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM chunks").fetchone()[0] == 1
    finally:
        conn.close()


async def test_processes_incrementing_one_counter_lose_no_update(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    async with Store(SqliteBackend(path)) as store:
        await store.put("hits", 0)
    processes = [await start("count", str(path), "200") for _ in range(3)]
    for process in processes:
        assert await Output(process).line() == "done"
        with trio.fail_after(PROCESS_TIMEOUT):
            await process.wait()
    async with Store(SqliteBackend(path)) as store:
        assert await store.get("hits") == 600


async def test_each_worker_process_of_a_server_opens_the_store_after_the_fork(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    conf = tmp_path / "server.yaml"
    conf.write_text(
        f"threads: 2\nupgrade_sock: {tmp_path / 'upgrade.sock'}\nstore: {{backend: sqlite, path: {path}}}\n"
    )
    process = await start("server", str(conf), "100")
    output = Output(process)
    assert await output.line() == "serving"
    try:
        counted = {(await output.line()).removeprefix("counted ") for _ in range(2)}
        assert len(counted) == 2 and str(process.pid) not in counted
        async with Store(SqliteBackend(path)) as store:
            assert await store.get("hits") == 200
            assert {key for key in counted if await store.has(f"pid:{key}")} == counted
    finally:
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(PROCESS_TIMEOUT):
            await process.wait()
    assert process.returncode == 0
    assert integrity(path) == "ok"
