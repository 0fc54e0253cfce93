"""`Store`: Laravel Cache's verbs, in Python, over a backend (sqlite, memory or redis).

    store = Store.from_conf(conf.store, redis=conf.redis)    # nothing opened yet
    async with store:                                         # opens it (in this process)
        await store.put("greeting", b"hello", ttl=60)
        user = await store.remember("user:1", 300, load_user, type=User)

Rules:
- Values are bytes or anything the cattrs converter (un)structures, stored as `_codec` says; `type=` asks
  for a structured value back. A `ttl` is seconds from now; None keeps the entry until it is forgotten or
  evicted, and a ttl <= 0 removes the key (as Laravel's `put` does).
- `prefixed(prefix)` is a view: the same store with `prefix` before every key, whose `flush()` removes only
  those keys (Laravel's tags, as key prefixes).
- `remember` runs its factory once in this process for a key missed by many callers at once: the first
  runs it, the others wait on a per-key lock and then read what it stored. Processes do not coordinate.
- The store is opened by `async with store`, or by running it as a background service
  (`background_service("store", store)`), which also sweeps every `sweep_interval` seconds and runs the
  backend's writer (sqlite queues `put_body` for it; see `_sqlite`). Either opens the backend in the
  process that runs it, after any fork.
- Counts of hits, misses and writes are kept per process (`statistics()`); the backend adds its sizes.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack
from types import TracebackType
from typing import Any

import attrs
import cattrs
import trio

from actorproxy.config import (
    DEFAULT_STORE_MEMORY_MAX_SIZE,
    DEFAULT_STORE_SWEEP_INTERVAL,
    RedisConf,
    StoreConf,
)
from supervisors import ServiceReadyNotifier, ShutdownWatch

from ._backend import Backend, BodyHead
from ._body import BodyReader, BodyWriter
from ._codec import Codec
from ._errors import StoreError
from ._memory import MemoryBackend
from ._redis import RedisBackend
from ._sqlite import SqliteBackend

__all__ = ["Store", "StoreStatistics", "backend_from_conf"]

_MISSING: Any = object()


@attrs.frozen(kw_only=True)
class StoreStatistics:
    """A store's numbers: the backend's (None where it cannot tell) and this process's counts.

    Attributes:
        backend: `sqlite`, `memory` or `redis`.
        entries: live entries, all prefixes.
        size: bytes the size cap counts.
        evictions: entries evicted by the caps.
        hits: reads that found an entry, in this process.
        misses: reads that found none, in this process.
        writes: values written, in this process.
    """

    backend: str
    entries: int | None
    size: int | None
    evictions: int | None
    hits: int
    misses: int
    writes: int


class _Counts:
    def __init__(self) -> None:
        self.hits = 0
        self.misses = 0
        self.writes = 0


class _Flight:
    """The callers of `remember` for one key while its factory runs."""

    def __init__(self) -> None:
        self.lock = trio.Lock()
        self.users = 0


class _Shared:
    """What a store and its prefixed views share."""

    def __init__(self, backend: Backend, codec: Codec, sweep_interval: float) -> None:
        self.backend = backend
        self.codec = codec
        self.sweep_interval = sweep_interval
        self.counts = _Counts()
        self.flights: dict[str, _Flight] = {}
        self.stack: AsyncExitStack | None = None


def backend_from_conf(
    conf: StoreConf, *, redis: RedisConf | None = None, clock: Callable[[], float] = time.time
) -> Backend:
    """The backend `conf` describes (not opened).

    Raises:
        StoreError: `backend: redis` without a `redis` section.
    """
    if conf.backend == "memory":
        return MemoryBackend(
            max_size=DEFAULT_STORE_MEMORY_MAX_SIZE if conf.max_size is None else conf.max_size,
            max_entries=conf.max_entries,
            chunk_size=conf.chunk_size,
            clock=clock,
        )
    if conf.backend == "redis":
        if redis is None:
            raise StoreError("store.backend: redis needs the top-level redis section")
        return RedisBackend(
            redis,
            chunk_size=conf.chunk_size,
            body_grace_period=conf.body_grace_period,
            writer_timeout=conf.writer_timeout,
        )
    assert conf.path is not None  # StoreConf requires it with sqlite
    return SqliteBackend(
        conf.path,
        max_size=conf.max_size,
        max_entries=conf.max_entries,
        chunk_size=conf.chunk_size,
        busy_timeout=conf.busy_timeout,
        body_grace_period=conf.body_grace_period,
        writer_timeout=conf.writer_timeout,
        clock=clock,
    )


class Store:
    """A key-value and body store with Laravel Cache's verbs.

    Args:
        backend: where entries live (`SqliteBackend`, `MemoryBackend`, `RedisBackend`).
        converter: the cattrs converter for values that are not bytes; None: `cattrs.preconf.json`'s.
        sweep_interval: seconds between sweeps when the store runs as a background service.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        converter: cattrs.Converter | None = None,
        sweep_interval: float = DEFAULT_STORE_SWEEP_INTERVAL,
    ) -> None:
        self._shared = _Shared(backend, Codec(converter), sweep_interval)
        self.prefix = ""

    @classmethod
    def from_conf(
        cls,
        conf: StoreConf,
        *,
        redis: RedisConf | None = None,
        clock: Callable[[], float] = time.time,
        converter: cattrs.Converter | None = None,
    ) -> Store:
        """The store of a `store:` section (and the `redis:` section for `backend: redis`), not opened.

        Args:
            conf: the section.
            redis: the top-level `redis:` section.
            clock: the time in seconds, for expiry (tests pass `trio.current_time` for virtual time).
            converter: see `Store`.
        """
        backend = backend_from_conf(conf, redis=redis, clock=clock)
        return cls(backend, converter=converter, sweep_interval=conf.sweep_interval)

    def __repr__(self) -> str:
        prefix = f" prefix={self.prefix!r}" if self.prefix else ""
        return f"<Store {self._shared.backend!r}{prefix}>"

    @property
    def backend(self) -> Backend:
        """The backend entries live in."""
        return self._shared.backend

    @property
    def sweep_interval(self) -> float:
        """Seconds between sweeps when run as a background service."""
        return self._shared.sweep_interval

    def prefixed(self, prefix: str) -> Store:
        """A view of this store whose keys all start with `prefix` (after this store's own prefix)."""
        view = object.__new__(Store)
        view._shared = self._shared
        view.prefix = self.prefix + prefix
        return view

    # -- opening ---------------------------------------------------------------------------------------------

    async def __aenter__(self) -> Store:
        shared = self._shared
        if shared.stack is not None:
            raise StoreError(f"{self!r} is already open")
        stack = AsyncExitStack()
        await stack.enter_async_context(shared.backend.opened())
        shared.stack = stack
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, self._shared.stack = self._shared.stack, None
        if stack is not None:
            await stack.__aexit__(kind, exc, tb)

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        """Run as a background service: open the store, say ready, serve the backend's queued writes
        (`Backend.serve_writes`) and sweep every `sweep_interval` until shutdown, then close it. A failed
        sweep raises, for the service's supervisor to restart it."""
        backend = self.backend
        async with self:
            ready_notifier.notify_ready()
            while True:
                await backend.serve_writes(shutdown, trio.current_time() + self.sweep_interval)
                if shutdown.is_set():
                    return
                await self.sweep()

    # -- values ----------------------------------------------------------------------------------------------

    def _key(self, key: str) -> str:
        return self.prefix + key

    def _decode(self, raw: bytes | None, default: Any, tp: Any) -> Any:
        counts = self._shared.counts
        if raw is None:
            counts.misses += 1
            return default
        counts.hits += 1
        return self._shared.codec.decode(raw, tp)

    async def get(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """The value under `key`, or `default` when there is none.

        Args:
            key: the key.
            default: what a miss answers.
            type: structure the value into this type (an attrs class, `list[int]`, ...); None: plain data.

        Raises:
            EntryKindError: the key holds a streamed body.
        """
        return self._decode(await self.backend.get(self._key(key)), default, type)

    async def many(self, keys: Iterable[str], *, type: Any = None) -> dict[str, Any]:
        """The values of `keys`, None for each missing one."""
        keys = list(keys)
        found = await self.backend.get_many([self._key(key) for key in keys])
        return {key: self._decode(raw, None, type) for key, raw in zip(keys, found, strict=True)}

    async def has(self, key: str) -> bool:
        """Whether `key` holds an entry (a value or a body)."""
        return await self.backend.has(self._key(key))

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        """Store `value` under `key` for `ttl` seconds (None: until forgotten); a ttl <= 0 forgets the key.

        Raises:
            EntryTooLarge: the entry alone is larger than the store's `max_size`.
        """
        await self.put_many({key: value}, ttl)

    async def put_many(self, values: Mapping[str, Any], ttl: float | None = None) -> None:
        """Store every item of `values` for `ttl` seconds, in one step."""
        if ttl is not None and ttl <= 0:
            for key in values:
                await self.forget(key)
            return
        codec = self._shared.codec
        items = [(self._key(key), codec.encode(value)) for key, value in values.items()]
        await self.backend.put_many(items, ttl)
        self._shared.counts.writes += len(items)

    async def forever(self, key: str, value: Any) -> None:
        """Store `value` under `key` with no expiry."""
        await self.put(key, value, None)

    async def add(self, key: str, value: Any, ttl: float | None = None) -> bool:
        """Store `value` only if `key` holds nothing; return whether it was stored (atomic everywhere)."""
        if ttl is not None and ttl <= 0:
            return False
        added = await self.backend.add(self._key(key), self._shared.codec.encode(value), ttl)
        self._shared.counts.writes += added
        return added

    async def forget(self, key: str) -> bool:
        """Remove `key` (a value or a body); return whether it held an entry."""
        return await self.backend.forget(self._key(key))

    async def pull(self, key: str, default: Any = None, *, type: Any = None) -> Any:
        """The value under `key`, removed in the same step; `default` when there is none."""
        return self._decode(await self.backend.pull(self._key(key)), default, type)

    async def increment(self, key: str, by: int = 1) -> int:
        """Add `by` to the integer under `key` (0 when absent, stored with no expiry; an existing entry keeps
        its expiry) atomically, and return the result.

        Raises:
            NotAnInteger: the key holds something else than an integer.
        """
        value = await self.backend.increment(self._key(key), by)
        self._shared.counts.writes += 1
        return value

    async def decrement(self, key: str, by: int = 1) -> int:
        """`increment(key, -by)`."""
        return await self.increment(key, -by)

    async def remember(
        self,
        key: str,
        ttl: float | None,
        factory: Callable[[], Awaitable[Any] | Any],
        *,
        type: Any = None,
    ) -> Any:
        """The value under `key`; on a miss, the factory's result, stored for `ttl` seconds.

        Callers in this process that miss the same key together run the factory once: the first runs it,
        the others then read what it stored (structured with `type` if given; the first gets the factory's
        own object). A factory that raises stores nothing, and the next waiter runs it in turn.
        """
        full = self._key(key)
        raw = await self.backend.get(full)
        if raw is not None:
            return self._decode(raw, None, type)
        flights = self._shared.flights
        flight = flights.get(full)
        if flight is None:
            flight = flights[full] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                raw = await self.backend.get(full)
                if raw is not None:
                    return self._decode(raw, None, type)
                self._shared.counts.misses += 1
                value = factory()
                if inspect.isawaitable(value):
                    value = await value
                await self.put(key, value, ttl)
                return value
        finally:
            flight.users -= 1
            if flight.users == 0:
                del flights[full]

    async def remember_forever(
        self, key: str, factory: Callable[[], Awaitable[Any] | Any], *, type: Any = None
    ) -> Any:
        """`remember` with no expiry."""
        return await self.remember(key, None, factory, type=type)

    async def flush(self) -> int:
        """Remove every entry of this store (of this prefix, for a prefixed view); return how many."""
        return await self.backend.flush(self.prefix)

    # -- bodies ----------------------------------------------------------------------------------------------

    def open_writer(self, key: str, ttl: float | None = None, *, meta: bytes = b"") -> BodyWriter:
        """A writer of a streamed body under `key`, with `meta` readable without the body.

            async with store.open_writer(key, 300, meta=head) as writer:
                async for chunk in upstream:
                    await writer.write(chunk)
                await writer.commit()           # without it, nothing is stored

        Nothing is visible until `commit()`; leaving the block without it removes what was written.
        """
        return BodyWriter(self.backend, self._key(key), ttl, meta)

    async def put_body(self, key: str, data: bytes, ttl: float | None = None, *, meta: bytes = b"") -> None:
        """Store `data` as the body under `key` (with `meta`), in one step: what a writer that wrote `data`
        and committed stores, for a body already in memory (one call to the backend instead of three).
        A sqlite store run as a service queues it for its writer: this process sees it at once, the
        others once written (see `_sqlite`).

        Raises:
            EntryTooLarge: the entry would be larger than the store's `max_size`.
        """
        shared = self._shared
        backend = shared.backend
        size = backend.chunk_size
        if len(data) > size:
            chunks = [data[start : start + size] for start in range(0, len(data), size)]
        else:
            chunks = [data] if data else []
        await backend.put_body(self.prefix + key, ttl, meta, chunks)
        shared.counts.writes += 1

    async def open_reader(self, key: str) -> BodyReader | None:
        """The body under `key`, to stream (`async for chunk in reader`), or None when there is none.

        Raises:
            EntryKindError: the key holds a value.
        """
        source = await self.backend.open_body(self._key(key))
        counts = self._shared.counts
        if source is None:
            counts.misses += 1
            return None
        counts.hits += 1
        return BodyReader(self._key(key), source)

    async def head(self, key: str) -> BodyHead | None:
        """The metadata of the body under `key` (meta, size, expiry) without reading it, or None."""
        return await self.backend.body_head(self._key(key))

    # -- upkeep ----------------------------------------------------------------------------------------------

    async def sweep(self) -> int:
        """Remove expired entries and abandoned or dead bodies now; return how many."""
        return await self.backend.sweep()

    async def statistics(self) -> StoreStatistics:
        """The backend's sizes and this process's counts."""
        found = await self.backend.statistics()
        counts = self._shared.counts
        return StoreStatistics(
            backend=self.backend.name,
            entries=found.entries,
            size=found.size,
            evictions=found.evictions,
            hits=counts.hits,
            misses=counts.misses,
            writes=counts.writes,
        )
