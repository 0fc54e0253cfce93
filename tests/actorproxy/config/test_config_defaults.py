"""Defaults: Pingora's for the server keys (two paths argued otherwise), the load balancer's for the proxy."""

from __future__ import annotations

import attrs
import pytest

from actorproxy.config import (
    DEFAULT_PID_FILE,
    DEFAULT_UPGRADE_SOCK,
    HealthCheckConf,
    HttpHealthCheckConf,
    PassiveHealthConf,
    ServerConf,
    StaticBackendConf,
    TcpHealthCheckConf,
)
from actorproxy.config import ServerConf as ExportedServerConf

# pingora-core's ServerConf::new() (the YAML document "version: 1" read with serde defaults), Pingora 0.9.
PINGORA_DEFAULTS = {
    "version": 1,
    "daemon": False,
    "error_log": None,
    "pid_file": "/tmp/pingora.pid",
    "upgrade_sock": "/tmp/pingora_upgrade.sock",
    "user": None,
    "group": None,
    "working_directory": None,
    "threads": 1,
    "listener_tasks_per_fd": 1,
    "work_stealing": True,
    "ca_file": None,
    "grace_period_seconds": None,
    "graceful_shutdown_timeout_seconds": None,
    "client_bind_to_ipv4": (),
    "client_bind_to_ipv6": (),
    "upstream_keepalive_pool_size": 128,
    "upstream_connect_offload_threadpools": None,
    "upstream_connect_offload_thread_per_pool": None,
    "upstream_debug_ssl_keylog": False,
    "max_retries": 16,
    "upgrade_sock_connect_accept_max_retries": None,
    "max_blocking_threads": None,
    "daemon_wait_for_ready": False,
    "daemon_ready_timeout_seconds": None,
    "daemon_notify_timeout_seconds": None,
}
# The documented deviations: the project's own names, so it never meets a Pingora process's files.
DEVIATIONS = {"pid_file": "/tmp/actorproxy.pid", "upgrade_sock": "/tmp/actorproxy_upgrade.sock"}


def test_the_server_keys_default_to_pingoras_but_for_the_two_paths() -> None:
    conf = ServerConf()
    server_keys = {name: getattr(conf, name) for name in PINGORA_DEFAULTS}
    assert server_keys == {**PINGORA_DEFAULTS, **DEVIATIONS}
    assert (DEVIATIONS["pid_file"], DEVIATIONS["upgrade_sock"]) == (DEFAULT_PID_FILE, DEFAULT_UPGRADE_SOCK)


def test_every_field_is_a_pingora_key_or_a_documented_addition() -> None:
    declared = {"services", "upstreams"}
    virtual_server = {"dns", "sites", "park", "ca", "sites_server"}
    additions = (
        declared
        | virtual_server
        | {
            "redis",
            "settings",
            "hooks",
            "rate_limit_table",
            "store",
            "metrics",
            "admin",
            "extra",
        }
    )
    assert set(attrs.fields_dict(ServerConf)) == set(PINGORA_DEFAULTS) | additions


def test_an_empty_file_is_the_defaults_and_the_kernel_reexports_the_record() -> None:
    assert ServerConf.from_yaml("") == ServerConf() == ServerConf.from_mapping({})
    assert ExportedServerConf is ServerConf
    conf = ServerConf()
    assert (conf.services, conf.upstreams, dict(conf.extra)) == ((), (), {})


def test_records_are_frozen_and_keyword_only() -> None:
    conf = ServerConf()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        conf.threads = 2  # type: ignore[misc]
    with pytest.raises(TypeError):
        ServerConf(1)  # type: ignore[call-arg]
    assert hash(conf) == hash(ServerConf())


def test_proxy_defaults_match_the_load_balancer() -> None:
    # actors sits above the kernel; the test (not the package) may look up to keep the two in step.
    lb = pytest.importorskip("actorproxy.lb", exc_type=ImportError)
    tcp, http = lb.TcpHealthCheck(), lb.HttpHealthCheck("example.com")
    assert TcpHealthCheckConf().connect_timeout == tcp.connect_timeout
    assert (TcpHealthCheckConf().consecutive_success, TcpHealthCheckConf().consecutive_failure) == (
        tcp.consecutive_success,
        tcp.consecutive_failure,
    )
    mine = HttpHealthCheckConf(host="example.com")
    for name in (
        "path",
        "expected_status",
        "read_timeout",
        "connect_timeout",
        "reuse_connection",
        "tls",
        "sni",
    ):
        assert getattr(mine, name) == getattr(http, name), name
    outliers, passive = lb.OutlierDetection(), PassiveHealthConf()
    for field in attrs.fields(PassiveHealthConf):
        assert getattr(passive, field.name) == getattr(outliers, field.name), field.name
    assert StaticBackendConf(addr="127.0.0.1:80").weight == lb.Backend("127.0.0.1:80").weight
    assert HealthCheckConf(tcp=TcpHealthCheckConf()).frequency == 1.0
