"""Configuration: Pingora's YAML server settings, the declared proxy, user-defined keys, env overrides.

Pure: nothing here opens a socket; loading reads one file. Each component is given its own section
(`conf.upstreams[0].health_check`), never the whole record.

    conf = load_conf("/etc/actorproxy.yaml")       # file, then ACTORPROXY__... variables, then validation
    conf.threads, conf.get("my_app.token"), conf.get("upstreams.web.algorithm")
    print(conf.to_yaml())                          # the effective configuration

A bad value raises `ConfigError` naming its key path: `services[0].listeners[1].address: not host:port`.
`${secret:NAME}` and `${env:NAME}` in values are resolved from the environment and the settings file
(`actorproxy.env` beside the file); dumps and errors show a secret as `••••` (`effective_config(conf)`).
"""

from ._accesslog import (
    ACCESS_LOG_FIELDS,
    DEFAULT_ACCESS_LOG_BUFFER,
    DEFAULT_REQUEST_ID_HEADER,
    REQUEST_ID_PATTERN,
    AccessLogConf,
    template_fields,
)
from ._admin import DEFAULT_ADMIN_LISTEN, MIN_ADMIN_TOKEN_LENGTH, AdminConf, is_loopback
from ._checks import did_you_mean
from ._defaults import (
    DEFAULT_BASE_EJECTION_TIME,
    DEFAULT_COMPRESS_MIN_SIZE,
    DEFAULT_COMPRESSIBLE_TYPES,
    DEFAULT_COMPRESSION_LEVELS,
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
from ._env import ENV_PREFIX, ENV_SEPARATOR, key_for_variable, variable_for_key
from ._error import ConfigError, ConfigWarning, Problem
from ._explain import (
    Leaf,
    changed_paths,
    effective_config,
    explain_conf,
    find_settings,
    format_path,
    load_explained,
)
from ._limits import (
    KEY_SOURCES,
    ClientIpHeader,
    OnRedisError,
    RateLimitBackend,
    RateLimitConf,
    RateLimitTableConf,
    parse_key_source,
    parse_rate,
    parse_trusted_proxy,
)
from ._load import load_conf
from ._metrics import DEFAULT_METRICS_PATH, MetricsConf
from ._proxy import DEFAULT_LIMITS, Forwarding, HttpLimits, ProxySettings
from ._read import Loaded
from ._redis import RedisConf
from ._references import Reference
from ._schema import json_schema
from ._server import DEFAULT_PID_FILE, DEFAULT_UPGRADE_SOCK, PINGORA_RUNTIME_KEYS, ServerConf
from ._services import (
    CompressionConf,
    HeaderEditsConf,
    ListenerConf,
    RouteConf,
    ServiceConf,
    TlsConf,
)
from ._settings import DEFAULT_KEY_FILE, DEFAULT_SETTINGS_FILE, HooksConf, SettingsConf, SettingsPlace
from ._sites import CaConf, ParkConf, SiteConf, SitesServerConf
from ._store import (
    DEFAULT_STORE_BODY_GRACE_PERIOD,
    DEFAULT_STORE_BUSY_TIMEOUT,
    DEFAULT_STORE_CHUNK_SIZE,
    DEFAULT_STORE_MEMORY_MAX_SIZE,
    DEFAULT_STORE_SWEEP_INTERVAL,
    DEFAULT_STORE_WRITER_TIMEOUT,
    StoreBackendName,
    StoreConf,
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
    "ACCESS_LOG_FIELDS",
    "DEFAULT_ACCESS_LOG_BUFFER",
    "DEFAULT_ADMIN_LISTEN",
    "DEFAULT_BASE_EJECTION_TIME",
    "DEFAULT_COMPRESSIBLE_TYPES",
    "DEFAULT_COMPRESSION_LEVELS",
    "DEFAULT_COMPRESS_MIN_SIZE",
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
    "DEFAULT_KEY_FILE",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_EJECTION_PERCENT",
    "DEFAULT_MAX_EJECTION_TIME",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_METRICS_PATH",
    "DEFAULT_PID_FILE",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_REQUEST_HEADER_TIMEOUT",
    "DEFAULT_REQUEST_ID_HEADER",
    "DEFAULT_SETTINGS_FILE",
    "DEFAULT_STORE_BODY_GRACE_PERIOD",
    "DEFAULT_STORE_BUSY_TIMEOUT",
    "DEFAULT_STORE_CHUNK_SIZE",
    "DEFAULT_STORE_MEMORY_MAX_SIZE",
    "DEFAULT_STORE_SWEEP_INTERVAL",
    "DEFAULT_STORE_WRITER_TIMEOUT",
    "DEFAULT_TOTAL_CONNECTION_TIMEOUT",
    "DEFAULT_UPGRADE_SOCK",
    "DEFAULT_VIA_PSEUDONYM",
    "DEFAULT_WRITE_TIMEOUT",
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "KEY_SOURCES",
    "MIN_ADMIN_TOKEN_LENGTH",
    "PINGORA_RUNTIME_KEYS",
    "REQUEST_ID_PATTERN",
    "AccessLogConf",
    "AdminConf",
    "Algorithm",
    "CaConf",
    "ClientIpHeader",
    "CompressionConf",
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
    "HooksConf",
    "HttpHealthCheckConf",
    "HttpLimits",
    "Leaf",
    "ListenerConf",
    "Loaded",
    "MetricsConf",
    "OnRedisError",
    "ParkConf",
    "PassiveHealthConf",
    "Problem",
    "ProxySettings",
    "RateLimitBackend",
    "RateLimitConf",
    "RateLimitTableConf",
    "RedisConf",
    "Reference",
    "RouteConf",
    "ServerConf",
    "ServiceConf",
    "SettingsConf",
    "SettingsPlace",
    "SiteConf",
    "SitesServerConf",
    "StaticBackendConf",
    "StoreBackendName",
    "StoreConf",
    "TcpHealthCheckConf",
    "TlsConf",
    "UpstreamConf",
    "changed_paths",
    "did_you_mean",
    "effective_config",
    "explain_conf",
    "find_settings",
    "format_path",
    "is_loopback",
    "json_schema",
    "key_for_variable",
    "load_conf",
    "load_explained",
    "parse_key_source",
    "parse_rate",
    "parse_trusted_proxy",
    "template_fields",
    "variable_for_key",
]
