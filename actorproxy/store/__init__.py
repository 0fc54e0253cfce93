"""The embedded store: Laravel Cache's verbs over SQLite (the default), memory or Redis, with streamed
bodies for the HTTP cache. docs/store.md has the API, the backends, the serialisation and the guarantees.

    store = Store.from_conf(server.configuration.store, redis=server.configuration.redis)
    bg = background_service("store", store)      # opened in each worker process; sweeps expired entries
    server.add_service(bg)
    ... MyApp(bg.task()) ...                     # a ProxyHttp application keeps the store and uses it
"""

from ._backend import Backend, BackendStatistics, BodyHead, BodySink, BodySource
from ._body import ABORT_TIMEOUT, BodyReader, BodyWriter
from ._codec import TAG_BYTES, TAG_JSON, Codec
from ._command import store_command
from ._errors import (
    BodyGone,
    EntryKindError,
    EntryTooLarge,
    NotAnInteger,
    StoreClosed,
    StoreError,
    StoreUnavailable,
    WriterAbandoned,
)
from ._memory import MemoryBackend
from ._redis import RedisBackend
from ._sqlite import SqliteBackend
from ._store import Store, StoreStatistics, backend_from_conf

__all__ = [
    "ABORT_TIMEOUT",
    "TAG_BYTES",
    "TAG_JSON",
    "Backend",
    "BackendStatistics",
    "BodyGone",
    "BodyHead",
    "BodyReader",
    "BodySink",
    "BodySource",
    "BodyWriter",
    "Codec",
    "EntryKindError",
    "EntryTooLarge",
    "MemoryBackend",
    "NotAnInteger",
    "RedisBackend",
    "SqliteBackend",
    "Store",
    "StoreClosed",
    "StoreError",
    "StoreStatistics",
    "StoreUnavailable",
    "WriterAbandoned",
    "backend_from_conf",
    "store_command",
]
