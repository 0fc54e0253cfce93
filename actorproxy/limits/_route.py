"""`RouteLimiter`: a route's `rate_limit` on the request path, and the answer to a request over it.

Rules:
- A request is checked once, before it goes upstream: its key (`KeyFunction`), then the in-flight limit
  (counted on this server, over all its workers), then the rate (the local table, or Redis). A request the
  rate refuses does not stay counted in flight; a request the in-flight limit refuses costs no rate.
- An admitted request with an in-flight limit holds a `Guard` tied to it (`session.enter_context`): it is
  released when the request ends, however it ends; and the proxy watches its client
  (`session.set_abort_on_close`), so a client that closes while the upstream is slow frees its place.
- A refused request is answered with the limit's status, `Retry-After` (whole seconds, at least 1),
  `RateLimit-Policy` and `RateLimit` as draft-ietf-httpapi-ratelimit-headers-09 writes them (a String
  policy name, `q` and `w` for the quota, `r` and `t` for what is left), and a short text body. The policy
  of the rate is named "rate" (`q` = the rate's count, `w` = its period in seconds); the policy of the
  in-flight limit is named "inflight" (`q` = the limit, no window).
- While Redis fails, the route's `on_redis_error` decides: `allow` admits (counted in `redis_allowed`),
  `deny` answers the status with `Retry-After: 1` (counted in `redis_denied`).
- Counters are plain integers of this process (one trio thread); `statistics()` reads them as one record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import attrs

from actorproxy.config import OnRedisError
from actorproxy.proxy import Session

from ._gcra import Decision, Quota
from ._inflight import Guard
from ._inflight_table import InflightTable
from ._keys import KeyFunction
from ._redis import RedisRateLimiter
from ._table import GcraTable

__all__ = ["LimitStatistics", "RouteLimiter", "rate_limit_headers"]

#: The body of the answer to a request over its limit.
LIMITED_BODY = "rate limit exceeded\n"


@attrs.frozen
class LimitStatistics:
    """What one route's limiter decided, in this process.

    Attributes:
        label: the route the limiter belongs to (`<service>.routes[<index>]`).
        allowed: requests admitted.
        limited: requests refused by the rate.
        limited_inflight: requests refused by the in-flight limit.
        redis_allowed: requests admitted while Redis failed (`on_redis_error: allow`).
        redis_denied: requests refused while Redis failed (`on_redis_error: deny`).
    """

    label: str
    allowed: int
    limited: int
    limited_inflight: int
    redis_allowed: int
    redis_denied: int


@attrs.define
class _Counters:
    allowed: int = 0
    limited: int = 0
    limited_inflight: int = 0
    redis_allowed: int = 0
    redis_denied: int = 0


def rate_limit_headers(
    policy: str, quota: int, window: float | None, remaining: int, reset_after: float
) -> list[tuple[str, str]]:
    """`RateLimit-Policy` and `RateLimit` fields (draft-ietf-httpapi-ratelimit-headers-09).

    Args:
        policy: the policy's name.
        quota: the quota (`q`).
        window: its window in seconds (`w`); None leaves it out.
        remaining: what is left of it (`r`).
        reset_after: seconds until it is whole again (`t`, rounded up).
    """
    window_part = "" if window is None else f";w={math.ceil(window)}"
    return [
        ("RateLimit-Policy", f'"{policy}";q={quota}{window_part}'),
        ("RateLimit", f'"{policy}";r={max(0, remaining)};t={max(0, math.ceil(reset_after))}'),
    ]


class RouteLimiter:
    """One route's limits, bound to where they are counted.

    Args:
        label: the route's name in logs and statistics, and the start of its keys.
        key: builds a request's key.
        quota: the rate and burst; None: no rate limit.
        inflight: the most requests of one key in progress; None: no such limit.
        status: the status of a refusal.
        table: where a local rate is counted (required with a quota and no `redis`).
        inflight_table: where requests in progress are counted (required with `inflight`).
        redis: count the rate in Redis instead of `table`.
        on_redis_error: what a request gets while Redis fails.
        clock: the table's clock: `time.monotonic`, one clock for every process of the machine.
    """

    def __init__(
        self,
        label: str,
        key: KeyFunction,
        *,
        quota: Quota | None = None,
        inflight: int | None = None,
        status: int = 429,
        table: GcraTable | None = None,
        inflight_table: InflightTable | None = None,
        redis: RedisRateLimiter | None = None,
        on_redis_error: OnRedisError = "allow",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if quota is not None and redis is None and table is None:
            raise ValueError(f"{label}: a local rate needs a table")
        if inflight is not None and inflight_table is None:
            raise ValueError(f"{label}: an in-flight limit needs an inflight table")
        self.label = label
        self.key = key
        self.quota = quota
        self.inflight = inflight
        self.status = status
        self.table = table
        self.inflight_table = inflight_table
        self.redis = redis
        self.on_redis_error = on_redis_error
        self.clock = clock
        self._counters = _Counters()
        # The quota is part of every key: a limit changed by a reload starts afresh, not from the old state.
        self._rate_prefix = f"{quota}\x1f" if quota is not None else ""

    def __repr__(self) -> str:
        where = "redis" if self.redis is not None else "local"
        return f"<RouteLimiter {self.label} rate={self.quota} inflight={self.inflight} {where}>"

    def statistics(self) -> LimitStatistics:
        """The route's counts so far, in this process."""
        c = self._counters
        return LimitStatistics(
            self.label, c.allowed, c.limited, c.limited_inflight, c.redis_allowed, c.redis_denied
        )

    async def admit(self, session: Session) -> bool:
        """Check `session`'s request; answer it if refused.

        Returns:
            True when the request may go on (its in-flight guard, if any, tied to it); False when it was
            answered.
        """
        counters = self._counters
        key = self.key(session.client_addr, session.req_header)
        guard: Guard | None = None
        if self.inflight is not None:
            assert self.inflight_table is not None  # checked at construction
            guard = self.inflight_table.incr(key)
            if guard.count > self.inflight:
                guard.release()
                counters.limited_inflight += 1
                headers = rate_limit_headers("inflight", self.inflight, None, 0, 1.0)
                await self._refuse(session, 1.0, headers)
                return False
        quota = self.quota
        if quota is not None:
            if self.redis is None:
                # The local table's check is synchronous: no coroutine for it; an admitted request needs
                # no figures (`admit`), a refused one gets them from `check` (which records nothing then).
                table = self.table
                assert table is not None  # checked at construction
                rate_key = self._rate_prefix + key
                now = self.clock()
                if not table.admit(rate_key, quota, now):
                    counters.limited += 1
                    refused = table.check(rate_key, quota, now)  # the figures; a refusal records nothing
                    await self._refuse_rate(session, guard, quota, refused._replace(allowed=False))
                    return False
            else:  # in Redis
                decision = await self._check(key, quota)
                if decision is None or not decision.allowed:
                    await self._refuse_rate(session, guard, quota, decision)
                    return False
        if guard is not None:
            session.enter_context(guard)
            # A client that gives up must not keep its place in flight until the upstream answers.
            session.set_abort_on_close(True)
        counters.allowed += 1
        return True

    async def _refuse_rate(
        self, session: Session, guard: Guard | None, quota: Quota, decision: Decision | None
    ) -> None:
        """Answer a request the rate refused (`decision` None: Redis failed and the policy refuses)."""
        if guard is not None:
            guard.release()
        retry_after = 1.0 if decision is None else decision.retry_after
        headers = [] if decision is None else self._headers(quota, decision)
        await self._refuse(session, retry_after, headers)

    async def _check(self, key: str, quota: Quota) -> Decision | None:
        """The rate's decision in Redis; None when Redis failed and `on_redis_error` refuses."""
        counters = self._counters
        redis = self.redis
        assert redis is not None  # local rates are checked in `admit`
        decision = await redis.check(self._rate_prefix + key, quota)
        if decision is None:
            if self.on_redis_error == "allow":
                counters.redis_allowed += 1
                return Decision(True, quota.burst, 0, 0.0, 0.0)
            counters.redis_denied += 1
            return None
        if not decision.allowed:
            counters.limited += 1
        return decision

    @staticmethod
    def _headers(quota: Quota, decision: Decision) -> list[tuple[str, str]]:
        return rate_limit_headers("rate", quota.count, quota.period, decision.remaining, decision.reset_after)

    async def _refuse(self, session: Session, retry_after: float, headers: list[tuple[str, str]]) -> None:
        retry = ("Retry-After", str(max(1, math.ceil(retry_after))))
        await session.respond_text(self.status, LIMITED_BODY, [retry, *headers])
