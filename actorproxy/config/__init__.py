"""Configuration: Pingora's YAML server settings, the declared proxy, user-defined keys, env overrides.

Pure: nothing here opens a socket; loading reads one file. Each component is given its own section
(`conf.upstreams[0].health_check`), never the whole record.

    conf = load_conf("/etc/actorproxy.yaml")       # file, then ACTORPROXY__... variables, then validation
    conf.threads, conf.get("my_app.token"), conf.get("upstreams.web.algorithm")
    print(conf.to_yaml())                          # the effective configuration

A bad value raises `ConfigError` naming its key path: `services[0].listeners[1].address: not host:port`.
"""

from ._defaults import DEFAULT_GRACE_PERIOD, DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT
from ._env import ENV_PREFIX, ENV_SEPARATOR
from ._error import ConfigError, ConfigWarning, Problem
from ._load import load_conf
from ._schema import json_schema
from ._server import DEFAULT_PID_FILE, DEFAULT_UPGRADE_SOCK, PINGORA_RUNTIME_KEYS, ServerConf
from ._services import (
    ForwardingConf,
    HeaderEditsConf,
    LimitsConf,
    ListenerConf,
    RouteConf,
    ServiceConf,
    TlsConf,
)
from ._upstreams import (
    Algorithm,
    DiscoveryConf,
    DnsDiscoveryConf,
    DnsRecord,
    FileDiscoveryConf,
    HealthCheckConf,
    HttpHealthCheckConf,
    PassiveHealthConf,
    StaticBackendConf,
    TcpHealthCheckConf,
    UpstreamConf,
)

__all__ = [
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_PID_FILE",
    "DEFAULT_UPGRADE_SOCK",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "PINGORA_RUNTIME_KEYS",
    "Algorithm",
    "ConfigError",
    "ConfigWarning",
    "DiscoveryConf",
    "DnsDiscoveryConf",
    "DnsRecord",
    "FileDiscoveryConf",
    "ForwardingConf",
    "HeaderEditsConf",
    "HealthCheckConf",
    "HttpHealthCheckConf",
    "LimitsConf",
    "ListenerConf",
    "PassiveHealthConf",
    "Problem",
    "RouteConf",
    "ServerConf",
    "ServiceConf",
    "StaticBackendConf",
    "TcpHealthCheckConf",
    "TlsConf",
    "UpstreamConf",
    "json_schema",
    "load_conf",
]
