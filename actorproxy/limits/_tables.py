"""`LimitTables`: where one server counts its routes' limits, built from its configuration.

Rules:
- Built once per server, in the process that forks the workers and before it forks: the GCRA table (in
  the file `rate_limit_table.path`, default `<upgrade_sock>.limits`) when a route has a local rate, the
  in-flight table (anonymous shared memory, one sketch per worker) when a route has an in-flight limit,
  and a `RedisRateLimiter` when the file has a `redis:` section. A server whose routes set no limit opens
  nothing.
- A reload builds new `RouteLimiter`s on the same tables. A table a reload needs that was not built at
  start is built then: the GCRA table, being a file, is still shared by the workers; an in-flight table
  built after the fork counts per worker until the next restart (a warning says so).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from actorproxy.config import ConfigError, Problem, RateLimitConf, ServerConf, ServiceConf

from ._gcra import Quota
from ._inflight_table import InflightTable
from ._keys import KeyFunction
from ._redis import RedisRateLimiter
from ._route import RouteLimiter
from ._table import GcraTable

__all__ = ["LimitTables"]

logger = logging.getLogger("actorproxy.limits")

#: Added to `upgrade_sock` to name the GCRA table's file when `rate_limit_table.path` is not set.
TABLE_SUFFIX = ".limits"


def _limits(conf: ServerConf) -> list[RateLimitConf]:
    return [route.rate_limit for s in conf.services for route in s.routes if route.rate_limit is not None]


class LimitTables:
    """The GCRA table, the in-flight table and the Redis limiter of one server (each None until needed).

    Args:
        conf: the server's configuration.
        worker: which worker process the caller is (`Server.worker`), read when counting.
    """

    def __init__(self, conf: ServerConf, worker: Callable[[], int | None] = lambda: None) -> None:
        self.conf = conf
        self.worker = worker
        self._pid = os.getpid()
        self.table: GcraTable | None = None
        self.inflight: InflightTable | None = None
        self.redis = RedisRateLimiter(conf.redis) if conf.redis is not None else None
        limits = _limits(conf)
        if any(limit.rate is not None and limit.backend == "local" for limit in limits):
            self.table = self._open_table(conf)
        if any(limit.inflight is not None for limit in limits):
            self.inflight = InflightTable(conf.threads, worker)

    def __repr__(self) -> str:
        return f"<LimitTables table={self.table} inflight={self.inflight} redis={self.redis}>"

    @staticmethod
    def _open_table(conf: ServerConf) -> GcraTable:
        settings = conf.rate_limit_table
        path = settings.path or conf.upgrade_sock + TABLE_SUFFIX
        try:
            table = GcraTable.open(path, settings.slots)
        except OSError as exc:
            key = "rate_limit_table.path" if settings.path else "upgrade_sock"
            reason = f"cannot open the rate-limit table {path}: {exc.strerror or exc}"
            raise ConfigError([Problem(key, reason)]) from exc
        table.locking = conf.threads > 1  # one process: no one else writes it (see GcraTable's rules)
        return table

    def route_limiter(self, label: str, limit: RateLimitConf, service: ServiceConf) -> RouteLimiter:
        """The limiter of a route of `service` whose `rate_limit` is `limit`; `label` names it.

        Raises:
            ConfigError: the table cannot be opened; or `backend: redis` without a `redis:` section.
        """
        key = KeyFunction(
            limit.key,
            label,
            trusted_proxies=service.trusted_proxies,
            client_ip_header=service.client_ip_header,
        )
        quota = Quota.parse(limit.rate, limit.burst) if limit.rate is not None else None
        redis = None
        if quota is not None and limit.backend == "redis":
            if self.redis is None:
                raise ConfigError([Problem(f"{label}.rate_limit.backend", "redis needs the redis section")])
            redis = self.redis
        elif quota is not None and self.table is None:
            self.table = self._open_table(self.conf)
        if limit.inflight is not None and self.inflight is None:
            if os.getpid() != self._pid:
                logger.warning(
                    "%s: the in-flight limit was added by a reload: each worker counts on its own until"
                    " the next restart",
                    label,
                )
            self.inflight = InflightTable(self.conf.threads, self.worker)
        return RouteLimiter(
            label,
            key,
            quota=quota,
            inflight=limit.inflight,
            status=limit.status,
            table=self.table,
            inflight_table=self.inflight,
            redis=redis,
            on_redis_error=limit.on_redis_error,
        )
