"""Rate limiting: Pingora's estimators for code, and the limits a route declares in the file.

For code, as in Pingora (`pingora_limits`):

    RATE = Rate(1.0)                                   # one-second windows
    if RATE.observe(appid, 1) > MAX_PER_SECOND: ...    # this window's count so far
    INFLIGHT = Inflight()
    guard = session.enter_context(INFLIGHT.incr(appid))   # released when the request ends
    if guard.count > MAX_IN_FLIGHT: ...

`Estimator` is the count-min sketch under both: fixed memory whatever the number of keys.

Declared (`rate_limit:` on a route): GCRA (`Quota`, `gcra`) in a `GcraTable` shared by the server's workers
through a file, or in Redis (`RedisRateLimiter`); requests in progress in an `InflightTable`; a
`RouteLimiter` per route, built by `LimitTables`; keys by `KeyFunction`. See docs/rate-limiting.md.
"""

from ._estimator import Estimator
from ._gcra import Decision, Quota, gcra
from ._inflight import Guard, Inflight
from ._inflight_table import InflightTable
from ._keys import KeyFunction, client_ip, forwarded_for
from ._rate import PROPORTIONAL_RATE_ESTIMATE_CALC_FN, Rate, RateComponents
from ._redis import GCRA_SCRIPT, RedisRateLimiter, RedisStatistics
from ._route import LIMITED_BODY, LimitStatistics, RouteLimiter, rate_limit_headers
from ._table import GcraTable
from ._tables import LimitTables

__all__ = [
    "GCRA_SCRIPT",
    "LIMITED_BODY",
    "PROPORTIONAL_RATE_ESTIMATE_CALC_FN",
    "Decision",
    "Estimator",
    "GcraTable",
    "Guard",
    "Inflight",
    "InflightTable",
    "KeyFunction",
    "LimitStatistics",
    "LimitTables",
    "Quota",
    "Rate",
    "RateComponents",
    "RedisRateLimiter",
    "RedisStatistics",
    "RouteLimiter",
    "client_ip",
    "forwarded_for",
    "gcra",
    "rate_limit_headers",
]
