"""`RedisRateLimiter`: GCRA counted in Redis, shared by every proxy that uses the same server.

Rules:
- One Lua script per check (`GCRA_SCRIPT`): Redis runs it atomically, reading its own clock (`TIME`), so
  proxies on machines whose clocks differ still agree, and no two checks interleave. The key holds the TAT
  in microseconds and expires when the key has its whole burst again.
- The client (coredis, on trio through anyio) belongs to this object, run as a background service: its
  connection pool lives while the service does. Checks are direct calls from the request path, never
  messages. Connections are opened on demand, so a Redis that is down at start, or restarts, is used again
  as soon as it answers.
- Checks made while others are on their way travel together: one pipeline (one round trip, one write) per
  batch. A check that finds no batch open opens one and leads it: it waits for one of
  `redis.max_connections` sending slots, closes the batch, sends it and hands each check its reply; the
  checks that joined meanwhile only wait. A quiet proxy thus sends each check at once, alone, and a busy
  one sends many per round trip (a check costs the proxy about 20 µs of CPU in a batch of 50, against
  about 200 µs alone; `benchmarks/limits.py`). The leader's work is shielded from its own cancellation and
  bounded by `redis.timeout`: a client that goes away never strands the checks that joined its batch.
- A script Redis no longer knows (a restart, `SCRIPT FLUSH`) is loaded again and the batch sent once more.
- A check that fails (an error, or no answer within `redis.timeout`) returns None, and the caller applies
  its `on_redis_error`. After a failure the next checks return None at once, without calling Redis, for
  `retry_interval` seconds (so a Redis that hangs costs one timeout per interval, not one per request);
  then one check tries again. While failing, a warning is logged at most once per `log_interval` seconds,
  with the count of failed checks; one line says when Redis answers again.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import attrs
import coredis
import trio
from coredis.retry import NoRetryPolicy

from actorproxy.config import RedisConf
from supervisors import BackgroundService, ServiceReadyNotifier, ShutdownWatch

from ._gcra import Decision, Quota

__all__ = ["GCRA_SCRIPT", "RedisRateLimiter", "RedisStatistics"]

logger = logging.getLogger("actorproxy.limits")

# How long after a failed call the limiter answers None without trying Redis again.
DEFAULT_RETRY_INTERVAL = 1.0
# At most one warning per this many seconds while Redis fails.
DEFAULT_LOG_INTERVAL = 10.0
_MICROS = 1_000_000

#: GCRA in Redis. KEYS[1]: the key; ARGV: interval and tolerance in microseconds, cost. Returns
#: {admitted 0/1, remaining, retry after us, reset after us}. Lua numbers are doubles: microsecond
#: timestamps (about 2^51) are exact.
GCRA_SCRIPT = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tolerance = tonumber(ARGV[2])
local cost = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now or tat > now + tolerance then
  tat = now
end
local new_tat = tat + cost * interval
local allow_at = new_tat - tolerance
if allow_at > now then
  return {0, math.floor((tolerance - (tat - now)) / interval), allow_at - now, tat - now}
end
redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0, new_tat - now}
"""


class _Batch:
    """Checks sent in one pipeline: their arguments, then their replies (or the error) once `done`."""

    __slots__ = ("args", "done", "error", "keys", "replies")

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.args: list[tuple[float, float, int]] = []
        self.replies: list[Any] = []
        self.error: BaseException | None = None
        self.done = trio.Event()


@attrs.frozen
class RedisStatistics:
    """What a `RedisRateLimiter` has done.

    Attributes:
        checks: checks Redis answered.
        errors: checks that failed (an error or a timeout).
        skipped: checks not sent, in the `retry_interval` after a failure.
        degraded: the last check failed (and Redis has not answered since).
        batches: pipelines sent (each carrying one check or more).
    """

    checks: int
    errors: int
    skipped: int
    degraded: bool
    batches: int = 0


class RedisRateLimiter(BackgroundService):
    """Rate limits counted in Redis; run it as a background service (`background_service(name, it)`).

    Args:
        conf: the `redis:` section.
        retry_interval: seconds after a failure during which checks return None without calling Redis.
        log_interval: seconds between two warnings while Redis fails.
    """

    def __init__(
        self,
        conf: RedisConf,
        *,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        log_interval: float = DEFAULT_LOG_INTERVAL,
    ) -> None:
        self.conf = conf
        self.retry_interval = retry_interval
        self.log_interval = log_interval
        self._client: coredis.Redis[bytes] | None = None
        self._script: coredis.commands.Script[bytes] | None = None
        #: The batch checks join until its leader sends it.
        self._open: _Batch | None = None
        self._slots = trio.Semaphore(conf.max_connections)
        self._checks = 0
        self._batches = 0
        self._errors = 0
        self._skipped = 0
        self._failing_since: float | None = None
        self._retry_at = -math.inf
        self._last_log = -math.inf
        self._unlogged = 0

    def __repr__(self) -> str:
        state = "running" if self._client is not None else "stopped"
        return f"<RedisRateLimiter {self.conf.url} {state}>"

    def statistics(self) -> RedisStatistics:
        """Counts of checks, failures and skipped checks (this process)."""
        degraded = self._failing_since is not None
        return RedisStatistics(self._checks, self._errors, self._skipped, degraded, self._batches)

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        """Own the client until the service stops; ready at once (no connection is opened yet)."""
        conf = self.conf
        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            conf.url,
            stream_timeout=conf.timeout,
            connect_timeout=conf.connect_timeout,
            max_connections=conf.max_connections,
            retry_policy=NoRetryPolicy(),
        )
        async with client:
            self._client = client
            self._script = client.register_script(GCRA_SCRIPT)
            try:
                ready_notifier.notify_ready()
                await shutdown.wait()
            finally:
                self._client = self._script = None

    async def check(self, key: str, quota: Quota, cost: int = 1) -> Decision | None:
        """Decide a request of `cost` units for `key` under `quota` in Redis, recording it if admitted.

        Returns:
            The decision, or None when Redis did not answer (see the module rules).
        """
        script = self._script
        now = trio.current_time()
        if script is None or now < self._retry_at:
            self._skipped += 1
            self._note_failure(now, None)
            return None
        batch = self._open
        leader = batch is None
        if batch is None:
            batch = self._open = _Batch()
        index = len(batch.keys)
        batch.keys.append(self.conf.key_prefix + "rl:" + key)
        batch.args.append((quota.interval * _MICROS, quota.tolerance * _MICROS, cost))
        if leader:
            await self._send(batch, script)
        else:
            await batch.done.wait()
        error = batch.error
        reply = batch.replies[index] if error is None else None
        if reply is None:
            self._errors += 1
            self._retry_at = trio.current_time() + self.retry_interval
            self._note_failure(now, error or TimeoutError("no reply"))
            return None
        self._checks += 1
        if self._failing_since is not None:
            logger.warning(
                "redis %s answers again, after %.1f s and %d checks decided by on_redis_error",
                self.conf.url,
                now - self._failing_since,
                self._unlogged,
            )
            self._failing_since = None
            self._unlogged = 0
        admitted, remaining, retry_after, reset_after = (int(value) for value in reply)
        return Decision(
            bool(admitted), quota.burst, max(0, remaining), retry_after / _MICROS, reset_after / _MICROS
        )

    async def _send(self, batch: _Batch, script: coredis.commands.Script[bytes]) -> None:
        """Send `batch` once a slot is free, and record its replies or its error; always sets `done`."""
        timeout = self.conf.timeout
        try:
            with trio.CancelScope(shield=True, deadline=trio.current_time() + timeout):
                try:
                    async with self._slots:
                        if self._open is batch:
                            self._open = None  # later checks open the next batch
                        self._batches += 1
                        batch.replies = await self._pipeline(batch, script)
                except (coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
                    batch.error = exc
        finally:
            if batch.error is None and len(batch.replies) != len(batch.keys):
                batch.error = TimeoutError(f"no answer within {timeout:g} s")
            if self._open is batch:
                self._open = None
            batch.done.set()

    async def _pipeline(self, batch: _Batch, script: coredis.commands.Script[bytes]) -> list[Any]:
        """The replies of `batch`'s checks, in one round trip (two if the script must be loaded first)."""
        client = self._client
        assert client is not None  # the script is only set while the client is
        try:
            return await self._evalsha(client, script.sha, batch)
        except coredis.exceptions.NoScriptError:
            await client.script_load(GCRA_SCRIPT)
            return await self._evalsha(client, script.sha, batch)

    @staticmethod
    async def _evalsha(client: coredis.Redis[bytes], sha: str | bytes, batch: _Batch) -> list[Any]:
        async with client.pipeline(transaction=False) as pipe:
            pairs = zip(batch.keys, batch.args, strict=True)
            replies = [pipe.evalsha(sha, keys=[key], args=args) for key, args in pairs]
        return [await reply for reply in replies]

    def _note_failure(self, now: float, error: BaseException | None) -> None:
        if error is None and self._failing_since is None:
            return  # not running yet: nothing failed
        if self._failing_since is None:
            self._failing_since = now
        self._unlogged += 1
        if now - self._last_log >= self.log_interval:
            self._last_log = now
            logger.warning(
                "redis %s unavailable (%s); %d checks decided by on_redis_error since the last report",
                self.conf.url,
                error if error is not None else "waiting to retry",
                self._unlogged,
            )
            self._unlogged = 0
