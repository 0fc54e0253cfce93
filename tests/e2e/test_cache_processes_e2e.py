"""The HTTP cache in a real `actorproxy -c FILE` with two worker processes on one SQLite store: a worker
killed with SIGKILL while it stores a response leaves the file sound and nothing half stored; the response
stored afterwards is a hit on fresh connections, whichever worker takes them (one file for both)."""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import textwrap
from pathlib import Path

import httpx
import trio
from processes import START_TIMEOUT, accepted_by, actorproxy_process, has
from upstream import Upstream

from actorproxy.store import SqliteBackend, Store

MIB = 1024 * 1024
# Bounds on waiting for the processes (guards, never delays).
PROCESS_TIMEOUT = 30.0
TARGET = "/cache/big?cc=max-age%3D600&size=4194304&drip=1"


def conf(tmp_path: Path, port: int) -> Path:
    path = tmp_path / "proxy.yaml"
    path.write_text(
        textwrap.dedent(
            f"""
            threads: 2
            upgrade_sock: {tmp_path}/upgrade.sock
            grace_period_seconds: 1
            store: {{backend: sqlite, path: {tmp_path}/store.db}}
            services:
              - name: edge
                listeners: [{{address: 127.0.0.1:0}}]
                routes:
                  - {{upstream: app, cache: {{}}}}
            upstreams:
              - {{name: app, discovery: {{static: ["127.0.0.1:{port}"]}}}}
            """
        )
    )
    return path


async def _read_on(stream: trio.SocketStream, received: list[int]) -> None:
    try:
        while data := await stream.receive_some(65536):
            received[0] += len(data)
    except trio.BrokenResourceError:
        return  # the worker was killed: its end is reset


def rows(path: Path, query: str) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(query).fetchall()
    finally:
        conn.close()


async def test_a_worker_killed_while_storing_leaves_nothing_half_stored(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    origin = upstreams[0]
    async with actorproxy_process(nursery, conf(tmp_path, origin.port)) as proxy:
        with trio.fail_after(START_TIMEOUT):
            for index in range(2):
                await proxy.stderr.wait_for(has(f"worker {index} started"))
        pids = [
            int(pid) for pid in re.findall(r"worker \d started \(pid (\d+)\)", "\n".join(proxy.stderr.lines))
        ]
        port = int(proxy.url.rsplit(":", 1)[1])
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        await stream.send_all(f"GET {TARGET} HTTP/1.1\r\nHost: edge\r\n\r\n".encode())
        received = [0]
        async with trio.open_nursery() as reading:
            # Read on while waiting, so that no buffer between the origin and this client fills up.
            reading.start_soon(_read_on, stream, received)
            with trio.fail_after(PROCESS_TIMEOUT):
                await origin.held.wait()  # half the body went through the worker; the origin waits
                while received[0] < MIB:  # noqa: ASYNC110 - the client has its share of it
                    await trio.sleep(0.01)
            [writer] = [
                pid for pid, count in accepted_by(pids, [stream.socket.getsockname()[1]]).items() if count
            ]
            lines = len(proxy.stderr.lines)
            os.kill(writer, signal.SIGKILL)
            with trio.fail_after(PROCESS_TIMEOUT):
                await proxy.stderr.wait_for(has("started (pid"), start=lines)
            reading.cancel_scope.cancel()
        origin.release.set()
        await stream.aclose()
        store_path = tmp_path / "store.db"
        assert rows(store_path, "PRAGMA integrity_check") == [("ok",)]
        assert rows(store_path, "SELECT key FROM entries") == []  # nothing visible, not even a part
        assert rows(store_path, "SELECT state FROM bodies") == [("writing",)]  # the killed writer's chunks
        async with httpx.AsyncClient(base_url=proxy.url, timeout=30) as client:
            again = await client.get(TARGET)  # the origin's pause is released now
            shared = [await client.get(TARGET, headers={"connection": "close"}) for _ in range(4)]
    assert (again.headers["x-cache"], len(again.content)) == ("MISS", 4 * MIB)
    assert {(a.headers["x-cache"], len(a.content)) for a in shared} == {("HIT", 4 * MIB)}
    # The sweep removes what the killed worker left: its process is gone.
    async with Store(SqliteBackend(store_path)) as store:
        await store.sweep()
    assert rows(store_path, "SELECT state FROM bodies") == [("live",)]
    assert origin.served["/cache/big"] == 2
