"""`StoreConf`: the embedded store (`actorproxy.store`), the top-level `store:` section.

Rules:
- `backend` picks where entries live: `sqlite` (one file, the default), `memory` (this process only) or
  `redis` (the top-level `redis:` section, shared with the other features that use Redis).
- `path` is the SQLite file and is required with, and only used by, `backend: sqlite`.
- The caps (`max_size`, `max_entries`) evict the least recently used entries; Redis evicts by its own
  `maxmemory` policy, so they are not used with `backend: redis`.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

import attrs

from ._checks import at_least, check_class, doc
from ._rules import PATH, POSITIVE, choice

__all__ = [
    "DEFAULT_STORE_BODY_GRACE_PERIOD",
    "DEFAULT_STORE_BUSY_TIMEOUT",
    "DEFAULT_STORE_CHUNK_SIZE",
    "DEFAULT_STORE_MEMORY_MAX_SIZE",
    "DEFAULT_STORE_SWEEP_INTERVAL",
    "DEFAULT_STORE_WRITER_TIMEOUT",
    "StoreBackendName",
    "StoreConf",
]

#: Where the store keeps its entries.
StoreBackendName = Literal["sqlite", "memory", "redis"]

# Expired entries are invisible at once; sweeping only gives their space back, so once a minute is plenty.
DEFAULT_STORE_SWEEP_INTERVAL = 60.0
# How long a call waits for another process's write lock on the SQLite file before it fails (SQLITE_BUSY).
DEFAULT_STORE_BUSY_TIMEOUT = 5.0
# 64 KiB: the proxy's read size (docs/architecture.md), so one body chunk read from a socket is one row.
DEFAULT_STORE_CHUNK_SIZE = 64 * 1024
# A body replaced, evicted or forgotten stays readable this long, so readers already streaming it finish.
DEFAULT_STORE_BODY_GRACE_PERIOD = 60.0
# A body being written with no write for this long is taken for abandoned (its process died) and removed.
DEFAULT_STORE_WRITER_TIMEOUT = 600.0
# The memory backend keeps everything in the process: bound it by default (64 MiB).
DEFAULT_STORE_MEMORY_MAX_SIZE = 64 * 1024 * 1024


@attrs.frozen(kw_only=True)
class StoreConf:
    """The embedded key-value and body store: which backend, where, and how large it may grow."""

    backend: StoreBackendName = attrs.field(
        default="sqlite",
        validator=choice(StoreBackendName),
        metadata=doc(
            "sqlite (one file, shared by the worker processes), memory (this process only), or redis (the"
            " top-level redis section)."
        ),
    )
    path: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc("The SQLite file (created if missing); required with backend sqlite."),
    )
    max_size: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc(
            "Bytes of keys, values and bodies kept at most; the least recently used entries are evicted"
            f" past it. null: no cap for sqlite, {DEFAULT_STORE_MEMORY_MAX_SIZE} for memory."
        ),
    )
    max_entries: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Entries kept at most (least recently used evicted first); null: no cap."),
    )
    sweep_interval: float = attrs.field(
        default=DEFAULT_STORE_SWEEP_INTERVAL,
        validator=POSITIVE,
        metadata=doc("Seconds between sweeps that remove expired entries and abandoned bodies."),
    )
    busy_timeout: float = attrs.field(
        default=DEFAULT_STORE_BUSY_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("sqlite: seconds a call waits for another process's write to finish."),
    )
    chunk_size: int = attrs.field(
        default=DEFAULT_STORE_CHUNK_SIZE,
        validator=at_least(1024),
        metadata=doc("Bytes per stored piece of a streamed body (sqlite rows, redis list items)."),
    )
    body_grace_period: float = attrs.field(
        default=DEFAULT_STORE_BODY_GRACE_PERIOD,
        validator=POSITIVE,
        metadata=doc("Seconds a replaced, evicted or forgotten body stays readable for readers on it."),
    )
    writer_timeout: float = attrs.field(
        default=DEFAULT_STORE_WRITER_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds a body being written may go without a write before it counts as abandoned."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.backend == "sqlite" and self.path is None:
            yield "path", "required with backend sqlite"
        elif self.backend != "sqlite" and self.path is not None:
            yield "path", f"only used with backend sqlite, not {self.backend}"
        if self.backend == "redis":
            for name in ("max_size", "max_entries"):
                if getattr(self, name) is not None:
                    yield name, "not used with backend redis (Redis evicts by its own maxmemory policy)"


attrs.resolve_types(StoreConf)
