"""`actorproxy store -c FILE get|put|forget|flush|stats` in real processes, on a sqlite file and on a real
redis-server (the refusals one by one are in tests/actorproxy/store/test_store_command.py)."""

from __future__ import annotations

import json
import sys
import uuid
from pathlib import Path

import pytest
import trio

from actorproxy.config import RedisConf
from actorproxy.store import RedisBackend, SqliteBackend, Store
from actorproxy.testing import RedisServer

COMMAND = [sys.executable, "-m", "actorproxy.cli", "store"]
# Starting Python and importing the proxy; generous for a loaded CI machine.
TIMEOUT = 30


async def store_cli(conf: Path, *args: str, stdin: bytes = b"") -> tuple[int, bytes, str]:
    with trio.fail_after(TIMEOUT):
        result = await trio.run_process(
            [*COMMAND, "-c", str(conf), *args],
            stdin=stdin,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    return result.returncode, result.stdout, result.stderr.decode()


@pytest.fixture(params=["sqlite", "redis"])
def conf(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "server.yaml"
    if request.param == "sqlite":
        path.write_text(f"store: {{backend: sqlite, path: {tmp_path / 'store.db'}}}\n")
    else:
        server: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"cli-{uuid.uuid4().hex}:"
        path.write_text(
            f"store: {{backend: redis}}\nredis: {{url: '{server.url}', key_prefix: '{prefix}'}}\n"
        )
    return path


async def test_put_get_forget_flush_and_stats(conf: Path) -> None:
    assert await store_cli(conf, "put", "s:greeting", "hello") == (0, b"stored s:greeting\n", "")
    user = '{"name": "ada", "n": 1}'
    assert await store_cli(conf, "put", "s:user", user, "--json", "--ttl", "60") == (
        0,
        b"stored s:user\n",
        "",
    )
    assert await store_cli(conf, "put", "raw", "-", stdin=b"\x00\xffbytes") == (0, b"stored raw\n", "")
    assert await store_cli(conf, "get", "s:greeting") == (0, b"hello", "")
    code, out, _ = await store_cli(conf, "get", "s:user")
    assert (code, json.loads(out)) == (0, {"name": "ada", "n": 1})
    assert await store_cli(conf, "get", "raw") == (0, b"\x00\xffbytes", "")
    code, out, _ = await store_cli(conf, "stats")
    assert code == 0 and b"entries: 3\n" in out
    assert await store_cli(conf, "forget", "s:greeting") == (0, b"forgot s:greeting\n", "")
    code, out, err = await store_cli(conf, "get", "s:greeting")
    assert (code, out) == (1, b"") and "no entry 's:greeting'" in err
    assert await store_cli(conf, "flush", "--prefix", "s:") == (0, b"flushed 1 entries\n", "")
    assert await store_cli(conf, "flush") == (0, b"flushed 1 entries\n", "")


async def test_get_streams_a_body_written_by_the_server(tmp_path: Path, redis_server: RedisServer) -> None:
    sqlite_conf = tmp_path / "sqlite.yaml"
    sqlite_conf.write_text(f"store: {{backend: sqlite, path: {tmp_path / 'store.db'}}}\n")
    prefix = f"cli-{uuid.uuid4().hex}:"
    redis_conf = tmp_path / "redis.yaml"
    redis_conf.write_text(
        f"store: {{backend: redis}}\nredis: {{url: '{redis_server.url}', key_prefix: '{prefix}'}}\n"
    )
    body = bytes(range(256)) * 1000
    backends = [
        (sqlite_conf, SqliteBackend(tmp_path / "store.db")),
        (redis_conf, RedisBackend(RedisConf(url=redis_server.url, key_prefix=prefix))),
    ]
    for conf, backend in backends:
        async with Store(backend) as store, store.open_writer("page", meta=b"head") as writer:
            await writer.write(body)
            await writer.commit()
        assert await store_cli(conf, "get", "page") == (0, body, "")


async def test_a_refusal_names_the_file_and_the_key_path_and_a_usage_error_exits_2(tmp_path: Path) -> None:
    conf = tmp_path / "server.yaml"
    conf.write_text("store: {backend: sqlite}\n")
    code, out, err = await store_cli(conf, "stats")
    assert (code, out) == (1, b"")
    assert "store.path: required with backend sqlite" in err and str(conf) in err
    assert (await store_cli(conf, "frobnicate"))[0] == 2
