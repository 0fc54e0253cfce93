"""Server configuration: Pingora's keys with Pingora's defaults, as a frozen record.

Loading from YAML, environment overrides and validation with key paths come with the server command line;
this module holds the record every component reads its own values from.
"""

from __future__ import annotations

import attrs

__all__ = ["ServerConf"]


@attrs.frozen(kw_only=True)
class ServerConf:
    """Pingora's server settings (defaults from pingora-core's ServerConf)."""

    version: int = 1
    daemon: bool = False
    error_log: str | None = None
    pid_file: str = "/tmp/pingora.pid"
    upgrade_sock: str = "/tmp/pingora_upgrade.sock"
    user: str | None = None
    group: str | None = None
    threads: int = 1
    work_stealing: bool = True
    ca_file: str | None = None
    grace_period_seconds: float | None = None
    graceful_shutdown_timeout_seconds: float | None = None
    client_bind_to_ipv4: tuple[str, ...] = ()
    client_bind_to_ipv6: tuple[str, ...] = ()
    upstream_keepalive_pool_size: int = 128
    upstream_connect_offload_threadpools: int | None = None
    upstream_connect_offload_thread_per_pool: int | None = None
    upstream_debug_ssl_keylog: bool = False
    max_retries: int = 16
