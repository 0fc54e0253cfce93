"""The store's errors: one base, `StoreError`, and the few cases a caller may want to tell apart."""

from __future__ import annotations

from actors import ActorProxyError

__all__ = [
    "BodyGone",
    "EntryKindError",
    "EntryTooLarge",
    "NotAnInteger",
    "StoreClosed",
    "StoreError",
    "StoreUnavailable",
    "WriterAbandoned",
]


class StoreError(ActorProxyError):
    """A store operation failed; the message names the key or the backend."""


class StoreUnavailable(StoreError):
    """The backend cannot be reached in time: Redis down or slow, the SQLite file locked past its busy
    timeout. The cause is the backend's own exception."""


class StoreClosed(StoreError):
    """The store is not open: it is used before `async with store` (or its background service) opened it,
    after it closed, or in a process it was not opened in (open it after a fork)."""


class EntryKindError(StoreError):
    """A key holds a streamed body where a value was asked for, or the other way round."""


class NotAnInteger(StoreError):
    """`increment` / `decrement` on a value that is not an integer."""


class EntryTooLarge(StoreError):
    """One entry is larger than the store's `max_size`: it could never be kept."""


class BodyGone(StoreError):
    """A body being read was removed under the reader (gone past its grace period, or evicted by Redis)."""


class WriterAbandoned(StoreError):
    """A body being written was taken for abandoned (no write for `writer_timeout`) and removed."""
