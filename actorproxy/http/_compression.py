"""`ResponseCompression`: Pingora's response compression, for one request (its `ResponseCompressionCtx`).

Rules:
- Off unless a level is set (`adjust_level`) or decompression is enabled: an off context changes nothing.
- The client's `Accept-Encoding` (RFC 9110 §12.5.3) is read when the context is made, so a filter that later
  removes the field from the request (to get identity from the upstream) does not change the choice.
  Quality values count: `q=0` refuses a coding, the highest quality wins, ties go to the order of
  `PREFERENCE`; `*` stands for the codings not named; no `Accept-Encoding` means identity only.
- Compress when the response has no `Content-Encoding`, a body, a compressible `Content-Type`, a length
  unknown or at least `min_size`, and is not partial (206, `Content-Range`) nor marked `no-transform`
  (RFC 9111 §5.2.2.6); the coding is the client's best among those with a level above 0.
- Decompress (when enabled) a response whose single coding the client does not accept.
- A response the choice depended on gets `Vary: Accept-Encoding`, whether or not it was transformed
  (RFC 9110 §12.5.5). A transformed one loses `Content-Length` (its length is new; the codec frames it)
  and `Accept-Ranges`, and a strong `ETag` becomes weak (RFC 9110 §8.8.3: a strong validator names one
  representation) unless `preserve_etag`.
- The body streams: each piece is coded as it passes (`response_body_pieces`), never the whole body at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from actorproxy.config import DEFAULT_COMPRESS_MIN_SIZE, DEFAULT_COMPRESSIBLE_TYPES

from ._codings import Coder, CodingError, ContentCoding, compressor, decompressor
from ._error import Error, ErrorSource, ErrorType
from ._header import RequestHeader, ResponseHeader

__all__ = [
    "COMPRESSION_ERROR",
    "PREFERENCE",
    "ResponseCompression",
    "accepted_codings",
]

#: Pingora's error type for a body that cannot be (de)compressed.
COMPRESSION_ERROR = ErrorType("CompressionError")
#: Server preference among codings the client rates equally: smallest output first.
PREFERENCE = (ContentCoding.ZSTD, ContentCoding.BROTLI, ContentCoding.GZIP)
# Aliases of gzip a client or an upstream may still send (RFC 9110 §8.4.1.3).
_ALIASES = {"x-gzip": ContentCoding.GZIP}
_QUALITY = re.compile(r"q=([01](?:\.\d{0,3})?)\s*$", re.IGNORECASE)


def accepted_codings(values: Iterable[str]) -> dict[str, float]:
    """The codings an `Accept-Encoding` field lists (every field value given), lower-case, with quality.

    A member with a malformed quality counts as refused (q=0).
    """
    accepted: dict[str, float] = {}
    for value in values:
        for member in value.split(","):
            name, _, params = member.partition(";")
            name = name.strip().lower()
            if not name:
                continue
            quality = 1.0
            if params.strip():
                match = _QUALITY.search(params.strip())
                quality = min(float(match.group(1)), 1.0) if match else 0.0
            accepted[name] = quality
    return accepted


def _coding(token: str) -> ContentCoding | None:
    token = token.strip().lower()
    alias = _ALIASES.get(token)
    if alias is not None:
        return alias
    try:
        return ContentCoding(token)
    except ValueError:
        return None


class ResponseCompression:
    """Compression of one response, decided from the request's `Accept-Encoding` and the response head.

    Args:
        level: the level of every coding; 0 turns compression off.
        decompress: decode an upstream's coding the client does not accept.
        preserve_etag: keep a strong `ETag` unchanged on a transformed response.
        min_size: smallest `Content-Length` worth compressing.
        content_types: types to compress: `type/subtype`, or `type/*`; parameters are ignored.
    """

    __slots__ = (
        "_accepted",
        "_coder",
        "_decided",
        "_decoding",
        "content_types",
        "decompress",
        "levels",
        "min_size",
        "preserve_etag",
    )

    def __init__(
        self,
        level: int = 0,
        decompress: bool = False,
        preserve_etag: bool = False,
        *,
        min_size: int = DEFAULT_COMPRESS_MIN_SIZE,
        content_types: Iterable[str] = DEFAULT_COMPRESSIBLE_TYPES,
    ) -> None:
        #: The level of each coding (0: never chosen).
        self.levels: dict[ContentCoding, int] = dict.fromkeys(ContentCoding, level)
        self.decompress: set[ContentCoding] = set(ContentCoding) if decompress else set()
        self.preserve_etag = preserve_etag
        self.min_size = min_size
        self.content_types = tuple(content_types)
        self._accepted: dict[str, float] = {}
        self._coder: Coder | None = None
        self._decided = False
        self._decoding = False

    def __repr__(self) -> str:
        levels = ", ".join(f"{coding.value}={level}" for coding, level in self.levels.items())
        return f"<ResponseCompression {levels} decompress={sorted(c.value for c in self.decompress)}>"

    # -- Pingora's adjustments (before the response head) ---------------------------------------------------

    def is_enabled(self) -> bool:
        """Whether this context may change the response: a level above 0, or decompression on."""
        if self._decided:
            return self._coder is not None
        return bool(self.decompress) or any(self.levels.values())

    def adjust_level(self, level: int) -> None:
        """Set the level of every coding (0 turns compression off)."""
        self._before_the_head()
        self.levels = dict.fromkeys(ContentCoding, level)

    def adjust_algorithm_level(self, coding: ContentCoding | str, level: int) -> None:
        """Set the level of one coding (`"gzip"`, `"br"`, `"zstd"`); 0 never chooses it."""
        self._before_the_head()
        self.levels[ContentCoding(coding)] = level

    def adjust_decompression(self, enabled: bool) -> None:
        """Decode (or not) every coding the client does not accept."""
        self._before_the_head()
        self.decompress = set(ContentCoding) if enabled else set()

    def adjust_algorithm_decompression(self, coding: ContentCoding | str, enabled: bool) -> None:
        """Decode (or not) one coding the client does not accept."""
        self._before_the_head()
        (self.decompress.add if enabled else self.decompress.discard)(ContentCoding(coding))

    def adjust_preserve_etag(self, enabled: bool) -> None:
        """Keep a strong `ETag` as it is on a transformed response."""
        self._before_the_head()
        self.preserve_etag = enabled

    def _before_the_head(self) -> None:
        if self._decided:
            raise RuntimeError("the response head was already filtered: too late to change compression")

    def get_info(self) -> tuple[str, int, int, float] | None:
        """(coding, bytes in, bytes out, seconds spent) once a body is being coded, else None."""
        coder = self._coder
        if coder is None:
            return None
        return coder.coding.value, coder.bytes_in, coder.bytes_out, coder.seconds

    # -- the filters ------------------------------------------------------------------------------------

    def request_filter(self, request: RequestHeader) -> None:
        """Read the client's `Accept-Encoding` (done when the session makes this context)."""
        self._accepted = accepted_codings(request.headers.get_all("accept-encoding"))

    def response_header_filter(self, response: ResponseHeader, end: bool) -> None:
        """Decide from the response head, and adjust it; `end`: the response has no body."""
        if self._decided or response.status < 200:
            # An interim response: the decision waits for the final one (a 101 ends the exchange anyway).
            return
        self._decided = True
        if end or response.status in (204, 304):
            return
        headers = response.headers
        encoding = headers.get_all("content-encoding")
        if encoding:
            if self.decompress:
                _vary_on_accept_encoding(response)
            codings = [c for v in encoding for c in v.split(",") if c.strip()]
            coding = _coding(codings[0]) if len(codings) == 1 else None
            if coding not in self.decompress or self._accepts(coding) or _no_transform(response):
                return
            assert coding is not None  # None is never in `decompress`
            self._coder = decompressor(coding)
            self._decoding = True
            headers.remove("content-encoding")
            self._transformed(response)
            return
        if not self._compressible(response):
            return
        _vary_on_accept_encoding(response)
        chosen = self._choose()
        if chosen is None:
            return
        self._coder = compressor(chosen, self.levels[chosen])
        headers.set("Content-Encoding", chosen.value)
        self._transformed(response)

    def response_body_pieces(self, data: bytes | None, end: bool) -> Iterator[bytes]:
        """The coded output for one body piece, in pieces of bounded size (nothing when not coding).

        Raises:
            Error: `COMPRESSION_ERROR`: the upstream's compressed body is corrupt or truncated (source
                upstream), or the body cannot be compressed (internal).
        """
        coder = self._coder
        if coder is None:
            if data:
                yield data
            return
        try:
            yield from coder.pieces(data or b"", end)
        except CodingError as exc:
            # A body that cannot be decoded is the upstream's fault; one that cannot be encoded, ours.
            source = ErrorSource.UPSTREAM if self._decoding else ErrorSource.INTERNAL
            raise Error(COMPRESSION_ERROR, source, context=str(exc), cause=exc) from exc

    def response_body_filter(self, data: bytes | None, end: bool) -> bytes | None:
        """Pingora's body filter: the coded output for one piece, joined; None when not coding."""
        if self._coder is None:
            return None
        return b"".join(self.response_body_pieces(data, end))

    # -- the decision ---------------------------------------------------------------------------------------

    def _accepts(self, coding: ContentCoding) -> bool:
        accepted = self._accepted
        quality = accepted.get(coding.value)
        if quality is None and coding is ContentCoding.GZIP:
            quality = accepted.get("x-gzip")
        if quality is None:
            quality = accepted.get("*", 0.0)
        return quality > 0

    def _choose(self) -> ContentCoding | None:
        accepted = self._accepted
        best: ContentCoding | None = None
        best_quality = 0.0
        for coding in PREFERENCE:
            if not self.levels[coding]:
                continue
            quality = accepted.get(coding.value, accepted.get("*", 0.0))
            if quality > best_quality:
                best, best_quality = coding, quality
        return best

    def _compressible(self, response: ResponseHeader) -> bool:
        if not any(self.levels.values()) or response.status == 206:
            return False
        headers = response.headers
        if "content-range" in headers or _no_transform(response):
            return False
        length = headers.get("content-length")
        if length is not None and length.isdigit() and int(length) < self.min_size:
            return False
        content_type = headers.get("content-type")
        if not content_type:
            return False
        media = content_type.partition(";")[0].strip().lower()
        if "zip" in media:
            return False
        kind = media.partition("/")[0] + "/*"
        return media in self.content_types or kind in self.content_types

    def _transformed(self, response: ResponseHeader) -> None:
        headers = response.headers
        headers.remove("content-length")
        headers.remove("accept-ranges")
        if self.preserve_etag:
            return
        etag = headers.get("etag")
        if etag is None or etag.startswith("W/"):
            return
        if etag.startswith('"'):
            headers.set("ETag", "W/" + etag)
        else:
            headers.remove("etag")


def _no_transform(response: ResponseHeader) -> bool:
    return any(
        directive.strip().lower() == "no-transform"
        for value in response.headers.get_all("cache-control")
        for directive in value.split(",")
    )


def _vary_on_accept_encoding(response: ResponseHeader) -> None:
    """Add `accept-encoding` to `Vary` unless it (or `*`) is already there (Pingora's add_vary_header)."""
    for value in response.headers.get_all("vary"):
        for member in value.split(","):
            if member.strip().lower() in ("*", "accept-encoding"):
                return
    response.append_header("Vary", "Accept-Encoding")
