"""`MemoryBackend`: entries in this process's memory, bounded, least recently used evicted first.

Rules:
- An `OrderedDict` in use order: a read or write moves the entry to the end, eviction takes from the front.
  Every operation is synchronous between awaits, so no lock is needed (one trio thread).
- Expired entries are dropped when met and by `sweep`.
- `put_body`, `body_head` and `open_body` are no checkpoints (every other verb is): they never block, and
  the HTTP cache calls them on every request, which yields on its sockets anyway (a checkpoint is a trip
  through trio's scheduler). A caller that loops over them alone must checkpoint itself.
- A committed body is a tuple of chunks the entry points to; a reader holds that tuple, so a body replaced
  or forgotten stays readable to it as long as it reads (Python frees it after), which covers the grace.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager

import attrs
import trio

from ._backend import BackendStatistics, BodyHead, WriteStop, wait_for_stop
from ._codec import decode_int, encode_int
from ._errors import EntryKindError, EntryTooLarge

__all__ = ["MemoryBackend"]


@attrs.frozen
class _Body:
    head: BodyHead
    chunks: tuple[bytes, ...]


@attrs.frozen
class _Entry:
    value: bytes | None
    body: _Body | None
    size: int
    expires_at: float | None


class MemoryBackend:
    """Entries in memory, at most `max_size` bytes and `max_entries` entries.

    Args:
        max_size: bytes of keys, values and bodies kept at most; None: no cap.
        max_entries: entries kept at most; None: no cap.
        chunk_size: bytes per body chunk.
        clock: the time, in seconds (`time.time`; tests pass `trio.current_time` for virtual time).
    """

    name = "memory"

    def __init__(
        self,
        *,
        max_size: int | None = None,
        max_entries: int | None = None,
        chunk_size: int = 64 * 1024,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.max_size = max_size
        self.max_entries = max_entries
        self.chunk_size = chunk_size
        self.clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._size = 0
        self._evictions = 0

    def __repr__(self) -> str:
        return f"<MemoryBackend {len(self._entries)} entries, {self._size} bytes>"

    @asynccontextmanager
    async def opened(self) -> AsyncIterator[None]:
        yield

    # -- the table -------------------------------------------------------------------------------------------

    def _live(self, key: str) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry.expires_at is not None and entry.expires_at <= self.clock():
            self._remove(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def _remove(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self._size -= entry.size
        return True

    def _set(self, key: str, entry: _Entry) -> None:
        if self.max_size is not None and entry.size > self.max_size:
            raise EntryTooLarge(f"{key!r}: {entry.size} bytes is more than max_size {self.max_size}")
        entries = self._entries
        old = entries.pop(key, None)
        size = self._size + entry.size - (0 if old is None else old.size)
        entries[key] = entry
        self._size = size
        self._evict(keep=key)

    def _evict(self, keep: str) -> None:
        while (self.max_size is not None and self._size > self.max_size) or (
            self.max_entries is not None and len(self._entries) > self.max_entries
        ):
            oldest = next(iter(self._entries))
            if oldest == keep:  # only the entry just written is left
                break
            self._remove(oldest)
            self._evictions += 1

    def _expiry(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock() + ttl

    def _value(self, key: str, entry: _Entry | None) -> bytes | None:
        if entry is None:
            return None
        if entry.value is None:
            raise EntryKindError(f"{key!r} holds a streamed body; read it with open_reader")
        return entry.value

    # -- values ----------------------------------------------------------------------------------------------

    async def get(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        return self._value(key, self._live(key))

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        await trio.lowlevel.checkpoint()
        return [self._value(key, self._live(key)) for key in keys]

    async def put(self, key: str, value: bytes, ttl: float | None) -> None:
        await trio.lowlevel.checkpoint()
        self._set(key, _Entry(value, None, len(key) + len(value), self._expiry(ttl)))

    async def put_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> None:
        await trio.lowlevel.checkpoint()
        expires_at = self._expiry(ttl)
        for key, value in items:
            self._set(key, _Entry(value, None, len(key) + len(value), expires_at))

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool:
        await trio.lowlevel.checkpoint()
        if self._live(key) is not None:
            return False
        self._set(key, _Entry(value, None, len(key) + len(value), self._expiry(ttl)))
        return True

    async def has(self, key: str) -> bool:
        await trio.lowlevel.checkpoint()
        return self._live(key) is not None

    async def forget(self, key: str) -> bool:
        await trio.lowlevel.checkpoint()
        return self._live(key) is not None and self._remove(key)

    async def pull(self, key: str) -> bytes | None:
        await trio.lowlevel.checkpoint()
        value = self._value(key, self._live(key))
        self._remove(key)
        return value

    async def increment(self, key: str, by: int) -> int:
        await trio.lowlevel.checkpoint()
        entry = self._live(key)
        value = decode_int(self._value(key, entry), key) + by
        raw = encode_int(value)
        self._set(key, _Entry(raw, None, len(key) + len(raw), None if entry is None else entry.expires_at))
        return value

    async def flush(self, prefix: str) -> int:
        await trio.lowlevel.checkpoint()
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def sweep(self) -> int:
        await trio.lowlevel.checkpoint()
        now = self.clock()
        doomed = [k for k, e in self._entries.items() if e.expires_at is not None and e.expires_at <= now]
        for key in doomed:
            self._remove(key)
        return len(doomed)

    async def statistics(self) -> BackendStatistics:
        await trio.lowlevel.checkpoint()
        return BackendStatistics(entries=len(self._entries), size=self._size, evictions=self._evictions)

    # -- bodies ----------------------------------------------------------------------------------------------

    async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> _MemorySink:
        await trio.lowlevel.checkpoint()
        return _MemorySink(self, key, ttl, meta)

    async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes]) -> None:
        self._commit(key, ttl, meta, chunks, sum(map(len, chunks)))

    async def body_head(self, key: str) -> BodyHead | None:
        entry = self._live(key)
        return None if entry is None else self._body(key, entry).head

    async def open_body(self, key: str) -> _MemorySource | None:
        entry = self._live(key)
        return None if entry is None else _MemorySource(self._body(key, entry))

    async def serve_writes(self, stop: WriteStop, until: float) -> None:
        await wait_for_stop(stop, until)  # nothing is queued: every write is done when called

    def _body(self, key: str, entry: _Entry) -> _Body:
        if entry.body is None:
            raise EntryKindError(f"{key!r} holds a value, not a streamed body; read it with get")
        return entry.body

    def _commit(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes], size: int) -> None:
        expires_at = None if ttl is None else self.clock() + ttl
        head = BodyHead(meta=meta, size=size, chunk_size=self.chunk_size, expires_at=expires_at)
        self._set(key, _Entry(None, _Body(head, tuple(chunks)), len(key) + len(meta) + size, expires_at))


class _MemorySink:
    def __init__(self, backend: MemoryBackend, key: str, ttl: float | None, meta: bytes) -> None:
        self.backend = backend
        self.key = key
        self.ttl = ttl
        self.meta = meta
        self.chunks: list[bytes] = []
        self.size = len(key) + len(meta)

    async def write_chunk(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.size += len(data)
        cap = self.backend.max_size
        if cap is not None and self.size > cap:
            raise EntryTooLarge(f"{self.key!r}: more than max_size {cap} bytes")
        self.chunks.append(data)

    async def commit(self, size: int) -> None:
        await trio.lowlevel.checkpoint()
        self.backend._commit(self.key, self.ttl, self.meta, self.chunks, size)
        self.chunks = []

    async def abort(self) -> None:
        self.chunks = []


class _MemorySource:
    def __init__(self, body: _Body) -> None:
        self.head = body.head
        self._chunks = body.chunks

    async def read_chunk(self, index: int) -> bytes:
        await trio.lowlevel.checkpoint()
        return self._chunks[index]
