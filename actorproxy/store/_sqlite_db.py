"""`Database`: the SQLite store's blocking half, every method one call run in a worker thread.

Rules:
- One connection per process, in autocommit mode; every change runs in `BEGIN IMMEDIATE` ... `COMMIT`,
  so a transaction takes the file's write lock up front (waiting up to the busy timeout for another
  process) and never fails half way from a lock upgrade. Reads are single statements: WAL gives them a
  consistent snapshot without a lock.
- Opening puts the file in WAL mode. Processes opening a new file at once (the workers of `threads: N`)
  wait for each other's switch, up to the busy timeout, instead of failing (`_switch_to_wal`).
- The methods never read a clock: `now` comes from the caller, on the trio thread, so tests can run the
  store on virtual time.
- The caps are enforced inside the transaction that grows the store: expired entries go first, then the
  least recently used, never the entry just written. An entry larger than `max_size` is refused.
- With a cap, a hit refreshes the entry's `used_at` at most once per `LRU_RESOLUTION`, so a hot key does
  not turn every read into a write; with no cap, reads never write.
- A second connection per process (`connect_reader`) only reads (`query_only`), with a busy timeout of 0:
  in WAL mode a reader never waits for a writer, so a point read on it (`find_body`) runs on the trio
  thread; the rare SQLITE_BUSY (another connection recovering the WAL, an exclusive lock) is the caller's
  to retry on the writing connection, in a thread.
- `put_bodies` writes several whole bodies (queued by the backend, `QueuedBody`) and use-time refreshes in
  one transaction: all of them or none.
"""

from __future__ import annotations

import functools
import os
import sqlite3
from collections.abc import Collection, Iterator, Sequence
from contextlib import contextmanager

import attrs

from ._backend import BackendStatistics, BodyHead
from ._codec import decode_int, encode_int
from ._errors import EntryKindError, EntryTooLarge, StoreError, WriterAbandoned
from ._sqlite_schema import SCHEMA, SCHEMA_VERSION, UPSERT

__all__ = ["LRU_RESOLUTION", "ROWS_PER_STATEMENT", "Database", "Limits", "QueuedBody", "connect_reader"]

# Seconds within which two uses of an entry count as one for LRU order (a read writes at most this often).
LRU_RESOLUTION = 1.0
# Rows one sweep transaction deletes at most, so the write lock is never held long.
SWEEP_BATCH = 500
# Tries of the switch to WAL mode when another connection holds the write lock (`_switch_to_wal`): the
# second finds the file switched by the other process; a third allows for a writer not of the store.
WAL_SWITCH_ATTEMPTS = 3

_LIVE = "(expires_at IS NULL OR expires_at > ?)"
# Prepared statements a connection keeps: the batch INSERTs of every row count, and the others.
CACHED_STATEMENTS = 512
# Rows one INSERT of a batch writes at most: 6 values a row stay under SQLite's oldest limit of 999
# parameters a statement.
ROWS_PER_STATEMENT = 100
# The batch's INSERTs: (head, one row's placeholders, tail).
_BODY_ROWS = (
    "INSERT INTO bodies (id, state, meta, size, chunk_size, pid, since) VALUES ",
    "(?, 'live', ?, ?, ?, ?, ?)",
    "",
)
_CHUNK_ROWS = ("INSERT INTO chunks (body, seq, data) VALUES ", "(?, ?, ?)", "")
# (The entries' is UPSERT, around its one row.)
_ENTRY_ROWS = UPSERT.partition("(?, ?, ?, ?, ?, ?)")


@functools.lru_cache(maxsize=2 * ROWS_PER_STATEMENT)
def _rows_statement(head: str, row: str, tail: str, count: int) -> str:
    return head + ", ".join([row] * count) + tail


class Limits:
    """The caps and periods a `Database` enforces (plain attributes; see `StoreConf` for each)."""

    def __init__(
        self,
        *,
        max_size: int | None,
        max_entries: int | None,
        chunk_size: int,
        body_grace_period: float,
        writer_timeout: float,
    ) -> None:
        self.max_size = max_size
        self.max_entries = max_entries
        self.chunk_size = chunk_size
        self.body_grace_period = body_grace_period
        self.writer_timeout = writer_timeout

    @property
    def capped(self) -> bool:
        """Whether any cap is set (and so whether use order must be kept)."""
        return self.max_size is not None or self.max_entries is not None


def connect(path: str, busy_timeout: float) -> sqlite3.Connection:
    """Open (creating if needed) the store file at `path`, in WAL mode, with the schema.

    Raises:
        StoreError: the file is not a store (another schema version, or not SQLite).
    """
    conn = sqlite3.connect(
        path,
        timeout=busy_timeout,
        isolation_level=None,
        check_same_thread=False,
        cached_statements=CACHED_STATEMENTS,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        mode = _switch_to_wal(conn)
        if mode != "wal":
            raise StoreError(f"{path}: cannot use WAL mode (journal_mode is {mode})")
        conn.execute("PRAGMA synchronous = NORMAL")
        with _transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise StoreError(f"{path}: store schema version {version}, expected {SCHEMA_VERSION}")
            for statement in _statements(SCHEMA):
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        conn.close()
        raise
    return conn


def _switch_to_wal(conn: sqlite3.Connection) -> str:
    """Put the file of `conn` in WAL mode (a no-op when it is already); return its journal mode.

    Switching a file that is not in WAL mode yet (a new one) reads its header under a read lock, then takes
    the write lock to change it, and SQLite does not wait for a lock it upgrades so: when another
    connection holds the write lock at that moment (another process switching the same new file, as the
    workers of `threads: N` do when they open the store together), the switch fails at once with
    SQLITE_BUSY, whatever the busy timeout. Then `BEGIN IMMEDIATE`, which does wait (up to the busy
    timeout), waits for that write to end, and the switch is tried again: the other process has switched
    the file by then, so there is nothing left to write.
    """
    for _ in range(WAL_SWITCH_ATTEMPTS - 1):
        try:
            return _journal_mode_wal(conn)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                raise
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    return _journal_mode_wal(conn)


def _journal_mode_wal(conn: sqlite3.Connection) -> str:
    mode: str = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
    return mode


def connect_reader(path: str) -> sqlite3.Connection:
    """A read-only connection to the store file at `path` (opened by `connect` first), which never waits
    for a lock: its busy timeout is 0."""
    conn = sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA query_only = 1")
    except BaseException:
        conn.close()
        raise
    return conn


@attrs.frozen
class QueuedBody:
    """A whole body waiting to be written (`Database.put_bodies`).

    Attributes:
        key: its key.
        meta: its meta.
        chunks: its bytes, `chunk_size` per chunk but the last.
        size: its length in bytes.
        expires_at: when it expires (the store's clock); None: never.
        now: when it was written (its first use time).
    """

    key: str
    meta: bytes
    chunks: tuple[bytes, ...]
    size: int
    expires_at: float | None
    now: float

    def entry_size(self) -> int:
        """The bytes the size cap counts for it."""
        return _size(self.key, len(self.meta), self.size)


def _statements(script: str) -> Iterator[str]:
    """The statements of `script` (a trigger's body holds semicolons of its own, so SQLite says where
    each statement ends)."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _size(key: str, *parts: int) -> int:
    return len(key.encode()) + sum(parts)


def _prefix_range(prefix: str) -> tuple[str, str] | None:
    """Bounds [low, high) of the keys starting with `prefix`, or None when they cannot be written so."""
    last = ord(prefix[-1]) + 1
    if 0xD800 <= last <= 0xDFFF or last > 0x10FFFF:
        return None
    return prefix, prefix[:-1] + chr(last)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user
        return True
    return True


class Database:
    """The store file's operations, blocking; each method is one call from the trio thread.

    Args:
        conn: the connection (from `connect`).
        limits: caps and periods.
    """

    def __init__(self, conn: sqlite3.Connection, limits: Limits) -> None:
        self.conn = conn
        self.limits = limits
        self.pid = os.getpid()
        #: Bodies this process is writing now: a `writing` row of this pid not in here is an orphan.
        self.writing: set[int] = set()

    def close(self) -> None:
        self.conn.close()

    # -- values ----------------------------------------------------------------------------------------------

    def _row(self, key: str, now: float) -> tuple[bytes | None, int | None, float | None] | None:
        row = self.conn.execute(
            f"SELECT value, body, used_at FROM entries WHERE key = ? AND {_LIVE}", (key, now)
        ).fetchone()
        if row is None:
            return None
        if self.limits.capped and row[2] < now - LRU_RESOLUTION:
            self.conn.execute("UPDATE entries SET used_at = ? WHERE key = ?", (now, key))
        return row[0], row[1], row[2]

    def get(self, key: str, now: float) -> bytes | None:
        row = self._row(key, now)
        return None if row is None else _value(key, row[0])

    def get_many(self, keys: Sequence[str], now: float) -> list[bytes | None]:
        return [self.get(key, now) for key in keys]

    def put_many(self, items: Sequence[tuple[str, bytes]], expires_at: float | None, now: float) -> None:
        with _transaction(self.conn):
            for key, value in items:
                self._upsert(key, value, None, _size(key, len(value)), expires_at=expires_at, now=now)
            self._evict(now, keep={key for key, _ in items})

    def add(self, key: str, value: bytes, expires_at: float | None, now: float) -> bool:
        with _transaction(self.conn):
            if self._live(key, now):
                return False
            self._upsert(key, value, None, _size(key, len(value)), expires_at=expires_at, now=now)
            self._evict(now, keep={key})
        return True

    def has(self, key: str, now: float) -> bool:
        return self._live(key, now)

    def _live(self, key: str, now: float) -> bool:
        found = self.conn.execute(f"SELECT 1 FROM entries WHERE key = ? AND {_LIVE}", (key, now)).fetchone()
        return found is not None

    def forget(self, key: str, now: float) -> bool:
        with _transaction(self.conn):
            live = self._live(key, now)
            self.conn.execute("DELETE FROM entries WHERE key = ?", (key,))
        return live

    def pull(self, key: str, now: float) -> bytes | None:
        with _transaction(self.conn):
            row = self._row(key, now)
            if row is None:
                return None
            value = _value(key, row[0])
            self.conn.execute("DELETE FROM entries WHERE key = ?", (key,))
        return value

    def increment(self, key: str, by: int, now: float) -> int:
        with _transaction(self.conn):
            row = self.conn.execute(
                f"SELECT value, expires_at FROM entries WHERE key = ? AND {_LIVE}", (key, now)
            ).fetchone()
            raw = None if row is None else _value(key, row[0])
            value = decode_int(raw, key) + by
            stored = encode_int(value)
            expires_at = None if row is None else row[1]
            self._upsert(key, stored, None, _size(key, len(stored)), expires_at=expires_at, now=now)
            self._evict(now, keep={key})
        return value

    def flush(self, prefix: str) -> int:
        bounds = _prefix_range(prefix) if prefix else None
        with _transaction(self.conn):
            if not prefix:
                cursor = self.conn.execute("DELETE FROM entries")
            elif bounds is not None:
                cursor = self.conn.execute("DELETE FROM entries WHERE key >= ? AND key < ?", bounds)
            else:
                cursor = self.conn.execute(
                    "DELETE FROM entries WHERE substr(key, 1, ?) = ?", (len(prefix), prefix)
                )
        return cursor.rowcount

    def statistics(self) -> BackendStatistics:
        totals = dict(self.conn.execute("SELECT name, value FROM totals").fetchall())
        return BackendStatistics(
            entries=totals["entries"], size=totals["size"], evictions=totals["evictions"]
        )

    # -- inside a transaction --------------------------------------------------------------------------------

    def _upsert(
        self,
        key: str,
        value: bytes | None,
        body: int | None,
        size: int,
        *,
        expires_at: float | None,
        now: float,
    ) -> None:
        cap = self.limits.max_size
        if cap is not None and size > cap:
            raise EntryTooLarge(f"{key!r}: {size} bytes is more than max_size {cap}")
        self.conn.execute(UPSERT, (key, value, body, size, expires_at, now))

    def _over(self) -> bool:
        limits = self.limits
        entries, size = (
            self.conn.execute("SELECT value FROM totals WHERE name = ?", (name,)).fetchone()[0]
            for name in ("entries", "size")
        )
        return (limits.max_size is not None and size > limits.max_size) or (
            limits.max_entries is not None and entries > limits.max_entries
        )

    def _evict(self, now: float, keep: set[str]) -> None:
        if not self.limits.capped or not self._over():
            return
        self.conn.execute("DELETE FROM entries WHERE expires_at <= ?", (now,))
        evicted = 0
        while self._over():
            victims = [
                key
                for (key,) in self.conn.execute("SELECT key FROM entries ORDER BY used_at LIMIT 16")
                if key not in keep
            ]
            if not victims:
                break
            for key in victims:
                self.conn.execute("DELETE FROM entries WHERE key = ?", (key,))
                evicted += 1
                if not self._over():
                    break
        self.conn.execute("UPDATE totals SET value = value + ? WHERE name = 'evictions'", (evicted,))

    # -- bodies ----------------------------------------------------------------------------------------------

    def begin_body(self, meta: bytes, now: float) -> int:
        with _transaction(self.conn):
            cursor = self.conn.execute(
                "INSERT INTO bodies (state, meta, size, chunk_size, pid, since)"
                " VALUES ('writing', ?, 0, ?, ?, ?)",
                (meta, self.limits.chunk_size, self.pid, now),
            )
        body = cursor.lastrowid
        assert body is not None
        self.writing.add(body)
        return body

    def _still_writing(self, body: int, now: float) -> None:
        cursor = self.conn.execute(
            "UPDATE bodies SET since = ? WHERE id = ? AND state = 'writing'", (now, body)
        )
        if cursor.rowcount == 0:
            raise WriterAbandoned(f"body {body} was removed while it was written (writer_timeout)")

    def write_chunk(self, body: int, seq: int, data: bytes, now: float) -> None:
        with _transaction(self.conn):
            self._still_writing(body, now)
            self.conn.execute("INSERT INTO chunks (body, seq, data) VALUES (?, ?, ?)", (body, seq, data))

    def commit_body(
        self, body: int, key: str, meta: bytes, size: int, *, expires_at: float | None, now: float
    ) -> None:
        with _transaction(self.conn):
            self._still_writing(body, now)
            self.conn.execute("UPDATE bodies SET state = 'live', size = ? WHERE id = ?", (size, body))
            self._upsert(key, None, body, _size(key, len(meta), size), expires_at=expires_at, now=now)
            self._evict(now, keep={key})
        self.writing.discard(body)

    def put_bodies(self, bodies: Sequence[QueuedBody], touches: Collection[str], now: float) -> None:
        """Whole bodies and their entries, and the use time `now` of the keys `touches`, in one
        transaction (a later body of a key replaces an earlier one).

        Raises:
            EntryTooLarge: an entry is larger than `max_size` (nothing is written).
        """
        cap = self.limits.max_size
        for queued in bodies:
            if cap is not None and queued.entry_size() > cap:
                raise EntryTooLarge(
                    f"{queued.key!r}: {queued.entry_size()} bytes is more than max_size {cap}"
                )
        with _transaction(self.conn):
            if bodies:
                # The ids are given here, after the last one AUTOINCREMENT handed out (the write lock is
                # held), so that each table takes its rows in one statement.
                (last,) = self.conn.execute(
                    "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'bodies'), 0)"
                ).fetchone()
                chunk_size, pid = self.limits.chunk_size, self.pid
                ids = range(last + 1, last + 1 + len(bodies))
                pairs = list(zip(ids, bodies, strict=True))
                self._insert_rows(
                    _BODY_ROWS, [(body, q.meta, q.size, chunk_size, pid, q.now) for body, q in pairs]
                )
                self._insert_rows(
                    _CHUNK_ROWS, [(body, seq, data) for body, q in pairs for seq, data in enumerate(q.chunks)]
                )
                self._insert_rows(
                    _ENTRY_ROWS,
                    [(q.key, None, body, q.entry_size(), q.expires_at, q.now) for body, q in pairs],
                )
            touched = list(touches)
            for start in range(0, len(touched), ROWS_PER_STATEMENT):
                keys = touched[start : start + ROWS_PER_STATEMENT]
                marks = ", ".join("?" * len(keys))
                self.conn.execute(f"UPDATE entries SET used_at = ? WHERE key IN ({marks})", (now, *keys))
            self._evict(now, keep={queued.key for queued in bodies})

    def _insert_rows(self, statement: tuple[str, str, str], rows: Sequence[tuple[object, ...]]) -> None:
        """Insert `rows` with `statement` (head, one row's placeholders, tail), `ROWS_PER_STATEMENT` rows per
        statement: one step of SQLite for many rows (a step releases and takes back the GIL)."""
        for start in range(0, len(rows), ROWS_PER_STATEMENT):
            part = rows[start : start + ROWS_PER_STATEMENT]
            self.conn.execute(
                _rows_statement(*statement, len(part)), [value for row in part for value in row]
            )

    def abort_body(self, body: int) -> None:
        self.writing.discard(body)
        self._drop_bodies([body])

    def _drop_bodies(self, bodies: Sequence[int]) -> None:
        for body in bodies:
            with _transaction(self.conn):
                self.conn.execute("DELETE FROM chunks WHERE body = ?", (body,))
                self.conn.execute("DELETE FROM bodies WHERE id = ?", (body,))

    def find_body(self, key: str, now: float) -> tuple[int, BodyHead, bool] | None:
        """The body under `key`: its id, its head, and whether its use time is due a refresh (a cap is set
        and it was last used more than `LRU_RESOLUTION` ago). Reads only.

        Raises:
            EntryKindError: the key holds a value.
        """
        row = self.conn.execute(
            "SELECT e.value IS NOT NULL, e.body, e.expires_at, e.used_at, b.meta, b.size, b.chunk_size"
            f" FROM entries AS e LEFT JOIN bodies AS b ON b.id = e.body WHERE e.key = ? AND {_LIVE}",
            (key, now),
        ).fetchone()
        if row is None:
            return None
        is_value, body, expires_at, used_at, meta, size, chunk_size = row
        if is_value:
            raise EntryKindError(f"{key!r} holds a value, not a streamed body; read it with get")
        head = BodyHead(meta=meta, size=size, chunk_size=chunk_size, expires_at=expires_at)
        return body, head, self.limits.capped and used_at < now - LRU_RESOLUTION

    def body_head(self, key: str, now: float, *, touch: bool = False) -> tuple[int, BodyHead] | None:
        found = self.find_body(key, now)
        if found is None:
            return None
        body, head, due = found
        if touch and due:
            self.touch([key], now)
        return body, head

    def touch(self, keys: Collection[str], now: float) -> None:
        """Record a use of `keys` at `now` (for LRU eviction)."""
        self.conn.executemany("UPDATE entries SET used_at = ? WHERE key = ?", [(now, key) for key in keys])

    def read_chunk(self, body: int, seq: int) -> bytes | None:
        row = self.conn.execute("SELECT data FROM chunks WHERE body = ? AND seq = ?", (body, seq)).fetchone()
        return None if row is None else bytes(row[0])

    # -- sweeping --------------------------------------------------------------------------------------------

    def sweep(self, now: float) -> int:
        """Delete expired entries, dead bodies past their grace and abandoned ones; return how many."""
        removed = 0
        while True:
            with _transaction(self.conn):
                cursor = self.conn.execute(
                    "DELETE FROM entries WHERE key IN"
                    " (SELECT key FROM entries WHERE expires_at <= ? LIMIT ?)",
                    (now, SWEEP_BATCH),
                )
            removed += cursor.rowcount
            if cursor.rowcount < SWEEP_BATCH:
                break
        with _transaction(self.conn):
            # The time of death is stamped here, so the grace runs from the first sweep that sees it.
            self.conn.execute("UPDATE bodies SET since = ? WHERE state = 'dead' AND since IS NULL", (now,))
        dead = [
            body
            for (body,) in self.conn.execute(
                "SELECT id FROM bodies WHERE state = 'dead' AND since <= ?",
                (now - self.limits.body_grace_period,),
            )
        ]
        abandoned = [
            body
            for body, pid, since in self.conn.execute(
                "SELECT id, pid, since FROM bodies WHERE state = 'writing'"
            ).fetchall()
            if self._abandoned(body, pid, since, now)
        ]
        self._drop_bodies(dead + abandoned)
        return removed + len(dead) + len(abandoned)

    def _abandoned(self, body: int, pid: int, since: float, now: float) -> bool:
        if since <= now - self.limits.writer_timeout:
            return True
        if pid == self.pid:
            return body not in self.writing
        return not _pid_alive(pid)


def _value(key: str, value: bytes | None) -> bytes:
    if value is None:
        raise EntryKindError(f"{key!r} holds a streamed body; read it with open_reader")
    return bytes(value)
