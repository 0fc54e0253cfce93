"""The access log without sockets: formats, the bounded buffer, the writer actor, reopening, and the
configuration's refusals."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trio

from actorproxy.config import AccessLogConf, ConfigError, ServerConf
from actorproxy.proxy._accesslog import AccessLog, AccessLogActor, AccessRecord, line_format
from actors import ActorSystem


def record(**changes: object) -> AccessRecord:
    values: dict[str, object] = {
        "end": 1_796_486_724.0,
        "client": ("10.0.0.7", 51234),
        "method": "GET",
        "path": "/a?b=1",
        "version": "1.1",
        "host": "example.com",
        "status": 200,
        "bytes_sent": 312,
        "bytes_received": 95,
        "duration": 0.0042,
        "upstream": ("127.0.0.1", 9001),
        "upstream_ttfb": 0.003,
        "retries": 1,
        "request_id": "abc123",
        "route": "routes[0]",
        "user_agent": "curl/8.0",
    }
    values.update(changes)
    return AccessRecord(**values)  # type: ignore[arg-type]


def test_combined_is_nginxs_format() -> None:
    line = line_format("combined")(record())
    date, _, rest = line.partition("] ")
    assert date.startswith("10.0.0.7 - - [") and "/Dec/2026:" in date
    assert rest == '"GET /a?b=1 HTTP/1.1" 200 312 "-" "curl/8.0"'


def test_json_has_every_field_one_object_a_line() -> None:
    data = json.loads(line_format("json")(record()))
    assert data["client"] == "10.0.0.7" and data["client_port"] == 51234
    assert (data["status"], data["request_id"], data["upstream"], data["retries"]) == (
        200,
        "abc123",
        "127.0.0.1:9001",
        1,
    )
    assert data["duration_ms"] == 4.2 and data["referer"] is None and data["route"] == "routes[0]"


def test_a_template_names_fields_and_unknown_values_are_a_dash() -> None:
    render = line_format("{client} {method} {path} {status} {duration_ms}ms {upstream} {cache} {request_id}")
    assert render(record()) == "10.0.0.7 GET /a?b=1 200 4.2ms 127.0.0.1:9001 - abc123"
    assert render(record(upstream=("::1", 8080), status=None)).split()[3:6] == ["0", "4.2ms", "[::1]:8080"]


@pytest.mark.parametrize(
    ("format", "reason"),
    [
        ("{client} {nope}", "unknown field {nope}"),
        ("{status:>5}", "no format spec"),
        ("plain text", "at least one {field}"),
        ("{client", "expected"),
    ],
)
def test_a_bad_format_is_a_config_error_naming_the_key(format: str, reason: str) -> None:
    text = f"""
services:
  - name: edge
    listeners: [{{address: 127.0.0.1:0}}]
    routes: [{{upstream: u}}]
    access_log: {{path: /tmp/a.log, format: {json.dumps(format)}}}
upstreams: [{{name: u, discovery: {{static: [127.0.0.1:1]}}}}]
"""
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(text)
    message = str(caught.value)
    assert "services[0].access_log.format" in message and reason in message


def test_a_full_buffer_drops_and_counts() -> None:
    log = AccessLog(AccessLogConf(path="-", buffer=2))
    for _ in range(5):
        log.push(record())
    assert (len(log.take()), log.dropped) == (2, 3)


async def test_the_writer_writes_batches_and_reopens_a_rotated_file(
    tmp_path: Path, actor_system: ActorSystem
) -> None:
    path = tmp_path / "access.log"
    log = AccessLog(AccessLogConf(path=str(path), format="{request_id} {status}"))
    writer = await actor_system.spawn(lambda: AccessLogActor(log), name="access-log")
    for n in range(3):
        log.push(record(request_id=f"r{n}"))
    with trio.fail_after(5):
        while log.written < 3:  # noqa: ASYNC110 - the writer's thread finishes the batch
            await trio.sleep(0.01)
    path.rename(tmp_path / "access.log.1")  # logrotate
    log.reopen()
    log.push(record(request_id="after"))
    with trio.fail_after(5):
        while log.written < 4:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert (tmp_path / "access.log.1").read_text() == "r0 200\nr1 200\nr2 200\n"
    assert path.read_text() == "after 200\n"
    log.push(record(request_id="last"))
    await writer.stop()
    assert path.read_text() == "after 200\nlast 200\n"  # what was left is written before the file closes


async def test_a_failing_write_drops_and_counts_and_the_writer_goes_on(
    tmp_path: Path, actor_system: ActorSystem
) -> None:
    directory = tmp_path / "logs"
    directory.mkdir()
    path = directory / "access.log"
    log = AccessLog(AccessLogConf(path=str(path), format="{status}"))
    writer = await actor_system.spawn(lambda: AccessLogActor(log), name="access-log")
    path.unlink()
    directory.rmdir()  # the reopen will fail: the directory is gone
    log.reopen()
    log.push(record())
    with trio.fail_after(5):
        while log.dropped < 1:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert writer.is_alive
    directory.mkdir()
    log.push(record(status=204))
    with trio.fail_after(5):
        while log.written < 1:  # noqa: ASYNC110
            await trio.sleep(0.01)
    assert path.read_text() == "204\n"
