"""Loading a whole file: every section structured into frozen records, and written back unchanged."""

from __future__ import annotations

import tomllib
import types
from pathlib import Path

import pytest

from actorproxy.config import (
    DiscoveryConf,
    DnsDiscoveryConf,
    FileDiscoveryConf,
    HeaderEditsConf,
    HealthCheckConf,
    HttpHealthCheckConf,
    ListenerConf,
    PassiveHealthConf,
    RouteConf,
    ServerConf,
    ServiceConf,
    StaticBackendConf,
    TcpHealthCheckConf,
    TlsConf,
    UpstreamConf,
    load_conf,
)

FULL = """
---
version: 1
daemon: true
error_log: /var/log/actorproxy/error.log
pid_file: /run/actorproxy.pid
upgrade_sock: /run/actorproxy_upgrade.sock
user: nobody
group: webusers
working_directory: /srv
threads: 4
listener_tasks_per_fd: 2
work_stealing: false
ca_file: /etc/ssl/ca.pem
grace_period_seconds: 1
graceful_shutdown_timeout_seconds: 2.5
client_bind_to_ipv4: [10.0.0.1, 10.0.0.2]
client_bind_to_ipv6: ["fd00::1"]
upstream_keepalive_pool_size: 0
upstream_connect_offload_threadpools: 2
upstream_connect_offload_thread_per_pool: 3
upstream_debug_ssl_keylog: true
max_retries: 3
upgrade_sock_connect_accept_max_retries: 10
max_blocking_threads: 8
daemon_wait_for_ready: true
daemon_ready_timeout_seconds: 30
daemon_notify_timeout_seconds: 5
services:
  - name: edge
    listeners:
      - address: 0.0.0.0:443
        tls: {cert: /etc/edge.pem, key: /etc/edge.key}
      - address: "[::]:80"
      - path: /run/edge.sock
        permissions: 0o660
    routes:
      - host: "*.example.com"
        path_prefix: /api/
        header: {x-beta: "1"}
        upstream: api
        request_headers: {set: {x-edge: "1"}, remove: [cookie]}
        response_headers: {remove: [server]}
        retries: 1
        connect_timeout: 0.5
        read_timeout: 10
        write_timeout: 10
        total_timeout: 2
      - upstream: web
upstreams:
  - name: api
    discovery: {dns: {name: api.internal, port: 8080, nameservers: [10.0.0.53, "10.0.0.54:5353"]}}
    algorithm: least_connections
    health_check:
      http: {host: api.internal, path: /healthz, expected_status: 204, tls: true, port_override: 8443}
      frequency: 5
    update_frequency: 30
    passive_health: {consecutive_failures: 3, base_ejection_time: 10, max_ejection_time: 60}
  - name: web
    discovery: {static: [127.0.0.1:9001, {addr: "[::1]:9002", weight: 3}, unix:/run/web.sock]}
    algorithm: consistent
    health_check: {tcp: {connect_timeout: 0.25}}
  - name: batch
    discovery: {file: {path: /etc/actorproxy/batch.yaml}}
    health_check: {tcp: }
  - name: srv
    discovery: {dns: {name: _http._tcp.example.com, record: SRV}}
"""


def test_a_full_file_becomes_records() -> None:
    conf = ServerConf.from_yaml(FULL)
    assert (conf.daemon, conf.threads, conf.work_stealing, conf.max_retries) == (True, 4, False, 3)
    assert conf.grace_period_seconds == 1.0 and isinstance(conf.grace_period_seconds, float)
    assert conf.graceful_shutdown_timeout_seconds == 2.5
    assert conf.client_bind_to_ipv4 == ("10.0.0.1", "10.0.0.2")
    assert conf.daemon_ready_timeout_seconds == 30.0
    assert conf.services == (
        ServiceConf(
            name="edge",
            listeners=(
                ListenerConf(address="0.0.0.0:443", tls=TlsConf(cert="/etc/edge.pem", key="/etc/edge.key")),
                ListenerConf(address="[::]:80"),
                ListenerConf(path="/run/edge.sock", permissions=0o660),
            ),
            routes=(
                RouteConf(
                    host="*.example.com",
                    path_prefix="/api/",
                    header={"x-beta": "1"},
                    upstream="api",
                    request_headers=HeaderEditsConf(set={"x-edge": "1"}, remove=("cookie",)),
                    response_headers=HeaderEditsConf(remove=("server",)),
                    retries=1,
                    connect_timeout=0.5,
                    read_timeout=10.0,
                    write_timeout=10.0,
                    total_timeout=2.0,
                ),
                RouteConf(upstream="web"),
            ),
        ),
    )
    api, web, batch, srv = conf.upstreams
    assert api == UpstreamConf(
        name="api",
        discovery=DiscoveryConf(
            dns=DnsDiscoveryConf(name="api.internal", port=8080, nameservers=("10.0.0.53", "10.0.0.54:5353"))
        ),
        algorithm="least_connections",
        health_check=HealthCheckConf(
            http=HttpHealthCheckConf(
                host="api.internal", path="/healthz", expected_status=204, tls=True, port_override=8443
            ),
            frequency=5.0,
        ),
        update_frequency=30.0,
        passive_health=PassiveHealthConf(
            consecutive_failures=3, base_ejection_time=10.0, max_ejection_time=60.0
        ),
    )
    assert web.discovery.static == (
        StaticBackendConf(addr="127.0.0.1:9001"),
        StaticBackendConf(addr="[::1]:9002", weight=3),
        StaticBackendConf(addr="unix:/run/web.sock"),
    )
    assert (web.algorithm, web.health_check) == (
        "consistent",
        HealthCheckConf(tcp=TcpHealthCheckConf(connect_timeout=0.25)),
    )
    # `tcp:` alone asks for the defaults.
    assert batch.discovery == DiscoveryConf(file=FileDiscoveryConf(path="/etc/actorproxy/batch.yaml"))
    assert batch.health_check == HealthCheckConf(tcp=TcpHealthCheckConf())
    assert (batch.discovery.kind, srv.discovery.kind, web.discovery.kind) == ("file", "dns", "static")
    assert srv.discovery.dns is not None and srv.discovery.dns.port is None


def test_mappings_are_read_only() -> None:
    route = ServerConf.from_yaml(FULL).services[0].routes[0]
    assert isinstance(route.header, types.MappingProxyType)
    with pytest.raises(TypeError):
        route.request_headers.set["x-edge"] = "2"  # type: ignore[index]
    # Direct construction stores a read-only copy too.
    headers = {"x-a": "1"}
    edits = HeaderEditsConf(set=headers)
    headers["x-a"] = "2"
    assert edits.set == {"x-a": "1"} and isinstance(edits.set, types.MappingProxyType)


def test_yaml_toml_and_plain_data_round_trip() -> None:
    conf = ServerConf.from_yaml(FULL + "my_app: {token: t, ports: [1, 2]}\n")
    assert ServerConf.from_yaml(conf.to_yaml()) == conf
    assert ServerConf.from_mapping(conf.to_mapping()) == conf
    dumped = conf.to_mapping()
    assert dumped["services"][0]["listeners"][2]["permissions"] == "0o660"
    assert dumped["my_app"] == {"token": "t", "ports": [1, 2]}
    assert list(dumped)[:3] == ["version", "daemon", "error_log"]
    toml = tomllib.loads(conf.to_toml())
    assert toml["threads"] == 4 and "error_log" in toml and "max_blocking_threads" in toml
    assert "port" not in toml["upstreams"][3]["discovery"]["dns"]  # null, so left out
    assert ServerConf.from_mapping(toml) == conf


def test_load_yaml_and_load_conf_read_the_file_and_the_environment(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("threads: 2\n")
    assert ServerConf.load_yaml(path).threads == 2
    assert ServerConf.load_yaml(path, env={"ACTORPROXY__THREADS": "3"}).threads == 3
    assert load_conf(path, env={"ACTORPROXY__THREADS": "5"}).threads == 5
    assert load_conf(str(path), env={}).threads == 2
    assert load_conf(env={"ACTORPROXY__DAEMON": "true"}) == ServerConf(daemon=True)


def test_load_conf_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("threads: 2\n")
    monkeypatch.setenv("ACTORPROXY__THREADS", "7")
    assert load_conf(path).threads == 7
    assert ServerConf.load_yaml(path).threads == 2  # the constructors take no environment unless given one
