"""Configuration: Pingora's YAML server settings, the declared proxy, user-defined keys, env overrides.

Pure: nothing here opens a socket; loading reads one file. Each component is given its own section
(`conf.upstreams[0].health_check`), never the whole record.

    conf = load_conf("/etc/actorproxy.yaml")       # file, then ACTORPROXY__... variables, then validation
    conf.threads, conf.get("my_app.token"), conf.get("upstreams.web.algorithm")
    print(conf.to_yaml())                          # the effective configuration

A bad value raises `ConfigError` naming its key path: `services[0].listeners[1].address: not host:port`.
"""

from ._checks import did_you_mean
from ._defaults import (
    DEFAULT_BASE_EJECTION_TIME,
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_CONSECUTIVE_FAILURES,
    DEFAULT_DNS_MAX_TTL,
    DEFAULT_DNS_MIN_TTL,
    DEFAULT_DNS_QUERY_TIMEOUT,
    DEFAULT_GRACE_PERIOD,
    DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
    DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT,
    DEFAULT_HEALTH_CHECK_FREQUENCY,
    DEFAULT_HEALTH_CHECK_READ_TIMEOUT,
    DEFAULT_KEEPALIVE_TIMEOUT,
    DEFAULT_MAX_EJECTION_PERCENT,
    DEFAULT_MAX_EJECTION_TIME,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_REQUEST_BODY_TIMEOUT,
    DEFAULT_REQUEST_HEADER_TIMEOUT,
    DEFAULT_TOTAL_CONNECTION_TIMEOUT,
    DEFAULT_VIA_PSEUDONYM,
    DEFAULT_WRITE_TIMEOUT,
)
from ._dns import DnsConf
from ._env import ENV_PREFIX, ENV_SEPARATOR
from ._error import ConfigError, ConfigWarning, Problem
from ._load import load_conf
from ._proxy import DEFAULT_LIMITS, Forwarding, HttpLimits, ProxySettings
from ._redis import RedisConf
from ._schema import json_schema
from ._server import DEFAULT_PID_FILE, DEFAULT_UPGRADE_SOCK, PINGORA_RUNTIME_KEYS, ServerConf
from ._services import (
    HeaderEditsConf,
    ListenerConf,
    RouteConf,
    ServiceConf,
    TlsConf,
)
from ._sites import CaConf, ParkConf, SiteConf, SitesServerConf
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
    "DEFAULT_BASE_EJECTION_TIME",
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_CONSECUTIVE_FAILURES",
    "DEFAULT_DNS_MAX_TTL",
    "DEFAULT_DNS_MIN_TTL",
    "DEFAULT_DNS_QUERY_TIMEOUT",
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT",
    "DEFAULT_HEALTH_CHECK_FREQUENCY",
    "DEFAULT_HEALTH_CHECK_READ_TIMEOUT",
    "DEFAULT_KEEPALIVE_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_EJECTION_PERCENT",
    "DEFAULT_MAX_EJECTION_TIME",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_PID_FILE",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_REQUEST_HEADER_TIMEOUT",
    "DEFAULT_TOTAL_CONNECTION_TIMEOUT",
    "DEFAULT_UPGRADE_SOCK",
    "DEFAULT_VIA_PSEUDONYM",
    "DEFAULT_WRITE_TIMEOUT",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "PINGORA_RUNTIME_KEYS",
    "Algorithm",
    "CaConf",
    "ConfigError",
    "ConfigWarning",
    "DiscoveryConf",
    "DnsConf",
    "DnsDiscoveryConf",
    "DnsRecord",
    "FileDiscoveryConf",
    "Forwarding",
    "HeaderEditsConf",
    "HealthCheckConf",
    "HttpHealthCheckConf",
    "HttpLimits",
    "ListenerConf",
    "ParkConf",
    "PassiveHealthConf",
    "Problem",
    "ProxySettings",
    "RedisConf",
    "RouteConf",
    "ServerConf",
    "ServiceConf",
    "SiteConf",
    "SitesServerConf",
    "StaticBackendConf",
    "TcpHealthCheckConf",
    "TlsConf",
    "UpstreamConf",
    "did_you_mean",
    "json_schema",
    "load_conf",
]
