"""The SQLite store's schema, its connection settings and its statements, in one place.

Rules:
- WAL journal, `synchronous=NORMAL`: a committed transaction survives the process being killed (only a
  power loss may drop the last ones), and readers never wait for the writer.
- `entries` holds one row per key: a value, or the id of a committed body in `bodies`, whose chunks are
  rows of `chunks` (one per `chunk_size` bytes). A body is a row of `bodies` from its first write:
  `writing`, then `live` once committed, then `dead` once its entry is gone; the sweeper deletes dead
  bodies after their grace period and `writing` ones whose writer is gone.
- Triggers keep `totals` (entries, bytes) exact in every transaction, and mark a body dead the moment its
  entry row is deleted or pointed elsewhere, whoever does it; the sweeper stamps the time of death.
"""

from __future__ import annotations

__all__ = ["SCHEMA", "SCHEMA_VERSION", "UPSERT"]

#: `PRAGMA user_version` of a store file; a file with another non-zero version is refused.
SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB,
    body INTEGER,
    size INTEGER NOT NULL,
    expires_at REAL,
    used_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS entries_by_expiry ON entries (expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (used_at);
CREATE TABLE IF NOT EXISTS bodies (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    state TEXT NOT NULL,
    meta BLOB NOT NULL,
    size INTEGER NOT NULL,
    chunk_size INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    since REAL
);
CREATE INDEX IF NOT EXISTS bodies_by_state ON bodies (state);
CREATE TABLE IF NOT EXISTS chunks (
    body INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (body, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS totals (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO totals VALUES ('entries', 0), ('size', 0), ('evictions', 0);
CREATE TRIGGER IF NOT EXISTS entry_added AFTER INSERT ON entries BEGIN
    UPDATE totals SET value = value + 1 WHERE name = 'entries';
    UPDATE totals SET value = value + NEW.size WHERE name = 'size';
END;
CREATE TRIGGER IF NOT EXISTS entry_removed AFTER DELETE ON entries BEGIN
    UPDATE totals SET value = value - 1 WHERE name = 'entries';
    UPDATE totals SET value = value - OLD.size WHERE name = 'size';
    UPDATE bodies SET state = 'dead', since = NULL WHERE id = OLD.body;
END;
CREATE TRIGGER IF NOT EXISTS entry_changed AFTER UPDATE OF size, body ON entries BEGIN
    UPDATE totals SET value = value + NEW.size - OLD.size WHERE name = 'size';
    UPDATE bodies SET state = 'dead', since = NULL WHERE id = OLD.body AND OLD.body IS NOT NEW.body;
END;
"""

#: Insert or replace one entry: (key, value, body, size, expires_at, used_at).
UPSERT = """
INSERT INTO entries (key, value, body, size, expires_at, used_at) VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, body = excluded.body, size = excluded.size,
    expires_at = excluded.expires_at, used_at = excluded.used_at
"""
