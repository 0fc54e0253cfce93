"""`HotTier`: small complete cache entries kept in this process's memory, so a hot hit reads no store.

Rules:
- An entry is a store entry's meta and whole body (a response, or a Vary marker), kept under its store key.
  Only bodies of at most `max_entry` bytes are kept; the tier holds at most `max_size` bytes of bodies and
  metas, the least recently used going first.
- The tier is a copy, never the truth: the store is. An entry is trusted for `recheck_interval` seconds
  after the store last confirmed it (`checked_at`); then the cache asks the store again (a head read), so a
  purge or an invalidation made by another worker process is seen within that time. An entry past its
  store expiry is dropped when met.
- Everything is synchronous (one trio thread): no lock.
"""

from __future__ import annotations

from collections import OrderedDict

import attrs

from actorproxy.cache import StoredResponse

__all__ = ["DEFAULT_HOT_ENTRY_MAX", "DEFAULT_HOT_RECHECK_INTERVAL", "HotEntry", "HotTier"]

# The store's default chunk (64 KiB, the proxy's read size) and a little more: a body served from the tier
# goes out in one write, and the benchmarks' "64 KiB" response fits.
DEFAULT_HOT_ENTRY_MAX = 64 * 1024 + 4096
# One second: how stale another worker's purge may look here, against one store read per hot key per second.
DEFAULT_HOT_RECHECK_INTERVAL = 1.0


@attrs.define(eq=False)
class HotEntry:
    """One store entry in memory.

    Attributes:
        meta: the store entry's meta, as stored (compared with the store's on a recheck).
        stored: the response head, or None for a Vary marker.
        vary: the Vary fields a marker names; None for a response.
        body: the whole body.
        expires_at: when the store entry expires (the store's clock); None: never.
        checked_at: when the store last confirmed the entry (the cache's clock).
    """

    meta: bytes
    stored: StoredResponse | None
    vary: tuple[str, ...] | None
    body: bytes
    expires_at: float | None
    checked_at: float

    @property
    def size(self) -> int:
        return len(self.meta) + len(self.body)


class HotTier:
    """A bounded, least-recently-used map of store key to `HotEntry`.

    Args:
        max_size: bytes of metas and bodies kept at most; 0 turns the tier off.
        max_entry: the largest body kept.
        recheck_interval: seconds an entry is trusted after the store confirmed it.
    """

    def __init__(
        self,
        max_size: int,
        *,
        max_entry: int = DEFAULT_HOT_ENTRY_MAX,
        recheck_interval: float = DEFAULT_HOT_RECHECK_INTERVAL,
    ) -> None:
        self.max_size = max_size
        self.max_entry = max_entry
        self.recheck_interval = recheck_interval
        self._entries: OrderedDict[str, HotEntry] = OrderedDict()
        self._size = 0

    def __repr__(self) -> str:
        return f"<HotTier {len(self._entries)} entries, {self._size} of {self.max_size} bytes>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        """Bytes held now."""
        return self._size

    def fits(self, body_size: int) -> bool:
        """Whether a body of `body_size` bytes may be kept."""
        return body_size <= self.max_entry and self.max_size > 0

    def get(self, key: str) -> HotEntry | None:
        """The entry under `key` (now the most recently used), or None."""
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
        return entry

    def put(self, key: str, entry: HotEntry) -> None:
        """Keep `entry` under `key` (if it fits), replacing what was there; evict the least recently used."""
        entries = self._entries
        old = entries.pop(key, None)
        if old is not None:
            self._size -= old.size
        size = entry.size
        if not self.fits(len(entry.body)) or size > self.max_size:
            return
        entries[key] = entry
        self._size += size
        while self._size > self.max_size:
            _, oldest = self._entries.popitem(last=False)
            self._size -= oldest.size

    def drop(self, key: str) -> None:
        """Forget `key`."""
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._size -= entry.size

    def drop_prefix(self, prefix: str) -> int:
        """Forget every key that starts with `prefix`; return how many."""
        doomed = [key for key in self._entries if key.startswith(prefix)]
        for key in doomed:
            self.drop(key)
        return len(doomed)
