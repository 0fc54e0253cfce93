"""The systemd unit in examples/systemd matches its configuration and Pingora's reload-as-upgrade recipe."""

from __future__ import annotations

import configparser
from pathlib import Path

from actorproxy.config import load_conf

UNIT = Path(__file__).parents[2] / "examples" / "systemd" / "actorproxy.service"
CONF = UNIT.with_name("proxy.yaml")


def unit() -> configparser.RawConfigParser:
    parser = configparser.RawConfigParser(strict=False)  # ExecReload appears twice, as systemd allows
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def test_the_unit_runs_the_daemon_and_reloads_by_upgrade() -> None:
    service = unit()["Service"]
    assert service["Type"] == "forking"
    conf = load_conf(CONF, env={})
    assert service["PIDFile"] == conf.pid_file
    lines = [line.split("#")[0].strip() for line in UNIT.read_text().splitlines()]
    start = [line for line in lines if line.startswith("ExecStart=")]
    reload = [line for line in lines if line.startswith("ExecReload=")]
    assert start == ["ExecStart=/usr/local/bin/actorproxy -d -c /etc/actorproxy/proxy.yaml"]
    # First the running server is told to hand over, then the new process takes over: in that order.
    assert reload == [
        "ExecReload=/bin/kill -QUIT $MAINPID",
        "ExecReload=/usr/local/bin/actorproxy -u -d -c /etc/actorproxy/proxy.yaml",
    ]


def test_the_configuration_declares_a_proxy() -> None:
    conf = load_conf(CONF, env={})
    assert [s.name for s in conf.services] == ["web"]
    assert [u.name for u in conf.upstreams] == ["app"]
    assert conf.threads == 2 and conf.user == "nobody"
