"""`RedisBackend`: the store on the Redis server of the top-level `redis:` section, through coredis.

Rules:
- coredis (6.x) runs on trio through anyio. Its client must be used inside `async with client`, which
  holds coredis's own connection-pool task group: `opened()` enters it, so the task that opens the backend
  (the store's background service, or `async with store`) keeps it for every other task that uses it.
- Keys: `<key_prefix>store:k:<key>` for entries, `<key_prefix>store:b:<id>` for a body's chunks (a
  list). An entry is a string: a value's tagged bytes (`_codec`), or for a body `B`, the body's id (32 hex
  digits), then `size chunk_size` and a newline, then the meta bytes.
- Every change that touches more than one key is one Lua script, so it is atomic on the server: a commit
  checks that the body's list is whole, points the entry at it and gives the body it replaces
  `body_grace_period` more seconds; `forget`, `pull` and `flush` do the same for the body they remove.
  A body being written expires `writer_timeout` after its last write, so a killed writer leaves nothing.
- Expiry is Redis's own (milliseconds); there is nothing to sweep. The caps are Redis's `maxmemory` and
  its eviction policy, not ours (a body's list may then be evicted before its entry: a reader meets
  `BodyGone`, and the entry is dropped when opened).
- Only a standalone server (or one node's URL) is supported: the scripts touch keys they compute.
- coredis's exceptions are translated here: connection failures and timeouts are `StoreUnavailable`,
  other server errors `StoreError`, both with the cause.
"""

from __future__ import annotations

import math
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import coredis
import coredis.exceptions
import trio

from actorproxy.config import RedisConf

from ._backend import BackendStatistics, BodyHead, WriteStop, wait_for_stop
from ._body import ABORT_TIMEOUT
from ._errors import (
    BodyGone,
    EntryKindError,
    EntryTooLarge,
    NotAnInteger,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WriterAbandoned,
)

__all__ = ["RedisBackend"]

T = TypeVar("T")

_BODY_TAG = b"B"
_ID_LENGTH = 32
# Keys one SCAN step asks for while flushing.
_SCAN_COUNT = 500

# KEYS[1]: entry; ARGV[1]: the body key prefix, ARGV[2]: grace (ms). Removes the entry, giving its body the
# grace period; returns the entry's old string (false when there was none).
_FORGET = """
local old = redis.call('GET', KEYS[1])
if not old then return false end
if string.sub(old, 1, 1) == 'B' then
    redis.call('PEXPIRE', ARGV[1] .. string.sub(old, 2, 33), ARGV[2])
end
redis.call('DEL', KEYS[1])
return old
"""
# As _FORGET, but a body is not removed: pull() answers values only.
_PULL = """
local old = redis.call('GET', KEYS[1])
if not old then return false end
if string.sub(old, 1, 1) == 'B' then return redis.error_reply('BODY') end
redis.call('DEL', KEYS[1])
return old
"""
# KEYS[1]: entry; ARGV[1]: by. The tagged-JSON integer, incremented, keeping the key's expiry.
_INCREMENT = """
local old = redis.call('GET', KEYS[1])
local n = 0
if old then
    local tag = string.sub(old, 1, 1)
    if tag == 'B' then return redis.error_reply('BODY') end
    local text = string.sub(old, 2)
    if tag ~= 'j' or not string.match(text, '^%-?%d+$') then return redis.error_reply('NOTINT') end
    n = tonumber(text)
end
n = n + tonumber(ARGV[1])
redis.call('SET', KEYS[1], 'j' .. string.format('%d', n), 'KEEPTTL')
return n
"""
# KEYS[1..n]: entries; ARGV[1]: ttl (ms, 0: none); ARGV[2..n+1]: values; ARGV[n+2]: body prefix,
# ARGV[n+3]: grace (ms).
_PUT_MANY = """
local n = #KEYS
for i = 1, n do
    local old = redis.call('GET', KEYS[i])
    if old and string.sub(old, 1, 1) == 'B' then
        redis.call('PEXPIRE', ARGV[n + 2] .. string.sub(old, 2, 33), ARGV[n + 3])
    end
    if ARGV[1] == '0' then
        redis.call('SET', KEYS[i], ARGV[i + 1])
    else
        redis.call('SET', KEYS[i], ARGV[i + 1], 'PX', ARGV[1])
    end
end
return n
"""
# KEYS[1]: body list; ARGV[1]: chunk, ARGV[2]: writer timeout (ms). Appends; returns the new length.
_WRITE_CHUNK = """
local n = redis.call('RPUSH', KEYS[1], ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return n
"""
# KEYS[1]: entry, KEYS[2]: body list; ARGV[1]: chunks written, ARGV[2]: entry string, ARGV[3]: ttl (ms, 0:
# none), ARGV[4]: body prefix, ARGV[5]: grace (ms).
_COMMIT = """
if redis.call('LLEN', KEYS[2]) ~= tonumber(ARGV[1]) then return redis.error_reply('ABANDONED') end
local old = redis.call('GET', KEYS[1])
if old and string.sub(old, 1, 1) == 'B' then
    redis.call('PEXPIRE', ARGV[4] .. string.sub(old, 2, 33), ARGV[5])
end
if ARGV[3] == '0' then
    redis.call('SET', KEYS[1], ARGV[2])
    redis.call('PERSIST', KEYS[2])
else
    redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
    redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) + tonumber(ARGV[5]))
end
return 1
"""


_SCRIPTS = {
    "forget": _FORGET,
    "pull": _PULL,
    "increment": _INCREMENT,
    "put_many": _PUT_MANY,
    "write_chunk": _WRITE_CHUNK,
    "commit": _COMMIT,
}


def _ms(seconds: float) -> int:
    # Redis refuses 0 as an expiry; the front never passes a ttl <= 0.
    return max(1, math.ceil(seconds * 1000))


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


class RedisBackend:
    """A store on Redis.

    Args:
        conf: the top-level `redis:` section (URL, timeouts, pool bound, key prefix).
        chunk_size: bytes per body list item.
        body_grace_period: seconds a replaced or forgotten body stays readable.
        writer_timeout: seconds without a write after which a body being written expires.
        max_body_size: bodies larger than this are refused while written; None: no cap.
    """

    name = "redis"

    def __init__(
        self,
        conf: RedisConf,
        *,
        chunk_size: int = 64 * 1024,
        body_grace_period: float = 60.0,
        writer_timeout: float = 600.0,
        max_body_size: int | None = None,
    ) -> None:
        self.conf = conf
        self.chunk_size = chunk_size
        self.body_grace_period = body_grace_period
        self.writer_timeout = writer_timeout
        self.max_body_size = max_body_size
        self.namespace = f"{conf.key_prefix}store:"
        self.entry_prefix = self.namespace + "k:"
        self.body_prefix = self.namespace + "b:"
        self._client: coredis.Redis[bytes] | None = None
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisBackend {self.conf.url} {self.namespace!r}>"

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        if self._client is not None:
            raise StoreError(f"{self.conf.url}: already open")
        conf = self.conf
        client: coredis.Redis[bytes] = coredis.Redis.from_url(
            conf.url,
            stream_timeout=conf.timeout,
            connect_timeout=conf.connect_timeout,
            max_connections=conf.max_connections,
        )
        raised: list[BaseException] = []
        try:
            async with client:
                self._client = client
                self._scripts = {name: client.register_script(source) for name, source in _SCRIPTS.items()}
                try:
                    yield
                except BaseException as exc:
                    raised.append(exc)
                    raise
                finally:
                    self._client = None
        except BaseExceptionGroup as group:
            # coredis's task group wraps what the block raised: give it back as it was raised.
            _, rest = group.split(lambda exc: any(exc is mine for mine in raised))
            if rest is None and raised:
                raise raised[0]  # noqa: B904  # the block's own exception, with its own cause
            raise _translated(group, conf.url) from group
        except (coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
            if any(exc is mine for mine in raised):
                raise
            raise _translated(exc, conf.url) from exc

    def _k(self, key: str) -> str:
        return self.entry_prefix + key

    async def _call(self, request: Awaitable[T]) -> T:
        try:
            return await request
        except coredis.exceptions.ResponseError as exc:
            raise _script_error(exc) from exc
        except (coredis.exceptions.RedisError, OSError, TimeoutError) as exc:
            raise _translated(exc, self.conf.url) from exc

    @property
    def client(self) -> coredis.Redis[bytes]:
        client = self._client
        if client is None:
            raise StoreClosed(f"{self.conf.url}: the store is not open")
        return client

    async def _script(self, name: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        client = self.client
        return await self._call(self._scripts[name](keys=list(keys), args=list(args), client=client))

    # -- values ----------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        return _value(key, await self._call(self.client.get(self._k(key))))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        found = await self._call(self.client.mget([self._k(key) for key in keys]))
        return [_value(key, raw) for key, raw in zip(keys, found, strict=True)]

    async def put(self, key: str, value: bytes, ttl: float | None) -> None:
        await self.put_many([(key, value)], ttl)

    async def put_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> None:
        if not items:
            return
        keys = [self._k(key) for key, _ in items]
        args = [0 if ttl is None else _ms(ttl), *(value for _, value in items)]
        await self._script("put_many", keys, [*args, self.body_prefix, _ms(self.body_grace_period)])

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        request = self.client.set(
            self._k(key),
            value,
            condition=coredis.PureToken.NX,
            px=None if ttl is None else _ms(ttl),
        )
        return bool(await self._call(request))

    async def has(self, key: str) -> bool:
        return bool(await self._call(self.client.exists([self._k(key)])))

    async def forget(self, key: str) -> bool:
        old = await self._script("forget", [self._k(key)], [self.body_prefix, _ms(self.body_grace_period)])
        return old is not None

    async def pull(self, key: str) -> bytes | None:
        try:
            raw = await self._script("pull", [self._k(key)], [])
        except EntryKindError:
            raise EntryKindError(f"{key!r} holds a streamed body; read it with open_reader") from None
        return None if raw is None else bytes(raw)

    async def increment(self, key: str, by: int) -> int:
        try:
            return int(await self._script("increment", [self._k(key)], [by]))
        except NotAnInteger:
            raise NotAnInteger(f"{key!r} does not hold an integer") from None
        except EntryKindError:
            raise EntryKindError(f"{key!r} holds a streamed body, not an integer") from None

    async def flush(self, prefix: str) -> int:
        client = self.client
        pattern = _glob_escape(self.entry_prefix + prefix) + "*"
        removed = 0
        cursor = 0
        grace = _ms(self.body_grace_period)
        while True:
            cursor, keys = await self._call(client.scan(cursor, match=pattern, count=_SCAN_COUNT))
            for found in keys:
                name = found.decode()
                if await self._script("forget", [name], [self.body_prefix, grace]) is not None:
                    removed += 1
            if cursor == 0:
                break
        return removed

    async def sweep(self) -> int:
        # Redis expires entries and abandoned bodies itself.
        await self._call(self.client.ping())
        return 0

    async def statistics(self) -> BackendStatistics:
        entries = 0
        cursor = 0
        pattern = _glob_escape(self.entry_prefix) + "*"
        while True:
            cursor, keys = await self._call(self.client.scan(cursor, match=pattern, count=_SCAN_COUNT))
            entries += len(keys)
            if cursor == 0:
                break
        return BackendStatistics(entries=entries, size=None, evictions=None)

    # -- bodies ----------------------------------------------------------------------------------------------

    async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> _RedisSink:
        self.client  # noqa: B018  # fails at once when the store is closed
        return _RedisSink(self, key, ttl, meta)

    async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes]) -> None:
        # The list and then the entry, as a sink does: the entry's script finds every chunk in place.
        sink = await self.begin_body(key, ttl, meta)
        try:
            for chunk in chunks:
                await sink.write_chunk(chunk)
            await sink.commit(sum(len(chunk) for chunk in chunks))
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(ABORT_TIMEOUT):
                await sink.abort()
            raise

    async def _head(self, key: str) -> tuple[str, BodyHead] | None:
        raw = await self._call(self.client.get(self._k(key)))
        if raw is None:
            return None
        if raw[:1] != _BODY_TAG:
            raise EntryKindError(f"{key!r} holds a value, not a streamed body; read it with get")
        body = raw[1 : 1 + _ID_LENGTH].decode()
        line_end = raw.index(b"\n")
        size, chunk_size = (int(part) for part in raw[1 + _ID_LENGTH : line_end].split())
        ttl_ms = await self._call(self.client.pttl(self._k(key)))
        expires_at = None if ttl_ms < 0 else time.time() + ttl_ms / 1000
        head = BodyHead(meta=raw[line_end + 1 :], size=size, chunk_size=chunk_size, expires_at=expires_at)
        return body, head

    async def body_head(self, key: str) -> BodyHead | None:
        found = await self._head(key)
        return None if found is None else found[1]

    async def open_body(self, key: str) -> _RedisSource | None:
        found = await self._head(key)
        if found is None:
            return None
        body, head = found
        if head.size and not await self._call(self.client.exists([self.body_prefix + body])):
            # Evicted by Redis: the entry points at nothing.
            await self.forget(key)
            return None
        return _RedisSource(self, body, head)

    async def serve_writes(self, stop: WriteStop, until: float) -> None:
        await wait_for_stop(stop, until)  # nothing is queued: every write is done when called


class _RedisSink:
    def __init__(self, backend: RedisBackend, key: str, ttl: float | None, meta: bytes) -> None:
        self.backend = backend
        self.key = key
        self.ttl = ttl
        self.meta = meta
        self.body = uuid.uuid4().hex
        self.list_key = backend.body_prefix + self.body
        self.chunks = 0
        self.size = 0

    async def write_chunk(self, data: bytes) -> None:
        self.size += len(data)
        cap = self.backend.max_body_size
        if cap is not None and self.size > cap:
            raise EntryTooLarge(f"{self.key!r}: more than {cap} bytes")
        backend = self.backend
        await backend._script("write_chunk", [self.list_key], [data, _ms(backend.writer_timeout)])
        self.chunks += 1

    async def commit(self, size: int) -> None:
        backend = self.backend
        entry = b"%s%s%d %d\n%s" % (_BODY_TAG, self.body.encode(), size, backend.chunk_size, self.meta)
        ttl = 0 if self.ttl is None else _ms(self.ttl)
        args = [self.chunks, entry, ttl, backend.body_prefix, _ms(backend.body_grace_period)]
        await backend._script("commit", [backend._k(self.key), self.list_key], args)

    async def abort(self) -> None:
        await self.backend._call(self.backend.client.delete([self.list_key]))


class _RedisSource:
    def __init__(self, backend: RedisBackend, body: str, head: BodyHead) -> None:
        self.backend = backend
        self.list_key = backend.body_prefix + body
        self.head = head

    async def read_chunk(self, index: int) -> bytes:
        data = await self.backend._call(self.backend.client.lindex(self.list_key, index))
        if data is None:
            raise BodyGone(f"{self.list_key}: removed while it was read")
        return bytes(data)


def _value(key: str, raw: bytes | None) -> bytes | None:
    if raw is not None and raw[:1] == _BODY_TAG:
        raise EntryKindError(f"{key!r} holds a streamed body; read it with open_reader")
    return raw


def _script_error(exc: coredis.exceptions.ResponseError) -> StoreError:
    text = str(exc)
    if "NOTINT" in text:
        return NotAnInteger(text)
    if "BODY" in text:
        return EntryKindError(text)
    if "ABANDONED" in text:
        return WriterAbandoned(f"the body's list expired while it was written (writer_timeout): {text}")
    return StoreError(text)


def _translated(exc: BaseException, url: str) -> StoreError:
    if isinstance(exc, coredis.exceptions.ResponseError):
        return _script_error(exc)
    return StoreUnavailable(f"{url}: {exc!r}")
