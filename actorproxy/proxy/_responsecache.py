"""`ResponseCache`: a shared HTTP cache over the embedded store, which the cache phases read and write.

    cache = ResponseCache(store, default_ttl=60, lock_timeout=5)   # store: an actorproxy.store.Store
    ... in request_cache_filter: session.cache.enable(cache)

Rules:
- Entries live in the store under `namespace + key`: a response's body, with its `StoredResponse` as the
  store entry's meta. A response with Vary keeps its body under `key + "\\n" + secondary key` and, under
  `key`, a marker (an empty body whose meta lists the Vary fields): a lookup reads one entry, or two for a
  resource that varies (RFC 9111 §4.1).
- The store keeps an entry while it is fresh, then while a stale window may still serve it
  (stale-while-revalidate, stale-if-error), then `keep_stale` seconds more so that it can be revalidated
  with a 304 (nginx's `inactive`).
- A response is written while it streams (`Fill`): nothing is visible before its commit, and a fill that
  ends any other way (an error, a client gone, a cancellation) leaves what the key held. A small body
  (`WHOLE_BODY_MAX`) is stored in one step when it ends: one call to the store per miss.
- Small complete entries are also kept in this process's memory (`HotTier`); see `_hottier` for how long
  an entry there is trusted.
- A response is refreshed after a 304 by writing its body again under the new head: the store has no
  in-place update of a body's meta.
- Purging removes a key with all its variants, or every key under a prefix, from the store and the tier.
- The cache lock (`CacheLock`) is this object's, so it is per process.
- The clock (`clock`) must be the store's: both read POSIX seconds (tests give both virtual time).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable

import attrs

from actorproxy.cache import (
    DEFAULT_KEY_PARTS,
    DEFAULT_LOCK_TIMEOUT,
    DEFAULT_POLICY,
    CacheControl,
    CacheKeyParts,
    CacheLock,
    CachePolicy,
    StoredResponse,
    cache_key,
    current_age,
    freshness_lifetime,
    secondary_key,
    storable,
)
from actorproxy.config import (
    DEFAULT_CACHE_KEEP_STALE,
    DEFAULT_CACHE_MEMORY_SIZE,
    CacheConf,
    parse_cache_key_part,
)
from actorproxy.http import RequestHeader, ResponseHeader
from actorproxy.store import BodyReader, BodyWriter, EntryKindError, Store, StoreError

from ._hottier import DEFAULT_HOT_ENTRY_MAX, HotEntry, HotTier
from ._httpcache import Cacheable, RespCacheable, Uncacheable

__all__ = [
    "DEFAULT_KEEP_STALE",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_NAMESPACE",
    "PURGE_TOKEN_HEADER",
    "WHOLE_BODY_MAX",
    "Fill",
    "Found",
    "ResponseCache",
]

logger = logging.getLogger("actorproxy.cache")

#: Where the cache's keys start in the store.
DEFAULT_NAMESPACE = "cache:"
#: Seconds a stale entry is kept for revalidation (nginx's `inactive`).
DEFAULT_KEEP_STALE = DEFAULT_CACHE_KEEP_STALE
#: Bytes of hot entries per cache.
DEFAULT_MEMORY_SIZE = DEFAULT_CACHE_MEMORY_SIZE
#: The largest body a fill keeps in memory to store in one step (a hot tier entry's largest).
WHOLE_BODY_MAX = DEFAULT_HOT_ENTRY_MAX
#: The header a PURGE request carries its token in (nginx Plus and Varnish leave the check to the operator).
PURGE_TOKEN_HEADER = "X-Purge-Token"
# Between a resource's key and a variant's secondary key: a request target never holds a line feed.
_VARIANT = "\n"
# The first byte of a Vary marker's meta; a response's meta is JSON, so it starts with "{".
_MARKER = b"V"
# `response_cache_filter`'s yes for a response whose own lifetime stands (a Cacheable is never changed).
_OWN_LIFETIME = Cacheable()


def _marker_meta(fields: tuple[str, ...]) -> bytes:
    return _MARKER + json.dumps(list(fields)).encode()


def _decode_meta(meta: bytes) -> StoredResponse | tuple[str, ...] | None:
    """A response head, a marker's Vary fields, or None for what the cache did not write."""
    try:
        if meta.startswith(_MARKER):
            return tuple(str(field) for field in json.loads(meta[1:]))
        return StoredResponse.from_bytes(meta)
    except (ValueError, TypeError):
        return None


class _Piece:
    """An async iterator over one piece of bytes (a hot body's range)."""

    def __init__(self, data: bytes) -> None:
        self._data: bytes | None = data or None

    def __aiter__(self) -> _Piece:
        return self

    async def __anext__(self) -> bytes:
        data, self._data = self._data, None
        if data is None:
            raise StopAsyncIteration
        return data


@attrs.define(eq=False)
class Found:
    """A stored response the cache found for a request: its head and its body (in memory or in the store).

    Attributes:
        stored: the response head and its times.
        size: the body's length in bytes.
        store_key: where it is in the store.
        meta: the store entry's meta, as stored.
        body: the whole body when it is in memory (the hot tier); None: read it with `reader`.
        reader: the store's reader of the body, when it is not in memory.
    """

    stored: StoredResponse
    size: int
    store_key: str
    meta: bytes
    body: bytes | None = None
    reader: BodyReader | None = None

    def chunks(self, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """The body's bytes from `start` to `end` (excluded), in pieces."""
        stop = self.size if end is None else end
        if self.body is not None:
            return _Piece(self.body[start:stop])
        assert self.reader is not None  # a Found holds its body or its reader
        return self.reader.chunks(start, stop)


class ResponseCache:
    """An HTTP cache (RFC 9111, shared) over a `Store`: the settings, the hot tier and the cache lock.

    Args:
        store: where entries live (opened by its background service, or `async with store`).
        namespace: where the cache's keys start in the store.
        policy: the choices RFC 9111 leaves to a cache (`CachePolicy`): heuristics, default stale windows.
        key: which parts of a request make its key (`CacheKeyParts`).
        default_ttl: seconds of freshness for a response that states no lifetime of its own (instead of the
            Last-Modified heuristic); None: RFC 9111's heuristic alone.
        max_size: the largest body stored, in bytes; None: the store's own cap only.
        lock_timeout: seconds a request waits for another one filling the same key.
        memory_size: bytes of small entries kept in memory (the hot tier); 0: none.
        keep_stale: seconds a stale entry stays stored for revalidation.
        purge_token: the token a `PURGE` request must carry in `X-Purge-Token`; None: PURGE is not
            special (it is proxied as any other method).
        clock: POSIX seconds, the store's clock.
    """

    def __init__(
        self,
        store: Store,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        policy: CachePolicy = DEFAULT_POLICY,
        key: CacheKeyParts = DEFAULT_KEY_PARTS,
        default_ttl: float | None = None,
        max_size: int | None = None,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        memory_size: int = DEFAULT_MEMORY_SIZE,
        keep_stale: float = DEFAULT_KEEP_STALE,
        purge_token: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.policy = policy
        self.key_parts = key
        self.default_ttl = default_ttl
        self.max_size = max_size
        self.lock = CacheLock(lock_timeout=lock_timeout)
        self.hot = HotTier(memory_size)
        self.keep_stale = keep_stale
        self.purge_token = purge_token
        self.clock = clock
        # `cacheable`'s answer for a response that states no lifetime (remade if `default_ttl` changes).
        self._default_lifetime = Cacheable(default_ttl)

    @classmethod
    def from_conf(
        cls,
        conf: CacheConf,
        store: Store,
        *,
        namespace: str = DEFAULT_NAMESPACE,
        clock: Callable[[], float] = time.time,
    ) -> ResponseCache:
        """The cache a route's `cache:` section describes, on `store`, its keys under `namespace`."""
        read = [parse_cache_key_part(part) for part in conf.key]
        parts = {part for part, _ in read}
        headers = tuple(name for part, name in read if part == "header")
        key = CacheKeyParts(
            method="method" in parts,
            scheme="scheme" in parts,
            host="host" in parts,
            path="path" in parts,
            query="query" in parts,
            headers=headers,
        )
        policy = CachePolicy(
            stale_while_revalidate=conf.stale_while_revalidate, stale_if_error=conf.stale_if_error
        )
        return cls(
            store,
            namespace=namespace,
            policy=policy,
            key=key,
            default_ttl=conf.default_ttl,
            max_size=conf.max_size,
            lock_timeout=conf.lock_timeout,
            memory_size=conf.memory_size,
            keep_stale=conf.keep_stale,
            purge_token=conf.purge_token,
            clock=clock,
        )

    def __repr__(self) -> str:
        return f"<ResponseCache {self.namespace!r} on {self.store!r}, {self.hot!r}>"

    # -- deciding --------------------------------------------------------------------------------------------

    def key_for(self, request: RequestHeader, scheme: str = "http") -> str:
        """The cache key of `request` (made of `key_parts`), as the client used `scheme`."""
        return cache_key(request, scheme=scheme, parts=self.key_parts)

    def cacheable(self, request: RequestHeader, response: ResponseHeader) -> RespCacheable:
        """Whether `response` may be stored, and its lifetime: RFC 9111 (`storable`), `max_size` by its
        Content-Length, and `default_ttl` for a response that states no lifetime."""
        if request.method == "HEAD":
            # A HEAD is filled with a GET (docs/cache.md): the answer is the GET's.
            request = request.copy()
            request.set_method("GET")
        verdict = storable(request, response, self.policy)
        if not verdict:
            return Uncacheable(verdict.reason)
        max_size = self.max_size
        if max_size:
            length = response.headers.get("content-length")
            if length is not None and length.isdigit() and int(length) > max_size:
                return Uncacheable(f"{length} bytes is more than max_size {max_size}")
        default_ttl = self.default_ttl
        if default_ttl is None:
            return _OWN_LIFETIME
        headers = response.headers
        stated = CacheControl.parse(headers).directives
        if "s-maxage" in stated or "max-age" in stated or "expires" in headers:
            return _OWN_LIFETIME
        default = self._default_lifetime
        if default.ttl != default_ttl:
            default = self._default_lifetime = Cacheable(default_ttl)
        return default

    def store_ttl(self, stored: StoredResponse, now: float) -> float:
        """Seconds the store keeps `stored`: what is left of its freshness, its stale windows and
        `keep_stale`."""
        policy = self.policy
        left = max(0.0, freshness_lifetime(stored, policy) - current_age(stored, now))
        directives = stored.cache_control
        if directives.directives:
            windows = (
                directives.stale_while_revalidate or policy.stale_while_revalidate or 0,
                directives.stale_if_error or policy.stale_if_error or 0,
            )
        else:  # most responses: the policy's windows alone
            windows = (policy.stale_while_revalidate or 0, policy.stale_if_error or 0)
        return left + max(windows) + self.keep_stale

    # -- reading ---------------------------------------------------------------------------------------------

    async def find(self, key: str, request: RequestHeader) -> Found | None:
        """The stored response for `key` and the variant `request` selects, or None.

        Raises:
            StoreError: the store failed.
        """
        primary = self.namespace + key
        found = await self._open(primary)
        if isinstance(found, tuple):
            secondary = secondary_key(found, request)
            if secondary is None:
                return None
            found = await self._open(primary + _VARIANT + secondary)
        return found if isinstance(found, Found) else None

    async def _open(self, store_key: str) -> Found | tuple[str, ...] | None:
        hot = self.hot.get(store_key)
        if hot is not None:
            hot = await self._confirm(store_key, hot)
            if hot is not None:
                return hot.vary if hot.stored is None else self._from_hot(store_key, hot)
        try:
            reader = await self.store.open_reader(store_key)
        except EntryKindError:
            return None  # a value someone else put under the cache's key
        if reader is None:
            return None
        decoded = _decode_meta(reader.meta)
        if decoded is None:
            return None
        head = reader.head
        if self.hot.fits(reader.size):
            body = await reader.read()
            stored = decoded if isinstance(decoded, StoredResponse) else None
            vary = decoded if isinstance(decoded, tuple) else None
            entry = HotEntry(reader.meta, stored, vary, body, head.expires_at, self.clock())
            self.hot.put(store_key, entry)
            return vary if stored is None else self._from_hot(store_key, entry)
        if isinstance(decoded, tuple):
            return decoded
        return Found(decoded, reader.size, store_key, reader.meta, reader=reader)

    async def _confirm(self, store_key: str, hot: HotEntry) -> HotEntry | None:
        """`hot` if it may still be used, after asking the store when it is due (see `_hottier`)."""
        now = self.clock()
        if hot.expires_at is not None and hot.expires_at <= now:
            self.hot.drop(store_key)
            return None
        if now - hot.checked_at < self.hot.recheck_interval:
            return hot
        try:
            head = await self.store.head(store_key)
        except EntryKindError:
            head = None
        if head is None or head.meta != hot.meta:
            self.hot.drop(store_key)
            return None
        hot.checked_at = now
        hot.expires_at = head.expires_at
        return hot

    @staticmethod
    def _from_hot(store_key: str, hot: HotEntry) -> Found:
        assert hot.stored is not None  # a response, not a marker
        return Found(hot.stored, len(hot.body), store_key, hot.meta, body=hot.body)

    # -- writing ---------------------------------------------------------------------------------------------

    def open_fill(self, key: str, request: RequestHeader, stored: StoredResponse) -> Fill:
        """Start storing the response `stored` (to `request`) under `key`; its body follows by `Fill.write`
        and `Fill.commit` (nothing reaches the store before the body passes `WHOLE_BODY_MAX` bytes)."""
        primary = self.namespace + key
        store_key = primary
        fields: tuple[str, ...] = ()
        if stored.vary:
            fields = tuple(name for name, _ in stored.vary)
            store_key = primary + _VARIANT + (secondary_key(fields, request) or "")
        ttl = self.store_ttl(stored, self.clock())
        return Fill(self, primary=primary, store_key=store_key, stored=stored, vary=fields, ttl=ttl)

    async def refresh(self, found: Found, stored: StoredResponse) -> None:
        """Store `stored` (a freshened head, RFC 9111 §4.3.4) over `found`'s, with the same body.

        Raises:
            StoreError: the store failed.
        """
        meta = stored.to_bytes()
        ttl = self.store_ttl(stored, self.clock())
        if found.body is not None:
            await self.store.put_body(found.store_key, found.body, ttl, meta=meta)
            now = self.clock()
            self.hot.put(found.store_key, HotEntry(meta, stored, None, found.body, now + ttl, now))
            return
        async with self.store.open_writer(found.store_key, ttl, meta=meta) as writer:
            async for piece in found.chunks():
                await writer.write(piece)
            await writer.commit()
        self.hot.drop(found.store_key)

    # -- purging ---------------------------------------------------------------------------------------------

    async def purge(self, key: str) -> int:
        """Remove the response stored for `key`, all its variants included; return how many entries went."""
        primary = self.namespace + key
        removed = int(await self.store.forget(primary))
        removed += await self.store.prefixed(primary + _VARIANT).flush()
        self.hot.drop(primary)
        self.hot.drop_prefix(primary + _VARIANT)
        return removed

    async def purge_prefix(self, prefix: str) -> int:
        """Remove every response whose key starts with `prefix`; return how many entries went."""
        full = self.namespace + prefix
        removed = await self.store.prefixed(full).flush()
        self.hot.drop_prefix(full)
        return removed

    async def invalidate(self, keys: Iterable[str]) -> None:
        """Purge `keys` (RFC 9111 §4.4: what an unsafe request changed)."""
        for key in keys:
            await self.purge(key)


class Fill:
    """A response being written to the store as it streams; nothing is visible before `commit`.

    Made by `ResponseCache.open_fill`. The first `WHOLE_BODY_MAX` bytes are kept in memory: a body that
    ends within them is stored in one step (`Store.put_body`, one call to the backend); a larger one is
    written through a `BodyWriter` from then on, chunk by chunk, never held whole. A body that grows past
    the cache's `max_size`, or a store that fails, ends the fill (`failed` says why) and the response goes
    on to the client unstored.
    """

    def __init__(
        self,
        cache: ResponseCache,
        *,
        primary: str,
        store_key: str,
        stored: StoredResponse,
        vary: tuple[str, ...],
        ttl: float,
    ) -> None:
        self.cache = cache
        self.primary = primary
        self.store_key = store_key
        self.stored = stored
        self.vary = vary
        self.ttl = ttl
        self.meta = stored.to_bytes()
        self.size = 0
        #: Why the fill stopped without storing; None while it may still commit.
        self.failed: str | None = None
        self.committed = False
        self._writer: BodyWriter | None = None
        # The body while it is small enough to be stored in one step; None once it is streamed.
        self._pieces: list[bytes] | None = []

    def __repr__(self) -> str:
        state = "committed" if self.committed else f"failed: {self.failed}" if self.failed else "open"
        return f"<Fill {self.store_key!r} {self.size} bytes {state}>"

    async def write(self, data: bytes | None) -> None:
        """Add `data` to the body (None or b"" adds nothing)."""
        if not data or self.failed is not None or self.committed:
            return
        self.size += len(data)
        cap = self.cache.max_size
        if cap is not None and self.size > cap:
            await self.abort(f"the body is more than max_size {cap} bytes")
            return
        try:
            pieces = self._pieces
            if pieces is None:
                assert self._writer is not None  # streaming
                await self._writer.write(data)
                return
            pieces.append(data)
            if self.size > WHOLE_BODY_MAX:
                await self._stream(pieces)
        except StoreError as exc:
            logger.warning("cache: writing %r failed, the response is not stored: %s", self.store_key, exc)
            await self.abort(f"the store failed: {exc}")

    async def _stream(self, pieces: list[bytes]) -> None:
        """Go on through a writer: the body is too large to keep in memory until its end."""
        writer = self.cache.store.open_writer(self.store_key, self.ttl, meta=self.meta)
        await writer.__aenter__()
        self._writer = writer
        self._pieces = None
        for piece in pieces:
            await writer.write(piece)

    async def commit(self) -> bool:
        """Make the response the key's (and its marker, for a Vary); return whether it was stored."""
        if self.failed is not None or self.committed:
            return False
        cache = self.cache
        pieces = self._pieces
        body = None if pieces is None else b"".join(pieces)
        try:
            if body is not None:
                await cache.store.put_body(self.store_key, body, self.ttl, meta=self.meta)
            else:
                assert self._writer is not None  # streaming
                await self._writer.commit()
            if self.vary:
                marker = _marker_meta(self.vary)
                await cache.store.put_body(self.primary, b"", self.ttl, meta=marker)
                cache.hot.put(self.primary, HotEntry(marker, None, self.vary, b"", None, cache.clock()))
        except StoreError as exc:
            logger.warning("cache: storing %r failed: %s", self.store_key, exc)
            await self.abort(f"the store failed: {exc}")
            return False
        self.committed = True
        self._writer = None
        now = cache.clock()
        if body is not None:
            cache.hot.put(self.store_key, HotEntry(self.meta, self.stored, None, body, now + self.ttl, now))
        else:
            cache.hot.drop(self.store_key)
        return True

    async def abort(self, reason: str = "aborted") -> None:
        """Drop what was written (idempotent): the key keeps what it held."""
        if self.failed is None and not self.committed:
            self.failed = reason
        self._pieces = None
        writer, self._writer = self._writer, None
        if writer is not None:
            await writer.abort()  # shielded and bounded by the store (BodyWriter.abort)
