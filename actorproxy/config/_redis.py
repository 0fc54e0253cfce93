"""`RedisConf`: the one Redis server (or cluster entry point) the features that share state across machines
use: the rate limiter's `backend: redis` and the store's `redis` backend.

One section, so a deployment names its Redis once; each feature is handed this record, never the whole file.
"""

from __future__ import annotations

import attrs

from ._checks import at_least, doc, parsed_by
from ._rules import POSITIVE

__all__ = ["RedisConf"]

# redis-py's and coredis's default pool bound is far higher; a proxy process needs few connections.
DEFAULT_REDIS_MAX_CONNECTIONS = 16
# A call that takes longer than this is treated as Redis being unavailable (the caller's policy decides).
DEFAULT_REDIS_TIMEOUT = 0.25
DEFAULT_REDIS_CONNECT_TIMEOUT = 1.0


def _redis_url(value: str) -> None:
    if not value.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"expected a redis://, rediss:// or unix:// URL, got {value!r}")


@attrs.frozen(kw_only=True)
class RedisConf:
    """Where Redis is and how long a call to it may take."""

    url: str = attrs.field(
        default="redis://127.0.0.1:6379/0",
        validator=parsed_by(_redis_url, "a redis:// URL"),
        metadata=doc("redis://[user:password@]host:port/db, rediss:// for TLS, or unix:///path?db=N."),
    )
    timeout: float = attrs.field(
        default=DEFAULT_REDIS_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds one command may take before it counts as a Redis failure."),
    )
    connect_timeout: float = attrs.field(
        default=DEFAULT_REDIS_CONNECT_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds to open a connection to Redis."),
    )
    max_connections: int = attrs.field(
        default=DEFAULT_REDIS_MAX_CONNECTIONS,
        validator=at_least(1),
        metadata=doc("Connections each process keeps to Redis at most."),
    )
    key_prefix: str = attrs.field(
        default="actorproxy:",
        metadata=doc("Prefix of every key actorproxy writes, so several deployments can share a server."),
    )


attrs.resolve_types(RedisConf)
