"""`GcraTable`: the GCRA state of many keys in a fixed-size table, in memory or shared by processes.

Rules:
- The table is `slots` entries of 16 bytes (a key's 64-bit hash, its TAT as a float), in buckets of 4. A key
  lives in the bucket its hash picks; a key not in its bucket takes an empty slot, or one whose TAT has
  passed (such a key has its whole burst again, so forgetting it changes nothing), or else the one with the
  earliest TAT, the least limited key (counted in `evictions`): that key starts over with a whole burst.
  Memory is therefore fixed, and exact while no bucket holds more than 4 keys still recovering.
- Keys are hashed with BLAKE2b, the same in every process and every run, so a table in a file is shared by
  the workers of a server and by the next process of a graceful upgrade.
- In a file (`GcraTable.open`), the file is mapped into each process, and each check holds a POSIX record
  lock (`fcntl.lockf`) on its bucket's 64 bytes for the few microseconds it reads and writes it. A server
  of one process (`threads: 1`) checks without the lock (`locking = False`, two system calls less a
  check): it is the only one changing the table but for the seconds of a graceful upgrade, when the old
  and the new process both serve and a key's request may be counted against a bucket the other process
  just wrote (a request or two over the limit at most, once). The kernel
  drops a process's locks when it dies, so a worker killed mid-check cannot leave a bucket locked. The
  master creates the table before forking; a worker inherits the mapping and the descriptor.
- A file whose layout does not match (another slot count, another version) is replaced by a new file: a
  process still mapping the old one keeps it, and nobody truncates a mapping under a reader.
- TATs are `time.monotonic()` seconds, one clock for every process on the machine; the caller passes `now`.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import math
import mmap
import os
import struct

from ._gcra import Decision, Quota, admitted_tat, gcra

__all__ = ["GcraTable"]

# File header: magic, version, slots.
_HEADER = struct.Struct("<8sQQ")
_MAGIC = b"APLIMITS"
_VERSION = 1
HEADER_SIZE = 64
_ENTRY = struct.Struct("<Qd")
BUCKET_SLOTS = 4
_BUCKET = struct.Struct("<" + "Qd" * BUCKET_SLOTS)
BUCKET_SIZE = _BUCKET.size


#: Keys whose hash a table remembers; past it the table forgets them all (a bound, whatever the keys).
HASH_MEMORY = 4096


def key_hash(key: str) -> int:
    """The table's 64-bit hash of a key (never 0, which marks an empty slot)."""
    digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "little") or 1


class GcraTable:
    """GCRA state for any number of keys in `slots` entries (see the module rules).

    Build one with `GcraTable.in_memory(slots)` (one process) or `GcraTable.open(path, slots)` (shared).
    """

    __slots__ = ("_buckets", "_buffer", "_fd", "_hashes", "_places", "evictions", "locking", "path", "slots")

    def __init__(
        self, buffer: bytearray | mmap.mmap, slots: int, *, fd: int | None, path: str | None
    ) -> None:
        self._buffer = buffer
        self._fd = fd
        self.path = path
        self.slots = slots
        self._buckets = slots // BUCKET_SLOTS
        #: Keys pushed out while still recovering, by this process.
        self.evictions = 0
        # Recent keys' hashes: a client sends many requests, and BLAKE2b costs more than a dict lookup.
        self._hashes: dict[str, int] = {}
        # Where a recent key's entry was (its offset): checked first, the bucket scanned only when another
        # key took the place since.
        self._places: dict[int, int] = {}
        #: Lock each bucket while it is checked: needed when other processes map the file (workers); a
        #: server of one process turns it off (see the module rules).
        self.locking = fd is not None

    @staticmethod
    def _size(slots: int) -> int:
        return HEADER_SIZE + slots * _ENTRY.size

    @staticmethod
    def rounded(slots: int) -> int:
        """`slots` rounded up to whole buckets."""
        return max(BUCKET_SLOTS, math.ceil(slots / BUCKET_SLOTS) * BUCKET_SLOTS)

    @classmethod
    def in_memory(cls, slots: int) -> GcraTable:
        """A table for this process only (no lock, no file)."""
        slots = cls.rounded(slots)
        return cls(bytearray(cls._size(slots)), slots, fd=None, path=None)

    @classmethod
    def open(cls, path: str, slots: int) -> GcraTable:
        """Open the table in the file at `path`, creating it (mode 0600) if it is missing or does not match.

        Raises:
            OSError: the file cannot be created, opened or mapped.
        """
        slots = cls.rounded(slots)
        size = cls._size(slots)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX, HEADER_SIZE, 0)
            header = os.pread(fd, _HEADER.size, 0)
            if len(header) == _HEADER.size and _HEADER.unpack(header) != (_MAGIC, _VERSION, slots):
                # Another layout, maybe still mapped by a running process: leave it to that one.
                os.unlink(path)
                os.close(fd)
                fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
                fcntl.lockf(fd, fcntl.LOCK_EX, HEADER_SIZE, 0)
                header = b""
            if len(header) < _HEADER.size:
                os.ftruncate(fd, size)
                os.pwrite(fd, _HEADER.pack(_MAGIC, _VERSION, slots), 0)
            buffer = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
            fcntl.lockf(fd, fcntl.LOCK_UN, HEADER_SIZE, 0)
        except BaseException:
            os.close(fd)
            raise
        return cls(buffer, slots, fd=fd, path=path)

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"<GcraTable {where} slots={self.slots} evictions={self.evictions}>"

    def close(self) -> None:
        """Unmap the table and close its file (the file stays for the next process)."""
        if isinstance(self._buffer, mmap.mmap):
            with contextlib.suppress(BufferError):
                self._buffer.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def check(self, key: str, quota: Quota, now: float, cost: int = 1) -> Decision:
        """Decide a request of `cost` units for `key` under `quota` at `now` (monotonic seconds), and
        record it if admitted."""
        hashed = self._hash(key)
        offset = HEADER_SIZE + (hashed % self._buckets) * BUCKET_SIZE
        fd = self._fd
        if fd is None or not self.locking:
            return self._check(hashed, offset, quota, now, cost)
        fcntl.lockf(fd, fcntl.LOCK_EX, BUCKET_SIZE, offset)
        try:
            return self._check(hashed, offset, quota, now, cost)
        finally:
            fcntl.lockf(fd, fcntl.LOCK_UN, BUCKET_SIZE, offset)

    def admit(self, key: str, quota: Quota, now: float) -> bool:
        """Whether one request for `key` under `quota` at `now` is admitted (then recorded): `check`'s
        decision without its figures, for the request path; `check` again gives them, for a refusal."""
        if self._fd is not None and self.locking:
            return self.check(key, quota, now).allowed  # other processes write too: under the lock
        hashed = self._hash(key)
        place = self._places.get(hashed)
        buffer = self._buffer
        if place is not None:
            owner, tat = _ENTRY.unpack_from(buffer, place)
            if owner == hashed:
                new_tat = admitted_tat(quota, tat, now)
                if new_tat is None:
                    return False
                _ENTRY.pack_into(buffer, place, hashed, new_tat)
                return True
        offset = HEADER_SIZE + (hashed % self._buckets) * BUCKET_SIZE
        return self._check(hashed, offset, quota, now, 1).allowed

    def _hash(self, key: str) -> int:
        hashes = self._hashes
        hashed = hashes.get(key)
        if hashed is None:
            if len(hashes) >= HASH_MEMORY:
                hashes.clear()
            hashed = hashes[key] = key_hash(key)
        return hashed

    def _check(self, hashed: int, offset: int, quota: Quota, now: float, cost: int) -> Decision:
        buffer = self._buffer
        entries = _BUCKET.unpack_from(buffer, offset)
        slot = -1
        tat: float | None = None
        victim = 0
        victim_tat = math.inf
        for index in range(BUCKET_SLOTS):
            owner = entries[2 * index]
            held = entries[2 * index + 1]
            if owner == hashed:
                slot, tat = index, held
                break
            if owner == 0 or held <= now:
                held = -math.inf  # free, or recovered: taking it loses nothing
            if held < victim_tat:
                victim, victim_tat = index, held
        new_tat, decision = gcra(quota, tat, now, cost)
        if new_tat is not None:
            if slot < 0:
                slot = victim
                if victim_tat > now:
                    self.evictions += 1
            place = offset + slot * _ENTRY.size
            _ENTRY.pack_into(buffer, place, hashed, new_tat)
            places = self._places
            if len(places) >= HASH_MEMORY:
                places.clear()
            places[hashed] = place
        return decision
