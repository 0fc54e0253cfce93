"""Streamed bodies: `BodyWriter` (chunks in, nothing visible until `commit`) and `BodyReader` (chunks out).

Rules:
- A writer holds at most one chunk (`chunk_size` bytes) plus what one `write` gave it: a body of any size
  streams through in constant memory, and every stored chunk but the last is exactly `chunk_size` long.
- Nothing is visible before `commit()`. Leaving the `async with` block without it (an exception, a
  cancellation, or simply no commit) aborts: what was written is removed. The abort is cleanup that must
  finish, so it runs shielded, within `ABORT_TIMEOUT`; a process killed mid-write leaves chunks no entry
  points to, which the backend's sweep (or Redis's expiry) removes.
- A reader reads one chunk per step, on demand; `chunks(start, end)` starts at the chunk holding `start`,
  so a range costs only the chunks it covers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType

import trio

from ._backend import Backend, BodyHead, BodySink, BodySource
from ._errors import StoreError

__all__ = ["ABORT_TIMEOUT", "BodyReader", "BodyWriter"]

# Seconds an abort may take (it deletes what was written) before it is given up; the sweep finishes it.
ABORT_TIMEOUT = 5.0


class BodyWriter:
    """Writes one body under `key`; use as `async with store.open_writer(key, ttl, meta=...) as w`.

    Attributes:
        key: the key (prefix included).
        size: bytes written so far.
    """

    def __init__(self, backend: Backend, key: str, ttl: float | None, meta: bytes) -> None:
        self._backend = backend
        self.key = key
        self._ttl = ttl
        self._meta = meta
        self._sink: BodySink | None = None
        self._buffer = bytearray()
        self._chunk_size = backend.chunk_size
        self.size = 0
        self._done = False

    def __repr__(self) -> str:
        state = "done" if self._done else "open" if self._sink is not None else "new"
        return f"<BodyWriter {self.key!r} {self.size} bytes {state}>"

    async def __aenter__(self) -> BodyWriter:
        if self._sink is not None:
            raise StoreError(f"{self.key!r}: a BodyWriter is entered once")
        self._sink = await self._backend.begin_body(self.key, self._ttl, self._meta)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            await self.abort()

    def _open_sink(self) -> BodySink:
        if self._sink is None or self._done:
            raise StoreError(f"{self.key!r}: the writer is not open (use it inside `async with`)")
        return self._sink

    async def write(self, data: bytes) -> None:
        """Append `data` to the body.

        Raises:
            EntryTooLarge: the body has grown past the store's `max_size`.
            StoreError: the writer is closed, or the backend failed.
        """
        sink = self._open_sink()
        self.size += len(data)
        buffer = self._buffer
        buffer += data
        size = self._chunk_size
        while len(buffer) >= size:
            chunk = bytes(buffer[:size])
            del buffer[:size]
            await sink.write_chunk(chunk)

    async def commit(self) -> None:
        """Make the body the key's entry, replacing what the key held, in one step.

        Raises:
            WriterAbandoned: the body was taken for abandoned (no write for `writer_timeout`).
            EntryTooLarge: the entry would be larger than the store's `max_size`.
        """
        sink = self._open_sink()
        if self._buffer:
            await sink.write_chunk(bytes(self._buffer))
            self._buffer.clear()
        await sink.commit(self.size)
        self._done = True

    async def abort(self) -> None:
        """Drop what was written; the key keeps what it held. Idempotent; `async with` calls it on exit."""
        if self._done:
            return
        self._done = True
        self._buffer.clear()
        if self._sink is None:
            return
        with trio.move_on_after(ABORT_TIMEOUT, shield=True):
            await self._sink.abort()


class BodyReader:
    """A committed body: its head (`meta`, `size`) and its bytes, read chunk by chunk on demand.

    `async for chunk in reader` reads it all; `reader.chunks(start, end)` reads bytes `start` to `end - 1`.
    """

    def __init__(self, key: str, source: BodySource) -> None:
        self.key = key
        self._source = source

    def __repr__(self) -> str:
        return f"<BodyReader {self.key!r} {self.head.size} bytes>"

    @property
    def head(self) -> BodyHead:
        """The body's metadata: `meta`, `size`, `chunk_size`, `expires_at`."""
        return self._source.head

    @property
    def meta(self) -> bytes:
        """The bytes given as `meta` when the body was written."""
        return self._source.head.meta

    @property
    def size(self) -> int:
        """The body's length in bytes."""
        return self._source.head.size

    def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The body's bytes from `start` up to `end` (excluded; None: the end), in stored chunks.

        Raises:
            ValueError: the range is not inside the body.
            BodyGone: (while iterating) the body was removed under the reader.
        """
        size = self.head.size
        stop = size if end is None else end
        if not 0 <= start <= stop <= size:
            raise ValueError(f"range {start}..{stop} is not inside a body of {size} bytes")
        return _Chunks(self._source, start, stop)

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.chunks()

    async def read(self) -> bytes:
        """The whole body in memory: only for bodies known to be small."""
        return b"".join([chunk async for chunk in self.chunks()])


class _Chunks:
    """An async iterator over a byte range of a body (a class, not an async generator: nothing to
    finalize when a consumer stops early)."""

    def __init__(self, source: BodySource, start: int, stop: int) -> None:
        self._source = source
        self._position = start
        self._stop = stop
        self._chunk_size = source.head.chunk_size

    def __aiter__(self) -> _Chunks:
        return self

    async def __anext__(self) -> bytes:
        position = self._position
        if position >= self._stop:
            raise StopAsyncIteration
        index, offset = divmod(position, self._chunk_size)
        chunk = await self._source.read_chunk(index)
        piece = chunk[offset : offset + self._stop - position]
        self._position = position + len(piece)
        if not piece:
            raise StoreError(f"a stored chunk ends before the body's recorded size ({self._stop})")
        return piece
