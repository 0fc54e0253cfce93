"""Every default of the server, its services, peers, load balancers and health checks, defined once.

The configuration records take their defaults from here, and so does the code that runs without a
configuration file (a service built in Python, a test): a default changed here changes everywhere.
"""

from __future__ import annotations

from typing import Final

__all__ = [
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
    "DEFAULT_MAX_EJECTION_PERCENT",
    "DEFAULT_MAX_EJECTION_TIME",
    "DEFAULT_MAX_RETRIES",
    "DEFAULT_POOL_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_REQUEST_BODY_TIMEOUT",
    "DEFAULT_REQUEST_HEADER_TIMEOUT",
    "DEFAULT_TOTAL_CONNECTION_TIMEOUT",
    "DEFAULT_VIA_PSEUDONYM",
    "DEFAULT_WRITE_TIMEOUT",
]

# -- the server ----------------------------------------------------------------------------------------------

# Pingora's EXIT_TIMEOUT (the grace period), and the runtime shutdown timeout it uses when unset.
DEFAULT_GRACE_PERIOD: Final = 300.0
DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT: Final = 5.0
# pingora-core's DEFAULT_MAX_RETRIES.
DEFAULT_MAX_RETRIES: Final = 16
# pingora-core's ServerConf default `upstream_keepalive_pool_size`: idle upstream connections kept in all.
DEFAULT_POOL_SIZE: Final = 128

# -- a proxy service's clients -------------------------------------------------------------------------------

# Pingora's downstream keep-alive idle timeout.
DEFAULT_KEEPALIVE_TIMEOUT: Final = 60.0
# nginx's client_header_timeout and client_body_timeout (Pingora has no downstream read timeouts): a client
# that trickles its request ties up a connection no longer than this.
DEFAULT_REQUEST_HEADER_TIMEOUT: Final = 60.0
DEFAULT_REQUEST_BODY_TIMEOUT: Final = 60.0
#: The name the proxy gives itself in Via (RFC 9110 §7.6.3).
DEFAULT_VIA_PSEUDONYM: Final = "actorproxy"

# -- upstream peers ------------------------------------------------------------------------------------------

# Pingora sets no upstream timeouts: a silent upstream would hold a request forever. nginx's defaults for
# proxy_connect_timeout and proxy_read_timeout / proxy_send_timeout are 60 s; a connect that takes more than
# 10 s on a proxy's network is a dead host, and 15 s leaves a TLS handshake 5 s more.
DEFAULT_CONNECTION_TIMEOUT: Final = 10.0
DEFAULT_TOTAL_CONNECTION_TIMEOUT: Final = 15.0
DEFAULT_READ_TIMEOUT: Final = 60.0
DEFAULT_WRITE_TIMEOUT: Final = 60.0

# -- response compression -----------------------------------------------------------------------------------

# Pingora's MIN_COMPRESS_LEN, and nginx's gzip_min_length: smaller bodies grow when compressed.
DEFAULT_COMPRESS_MIN_SIZE: Final = 20
#: Content types compressed by default: Pingora's list (a type naming "zip" is never compressed).
DEFAULT_COMPRESSIBLE_TYPES: Final = (
    "text/*",
    "application/*",
    "font/*",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "binary/octet-stream",
)
#: A route's levels when its `compression` section names none: nginx's gzip_comp_level (1), brotli quality 4
#: and zstd's own default (3). Measured (benchmarks/compression.py), each costs 2-13 ms of CPU per MiB for
#: a ratio within a few points of gzip 6, which costs 25-30 ms.
DEFAULT_COMPRESSION_LEVELS: Final = {"gzip": 1, "br": 4, "zstd": 3}

# -- load balancing ------------------------------------------------------------------------------------------

# Pingora's TcpHealthCheck and HttpHealthCheck peer templates: `connection_timeout = Some(1s)`,
# `read_timeout = Some(1s)`; one verdict flips the state.
DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT: Final = 1.0
DEFAULT_HEALTH_CHECK_READ_TIMEOUT: Final = 1.0
# Pingora's examples probe every second.
DEFAULT_HEALTH_CHECK_FREQUENCY: Final = 1.0
# Envoy's outlier detection defaults: consecutive_5xx 5, base_ejection_time 30 s, max_ejection_time 300 s,
# max_ejection_percent 10 (at least one host).
DEFAULT_CONSECUTIVE_FAILURES: Final = 5
DEFAULT_BASE_EJECTION_TIME: Final = 30.0
DEFAULT_MAX_EJECTION_TIME: Final = 300.0
DEFAULT_MAX_EJECTION_PERCENT: Final = 10.0
#: Seconds one query may take, retries included: dnspython's default resolution lifetime.
DEFAULT_DNS_QUERY_TIMEOUT: Final = 5.0
#: The shortest time an answer is cached. A TTL of 0 (RFC 1035: "do not cache") would make every `discover`
#: a query; one second bounds the load on the DNS server if `discover` is called in a tight loop, and is
#: below any `update_frequency` worth running.
DEFAULT_DNS_MIN_TTL: Final = 1.0
#: The longest time an answer is cached. Zones often give day-long TTLs to records that do change; five
#: minutes bounds how long a load balancer keeps sending traffic to a backend removed from DNS, at the cost
#: of one query per five minutes.
DEFAULT_DNS_MAX_TTL: Final = 300.0
