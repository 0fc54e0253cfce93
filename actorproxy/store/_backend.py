"""What a backend does: the store's verbs on raw keys and tagged bytes, and streamed bodies in chunks.

`Store` (the front) adds the prefix, the serialisation, `remember`'s single flight and the statistics; a
backend only keeps bytes. Every backend passes the same test suite (`tests/e2e/test_store_backends.py`).

Rules every backend keeps:
- A key holds a value or a body, never both; `ttl` is seconds from now, None for no expiry (the front
  turns a ttl <= 0 into `forget`). An expired entry is absent for every verb at once; sweeping only gives
  its space back.
- A body is invisible until `commit`; replacing, forgetting, evicting or expiring a committed body leaves it
  readable for `body_grace_period`, so a reader already streaming it finishes. A body whose writer never
  commits (abort, cancellation, a killed process) never becomes visible, and its chunks are removed.
- Every chunk of a body but the last is exactly `BodyHead.chunk_size` bytes long, so a reader finds the
  chunk of any byte offset without reading the ones before it.
- `serve_writes` is the store service's: a backend that queues writes (sqlite's `put_body`) writes them
  there; the others only wait in it.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol

import attrs
import trio

__all__ = ["Backend", "BackendStatistics", "BodyHead", "BodySink", "BodySource", "WriteStop", "wait_for_stop"]


@attrs.frozen(kw_only=True)
class BodyHead:
    """A committed body's metadata, read without its bytes.

    Attributes:
        meta: the bytes given to `open_writer(meta=...)` (the cache keeps the response head there).
        size: the body's length in bytes.
        chunk_size: the length of every stored chunk but the last.
        expires_at: when the entry expires, on the store's clock (seconds); None: never.
    """

    meta: bytes
    size: int
    chunk_size: int
    expires_at: float | None


@attrs.frozen(kw_only=True)
class BackendStatistics:
    """What a backend holds, for `Store.statistics()`; None where the backend cannot tell cheaply.

    Attributes:
        entries: live entries (values and bodies).
        size: bytes of keys, values and bodies, as the size cap counts them.
        evictions: entries removed by the caps since the store was created (sqlite: since the file was).
    """

    entries: int | None
    size: int | None
    evictions: int | None


class BodySink(Protocol):
    """One body being written: chunks in order, then `commit` or `abort`."""

    async def write_chunk(self, data: bytes) -> None:
        """Store the next chunk (`chunk_size` bytes, or fewer for the last)."""

    async def commit(self, size: int) -> None:
        """Make the body the key's entry, replacing what it held; `size` is the bytes written in all."""

    async def abort(self) -> None:
        """Drop what was written; the key keeps what it held. Safe to call after a failed write."""


class BodySource(Protocol):
    """One committed body being read."""

    head: BodyHead

    async def read_chunk(self, index: int) -> bytes:
        """The chunk at `index` (0-based).

        Raises:
            BodyGone: the body was removed under the reader.
        """


class WriteStop(Protocol):
    """When a backend's writer stops: a service's `ShutdownWatch` (or a `trio.Event`)."""

    def is_set(self) -> bool: ...

    async def wait(self) -> None: ...


async def wait_for_stop(stop: WriteStop, until: float) -> None:
    """`serve_writes` for a backend that queues nothing: wait until `until` (trio's clock) or `stop`."""
    with trio.move_on_at(until):
        await stop.wait()


class Backend(Protocol):
    """Raw storage for `Store`: keys are full keys (prefix included), values tagged bytes (`_codec`)."""

    #: `sqlite`, `memory` or `redis`.
    name: str
    chunk_size: int

    def opened(self) -> AbstractAsyncContextManager[None]:
        """Open the backend's connection for the duration of the block (in the process that uses it)."""

    async def get(self, key: str) -> bytes | None: ...

    async def get_many(self, keys: Sequence[str]) -> list[bytes | None]: ...

    async def put(self, key: str, value: bytes, ttl: float | None) -> None: ...

    async def put_many(self, items: Sequence[tuple[str, bytes]], ttl: float | None) -> None: ...

    async def add(self, key: str, value: bytes, ttl: float | None) -> bool: ...

    async def has(self, key: str) -> bool: ...

    async def forget(self, key: str) -> bool: ...

    async def pull(self, key: str) -> bytes | None: ...

    async def increment(self, key: str, by: int) -> int: ...

    async def flush(self, prefix: str) -> int:
        """Remove every entry whose key starts with `prefix` ("" for all); return how many."""

    async def sweep(self) -> int:
        """Remove expired entries and abandoned or dead bodies; return how many entries and bodies."""

    async def statistics(self) -> BackendStatistics: ...

    async def begin_body(self, key: str, ttl: float | None, meta: bytes) -> BodySink: ...

    async def put_body(self, key: str, ttl: float | None, meta: bytes, chunks: Sequence[bytes]) -> None:
        """Store a whole body (`chunk_size` bytes per chunk but the last) as the key's entry, in one step:
        what a sink's writes and commit do, for a body already in hand."""

    async def body_head(self, key: str) -> BodyHead | None: ...

    async def open_body(self, key: str) -> BodySource | None: ...

    async def serve_writes(self, stop: WriteStop, until: float) -> None:
        """Write what the backend queued, as it comes, until `until` (trio's clock) or `stop` is set."""
