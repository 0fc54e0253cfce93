"""Streaming content codings: gzip (zlib), br (brotli) and zstd (zstandard), each way.

Rules:
- A coder turns a body piece into output bytes as it goes; nothing waits for the whole body. With `end` a
  compressor flushes and closes its stream; a decompressor checks that the stream was complete.
- A compressor flushes after every piece, so what the client receives can be decoded as it arrives (a
  server-sent stream or a slow upstream is not held back by the encoder's window).
- Output comes in pieces (`pieces(data, end)`), and decompression is bounded per piece: zlib yields at
  most `MAX_DECODED_PIECE` bytes a step and brotli about that (both take an output limit); zstd is fed
  slices sized by the expansion seen so far. A small, highly compressed upstream body therefore never
  makes the proxy hold its whole expansion: each piece can be written before the next is decoded.
- A corrupt or truncated compressed stream raises `CodingError`.
"""

from __future__ import annotations

import enum
import time
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

import brotli
import zstandard

__all__ = [
    "CODING_LEVELS",
    "MAX_DECODED_PIECE",
    "Coder",
    "CodingError",
    "ContentCoding",
    "compressor",
    "decompressor",
]

#: Output one decompression step may produce before the rest waits for the next step.
MAX_DECODED_PIECE = 256 * 1024
# zstd's decoder takes no output limit, so it is fed slices sized from the expansion it has seen so far,
# aiming at MAX_DECODED_PIECE a step. A block of a few bytes can expand to 128 KiB (RFC 8878 §3.1.1.2), so
# the first slice is small; ordinary text expands 3-10x and soon gets the largest slice.
_ZSTD_FIRST_SLICE = 64
_ZSTD_MIN_SLICE = 16
_ZSTD_MAX_SLICE = 16 * 1024
# zlib's window bits for a gzip wrapper (RFC 1952), writing; reading also takes a zlib (RFC 1950) wrapper.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_AUTO_WBITS = 32 + zlib.MAX_WBITS


class ContentCoding(enum.Enum):
    """A content coding the proxy can apply or remove (RFC 9110 §8.4.1), by its token."""

    GZIP = "gzip"
    BROTLI = "br"
    ZSTD = "zstd"


#: The levels each coding accepts: zlib 1-9, brotli's quality 0-11, zstd 1-22 (its libraries' ranges).
CODING_LEVELS: dict[ContentCoding, range] = {
    ContentCoding.GZIP: range(1, 10),
    ContentCoding.BROTLI: range(12),
    ContentCoding.ZSTD: range(1, 23),
}


class CodingError(Exception):
    """A compressed stream that cannot be decoded (corrupt, truncated, or trailing garbage)."""


class Coder(Protocol):
    """One direction of one coding, for one body."""

    coding: ContentCoding
    bytes_in: int
    bytes_out: int
    seconds: float

    def pieces(self, data: bytes, end: bool) -> Iterator[bytes]:
        """The output for `data`, in pieces of bounded size; `end`: `data` is the last input."""
        ...


class _Coder:
    __slots__ = ("bytes_in", "bytes_out", "coding", "seconds")

    def __init__(self, coding: ContentCoding) -> None:
        self.coding = coding
        self.bytes_in = 0
        self.bytes_out = 0
        self.seconds = 0.0

    def pieces(self, data: bytes, end: bool) -> Iterator[bytes]:
        self.bytes_in += len(data)
        steps = self._steps(data, end)
        while True:
            started = time.perf_counter()
            try:
                out = next(steps, None)
            except (zlib.error, brotli.error, zstandard.ZstdError) as exc:
                raise CodingError(f"{self.coding.value}: {exc}") from exc
            finally:
                self.seconds += time.perf_counter() - started
            if out is None:
                return
            if out:
                self.bytes_out += len(out)
                yield out

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        raise NotImplementedError


class _GzipCompressor(_Coder):
    __slots__ = ("_zlib",)

    def __init__(self, level: int) -> None:
        super().__init__(ContentCoding.GZIP)
        self._zlib = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        out = self._zlib.compress(data) if data else b""
        yield out + self._zlib.flush(zlib.Z_FINISH if end else zlib.Z_SYNC_FLUSH)


class _BrotliCompressor(_Coder):
    __slots__ = ("_brotli",)

    def __init__(self, level: int) -> None:
        super().__init__(ContentCoding.BROTLI)
        self._brotli = brotli.Compressor(quality=level)

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        out = self._brotli.process(data) if data else b""
        yield out + (self._brotli.finish() if end else self._brotli.flush())


class _ZstdCompressor(_Coder):
    __slots__ = ("_zstd",)

    def __init__(self, level: int) -> None:
        super().__init__(ContentCoding.ZSTD)
        self._zstd = zstandard.ZstdCompressor(level=level).compressobj()

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        out = self._zstd.compress(data) if data else b""
        flush = zstandard.COMPRESSOBJ_FLUSH_FINISH if end else zstandard.COMPRESSOBJ_FLUSH_BLOCK
        yield out + self._zstd.flush(flush)


class _GzipDecompressor(_Coder):
    __slots__ = ("_zlib",)

    def __init__(self) -> None:
        super().__init__(ContentCoding.GZIP)
        self._zlib = zlib.decompressobj(_AUTO_WBITS)

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        decoder = self._zlib
        pending = data
        while pending:
            if decoder.eof:
                raise CodingError("gzip: data after the end of the compressed stream")
            yield decoder.decompress(pending, MAX_DECODED_PIECE)
            pending = decoder.unconsumed_tail
        if decoder.eof and decoder.unused_data:
            raise CodingError("gzip: data after the end of the compressed stream")
        if end and not decoder.eof:
            raise CodingError("gzip: the compressed stream is truncated")


class _BrotliDecompressor(_Coder):
    __slots__ = ("_brotli",)

    def __init__(self) -> None:
        super().__init__(ContentCoding.BROTLI)
        self._brotli = brotli.Decompressor()

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        decoder = self._brotli
        if data and decoder.is_finished():
            raise CodingError("br: data after the end of the compressed stream")
        out = decoder.process(data, output_buffer_limit=MAX_DECODED_PIECE)
        yield out
        # The decoder may hold more output than one step gives: drain it with empty input.
        while not decoder.is_finished() and (out or not decoder.can_accept_more_data()):
            out = decoder.process(b"", output_buffer_limit=MAX_DECODED_PIECE)
            yield out
        if end and not decoder.is_finished():
            raise CodingError("br: the compressed stream is truncated")


class _ZstdDecompressor(_Coder):
    __slots__ = ("_slice", "_zstd")

    def __init__(self) -> None:
        super().__init__(ContentCoding.ZSTD)
        self._zstd = zstandard.ZstdDecompressor().decompressobj()
        self._slice = _ZSTD_FIRST_SLICE

    def _steps(self, data: bytes, end: bool) -> Iterator[bytes]:
        decoder = self._zstd
        view = memoryview(data)
        start = 0
        while start < len(view):
            if decoder.eof:
                raise CodingError("zstd: data after the end of the compressed stream")
            size = self._slice
            out = decoder.decompress(view[start : start + size])
            start += size
            expansion = max(len(out) // size, 1)
            self._slice = min(max(MAX_DECODED_PIECE // expansion, _ZSTD_MIN_SLICE), _ZSTD_MAX_SLICE)
            yield out
        if decoder.eof and decoder.unused_data:
            raise CodingError("zstd: data after the end of the compressed stream")
        if end and not decoder.eof:
            raise CodingError("zstd: the compressed stream is truncated")


_COMPRESSORS: dict[ContentCoding, Callable[[int], Coder]] = {
    ContentCoding.GZIP: _GzipCompressor,
    ContentCoding.BROTLI: _BrotliCompressor,
    ContentCoding.ZSTD: _ZstdCompressor,
}
_DECOMPRESSORS: dict[ContentCoding, Callable[[], Coder]] = {
    ContentCoding.GZIP: _GzipDecompressor,
    ContentCoding.BROTLI: _BrotliDecompressor,
    ContentCoding.ZSTD: _ZstdDecompressor,
}


def compressor(coding: ContentCoding, level: int) -> Coder:
    """A streaming compressor for `coding` at `level` (clamped into the coding's range)."""
    levels = CODING_LEVELS[coding]
    return _COMPRESSORS[coding](min(max(level, levels.start), levels.stop - 1))


def decompressor(coding: ContentCoding) -> Coder:
    """A streaming decompressor for `coding`."""
    return _DECOMPRESSORS[coding]()
