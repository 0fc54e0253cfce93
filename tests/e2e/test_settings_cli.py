"""`actorproxy settings` in real processes, and a secret carried by a real server to a real upstream.

The server runs as users run it: `actorproxy -c FILE` in daemon mode, with its pid file and error log. A
secret set with `settings set --secret` reaches the upstream in a header; a new one is applied by the
reload `settings set` asks for; and neither value appears in any command's output, the error log, a dump
or an error, not even when a bad value sits next to the secret. The tests wait for files and log lines
(bounded), never for time to pass.
"""

from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import httpx
import trio
from upstream import Upstream

from actorproxy.settings import Encrypter, SettingsFile, parse_key, read_key_file

ROOT = Path(__file__).resolve().parents[2]
COMMAND = [sys.executable, "-m", "actorproxy.cli"]
# Starting Python and importing the proxy; generous for a loaded CI machine.
START_TIMEOUT = 30
FIRST, SECOND = "tok-first-8c2d91", "tok-second-51aa07"
ADMIN_TOKEN = "admin-token-3f9e1c77d2"


def clean_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ACTORPROXY")}
    return {**env, **extra}


async def run(
    *args: str, stdin: str = "", env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    with trio.fail_after(START_TIMEOUT):
        return await trio.run_process(
            [*COMMAND, *args],
            stdin=stdin.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            cwd=ROOT,
            env=dict(env or clean_env()),
        )


def output(result: subprocess.CompletedProcess[bytes]) -> str:
    return result.stdout.decode() + result.stderr.decode()


async def settings(conf: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[bytes]:
    return await run("settings", "-c", str(conf), *args, stdin=stdin)


async def wait_for_text(path: Path, needle: str, start: int = 0) -> str:
    """Poll the file a daemon writes until `needle` appears after offset `start`; return the text."""
    with trio.fail_after(START_TIMEOUT):
        while True:
            text = await trio.Path(path).read_text() if await trio.Path(path).exists() else ""
            if needle in text[start:]:
                return text
            await trio.sleep(0.05)


class Command(Protocol):
    async def __call__(self, *args: str, stdin: str = "", status: int = 0) -> str: ...


def last_authorization(upstream: Upstream) -> str:
    headers = {name.lower(): value for name, value in upstream.requests[-1]["headers"]}
    return headers["authorization"]


def proxy_yaml(tmp_path: Path, port: int, extra: str = "") -> str:
    return textwrap.dedent(
        f"""
        daemon: true
        pid_file: {tmp_path}/proxy.pid
        error_log: {tmp_path}/error.log
        upgrade_sock: {tmp_path}/upgrade.sock
        grace_period_seconds: 1
        hooks:
          after_set: ["echo \\"$ACTORPROXY_CHANGED_KEYS|$ACTORPROXY_CHANGED_PATHS\\" >> {tmp_path}/hook.log"]
        services:
          - name: edge
            listeners:
              - address: 127.0.0.1:0
            routes:
              - path_prefix: /
                upstream: app
                request_headers:
                  set:
                    Authorization: "Bearer ${{secret:UPSTREAM_TOKEN}}"
        upstreams:
          - name: app
            discovery:
              static: ["127.0.0.1:{port}"]
        {extra}
        """
    )


async def test_a_secret_reaches_the_upstream_and_a_new_one_applies_on_reload_without_leaking(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = Upstream("up")
    await nursery.start(upstream.serve)
    conf = tmp_path / "proxy.yaml"
    await trio.Path(conf).write_text(proxy_yaml(tmp_path, upstream.port))
    outputs: list[str] = []

    async def command(*args: str, stdin: str = "", status: int = 0) -> str:
        result = await settings(conf, *args, stdin=stdin)
        outputs.append(output(result))
        assert result.returncode == status, output(result)
        return output(result)

    await command("key:generate")
    assert stat.S_IMODE((tmp_path / "actorproxy.key").stat().st_mode) == 0o600
    await command("set", "UPSTREAM_TOKEN", "--secret", stdin=FIRST + "\n")
    assert FIRST not in (tmp_path / "actorproxy.env").read_text()

    started = await run("-c", str(conf))
    outputs.append(output(started))
    assert started.returncode == 0, output(started)  # the daemon detached
    log = tmp_path / "error.log"
    text = await wait_for_text(log, "edge: listening on ")
    url = text.split("edge: listening on ", 1)[1].split()[0]
    pid = int((await wait_for_text(tmp_path / "proxy.pid", "\n")).strip())
    try:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/echo")).status_code == 200
            assert last_authorization(upstream) == f"Bearer {FIRST}"

            mark = len(await trio.Path(log).read_text())
            said = await command("set", "UPSTREAM_TOKEN", "--secret", stdin=SECOND)
            assert f"sent SIGHUP to the server (pid {pid})" in said
            await wait_for_text(log, "reloaded:", mark)
            assert (await client.get("/echo")).status_code == 200
            assert last_authorization(upstream) == f"Bearer {SECOND}"
            hook = (tmp_path / "hook.log").read_text().splitlines()
            assert hook[-1] == "UPSTREAM_TOKEN|services[0].routes[0].request_headers.set.Authorization"

            await refuse_a_bad_value_next_to_the_secret(tmp_path, upstream.port, pid, command)
            await look_at_the_configuration(conf, command, outputs)
            # `get` is the one command that prints a secret: it is asked for it by name.
            assert (await command("get", "UPSTREAM_TOKEN")).strip() == SECOND
            outputs.pop()
    finally:
        os.kill(pid, signal.SIGTERM)
    with trio.fail_after(START_TIMEOUT):
        while await trio.Path(tmp_path / "proxy.pid").exists():  # noqa: ASYNC110 - removed as it exits
            await trio.sleep(0.05)
    logged = (tmp_path / "error.log").read_text()
    assert "drained" in logged
    for text in [*outputs, logged]:
        assert FIRST not in text and SECOND not in text


async def test_set_get_has_all_forget_without_a_running_server(tmp_path: Path) -> None:
    conf = tmp_path / "proxy.yaml"
    await trio.Path(conf).write_text(proxy_yaml(tmp_path, 9).replace("daemon: true", "daemon: false"))
    assert (
        await settings(conf, "set", "UPSTREAM_TOKEN", "--secret", stdin="x" * 8)
    ).returncode == 1  # no key
    assert (await settings(conf, "key:generate")).returncode == 0
    again = await settings(conf, "key:generate")
    assert again.returncode == 1 and b"--force replaces the key" in again.stderr
    old = read_key_file(tmp_path / "actorproxy.key")
    assert (await settings(conf, "set", "UPSTREAM_TOKEN", "--secret", stdin="tok-old-key-1")).returncode == 0
    assert (await settings(conf, "key:generate", "--force")).returncode == 0
    rotated = read_key_file(tmp_path / "actorproxy.key")
    assert rotated.previous == (old.key,) and rotated.key != old.key  # old values still decrypt
    assert (await settings(conf, "get", "UPSTREAM_TOKEN")).stdout == b"tok-old-key-1\n"

    result = await settings(conf, "set", "services.0.routes.0.retries", "2")
    assert result.returncode == 0, output(result)
    assert b"no running server" in result.stdout
    assert "ACTORPROXY__SERVICES__0__ROUTES__0__RETRIES=2\n" in (tmp_path / "actorproxy.env").read_text()
    listed = (await settings(conf, "all")).stdout.decode()
    assert "UPSTREAM_TOKEN=••••" in listed and "services.0.routes.0.retries" in listed
    assert (await settings(conf, "has", "services.0.routes.0.retries")).returncode == 0
    assert (await settings(conf, "forget", "services.0.routes.0.retries")).returncode == 0
    assert (await settings(conf, "has", "services.0.routes.0.retries")).returncode == 1
    plain = await settings(conf, "set", "UPSTREAM_TOKEN", "in-history")
    assert plain.returncode == 1 and b"is encrypted: set it with --secret" in plain.stderr
    typed = await settings(conf, "set", "UPSTREAM_TOKEN", "in-history", "--secret")
    assert typed.returncode == 1 and b"stays out of shell history" in typed.stderr

    (tmp_path / "actorproxy.key").chmod(0o644)
    refused = await settings(conf, "get", "UPSTREAM_TOKEN")
    assert (
        refused.returncode == 1 and b"its mode is 0o644" in refused.stderr and b"chmod 600" in refused.stderr
    )


async def test_a_failing_hook_is_reported_and_the_change_kept(tmp_path: Path) -> None:
    conf = tmp_path / "proxy.yaml"
    text = proxy_yaml(tmp_path, 9).replace("daemon: true", "daemon: false")
    text = text.replace("after_set: [", 'after_set: ["exit 3", ').replace("${secret:UPSTREAM_TOKEN}", "none")
    await trio.Path(conf).write_text(text)
    result = await settings(conf, "set", "services.0.routes.0.retries", "1")
    assert result.returncode == 1
    assert b"hook 'exit 3' failed with exit status 3" in result.stderr
    assert b"1 of 2 hooks failed; the change itself is saved" in result.stderr
    assert (await settings(conf, "get", "services.0.routes.0.retries")).stdout == b"1\n"
    assert (
        tmp_path / "hook.log"
    ).read_text() == "services.0.routes.0.retries|services[0].routes[0].retries\n"


async def test_encrypt_and_decrypt_the_whole_file_as_laravel_does(tmp_path: Path) -> None:
    plain = tmp_path / "app.env"
    text = "APP_NAME=demo\nDB_PASSWORD='p@ss word'\n"
    plain.write_text(text)
    encrypted = tmp_path / "app.env.encrypted"

    made = await run("settings", "--file", str(plain), "encrypt")
    assert made.returncode == 0, output(made)
    key = next(
        line.split(": ", 1)[1] for line in made.stdout.decode().splitlines() if line.startswith("key: ")
    )
    # Laravel's env:encrypt payload: `encrypt` (serialized) of the whole file, AES-256-CBC.
    assert Encrypter(parse_key(key)).decrypt(encrypted.read_text()) == text
    exists = await run("settings", "--file", str(plain), "encrypt")
    assert exists.returncode == 1 and b"already exists" in exists.stderr

    plain.unlink()
    wrong = await run("settings", "--file", str(plain), "decrypt", "--key", "base64:" + "A" * 43 + "=")
    assert wrong.returncode == 1 and b"the MAC is invalid" in wrong.stderr and not plain.exists()
    back = await run(
        "settings", "--file", str(plain), "decrypt", env=clean_env(ACTORPROXY_ENV_ENCRYPTION_KEY=key)
    )
    assert back.returncode == 0, output(back)
    assert plain.read_text() == text
    assert (
        await run("settings", "--file", str(plain), "decrypt", "--key", key)
    ).returncode == 1  # no --force

    readable = await run("settings", "--file", str(plain), "encrypt", "--readable", "--force", "--key", key)
    assert readable.returncode == 0, output(readable)
    values = SettingsFile.read(encrypted).values()
    assert list(values) == ["APP_NAME", "DB_PASSWORD"]
    assert Encrypter(parse_key(key)).decrypt_string(values["DB_PASSWORD"]) == "'p@ss word'"
    back = await run(
        "settings", "--file", str(plain), "decrypt", "--key", key, "--force", "--filename", "out.env"
    )
    assert back.returncode == 0, output(back)
    assert SettingsFile.read(tmp_path / "out.env").values() == {
        "APP_NAME": "demo",
        "DB_PASSWORD": "p@ss word",
    }


async def look_at_the_configuration(conf: Path, command: Command, outputs: list[str]) -> None:
    """Every way to look at the configuration, each redacted; what they printed goes to `outputs`."""
    assert "Bearer ••••" in await command("tree")
    assert "UPSTREAM_TOKEN=••••" in await command("all")
    for args in (("check", "-c", str(conf)), ("-t", "-c", str(conf))):
        result = await run(*args)
        assert result.returncode == 0, output(result)
        outputs.append(output(result))
    with trio.fail_after(START_TIMEOUT):
        dump = await trio.run_process(
            [sys.executable, "-m", "actorproxy.config", "check", str(conf)],
            capture_stdout=True,
            capture_stderr=True,
            cwd=ROOT,
            env=clean_env(),
        )
    outputs.append(output(dump))
    assert "Authorization: Bearer ••••" in output(dump)


async def refuse_a_bad_value_next_to_the_secret(
    tmp_path: Path, port: int, pid: int, command: Command
) -> None:
    """A bad value next to the secret: refused by `settings set`, and by the server's own reload."""
    conf, log = tmp_path / "proxy.yaml", tmp_path / "error.log"
    before = (tmp_path / "actorproxy.env").read_bytes()
    refused = await command("set", "max_retries", "many", status=1)
    assert "max_retries: expected an int >= 0, got 'many'" in refused
    assert (tmp_path / "actorproxy.env").read_bytes() == before
    mark = len(await trio.Path(log).read_text())
    broken = proxy_yaml(tmp_path, port, 'max_retries: "${secret:UPSTREAM_TOKEN}"')
    await trio.Path(conf).write_text(broken)
    os.kill(pid, signal.SIGHUP)
    text = await wait_for_text(log, "reload refused", mark)
    assert "max_retries: expected an int >= 0, got '••••'" in text[mark:]
    await trio.Path(conf).write_text(proxy_yaml(tmp_path, port))


async def test_set_reloads_through_the_admin_api_whose_token_is_a_secret(
    nursery: trio.Nursery, tmp_path: Path
) -> None:
    upstream = Upstream("up")
    await nursery.start(upstream.serve)
    with socket.socket() as probe:  # a free port, known before the server starts (the command needs it)
        probe.bind(("127.0.0.1", 0))
        admin_port = probe.getsockname()[1]
    conf = tmp_path / "proxy.yaml"
    await trio.Path(conf).write_text(proxy_yaml(tmp_path, upstream.port))
    await settings(conf, "key:generate")
    for name, value in (("UPSTREAM_TOKEN", FIRST), ("ADMIN_TOKEN", ADMIN_TOKEN)):
        assert (await settings(conf, "set", name, "--secret", stdin=value)).returncode == 0
    # The admin section names its token by reference, once the secret is there.
    admin = f"admin: {{listen: '127.0.0.1:{admin_port}', token: '${{secret:ADMIN_TOKEN}}'}}"
    await trio.Path(conf).write_text(proxy_yaml(tmp_path, upstream.port, admin))
    started = await run("-c", str(conf))
    assert started.returncode == 0, output(started)
    log = tmp_path / "error.log"
    text = await wait_for_text(log, "edge: listening on ")
    url = text.split("edge: listening on ", 1)[1].split()[0]
    await wait_for_text(log, "admin page: ")
    pid = int((await wait_for_text(tmp_path / "proxy.pid", "\n")).strip())
    try:
        changed = await settings(conf, "set", "UPSTREAM_TOKEN", "--secret", stdin=SECOND)
        said = output(changed)
        assert changed.returncode == 0 and "reloaded through the admin API" in said, said
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.get("/echo")).status_code == 200
        assert last_authorization(upstream) == f"Bearer {SECOND}"  # applied before `set` returned
        assert ADMIN_TOKEN not in said and SECOND not in said
    finally:
        os.kill(pid, signal.SIGTERM)
    with trio.fail_after(START_TIMEOUT):
        while await trio.Path(tmp_path / "proxy.pid").exists():  # noqa: ASYNC110 - removed as it exits
            await trio.sleep(0.05)
    assert ADMIN_TOKEN not in (tmp_path / "error.log").read_text()
