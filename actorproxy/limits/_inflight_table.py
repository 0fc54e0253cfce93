"""`InflightTable`: requests in progress per key, counted together by every worker process of a server.

Rules:
- One anonymous shared mapping, created by the master before it forks, holds a count-min sketch per worker
  (`hashes` rows of `slots` signed 64-bit counters). A worker only ever writes its own sketch, so no lock is
  needed; an estimate adds the workers' counters up, cell by cell, and takes the smallest sum over the rows
  (the `Estimator` bound holds for the sum).
- A worker that dies leaves counts of requests that ended with it. The worker forked in its place wipes that
  sketch the first time it counts (it notices it is a new process by its pid), so nothing leaks past a
  restart.
- The mapping dies with the server process: the next process of a graceful upgrade starts from zero, and
  the requests the old one is still draining are not counted by the new one.
- Guards are `Guard`s, as `Inflight`'s: release them, or tie them to the request with
  `session.enter_context`.
"""

from __future__ import annotations

import mmap
import os
import random
from collections.abc import Callable, Hashable

from ._inflight import Guard

__all__ = ["InflightTable"]

# Two rows of 8,192 counters per worker: 128 KiB each. Fewer rows than Pingora's `Inflight` (4), as an
# estimate here sums every worker's counters.
TABLE_HASHES = 2
TABLE_SLOTS = 8192
_COUNTER_SIZE = 8


class InflightTable:
    """Counts what is in progress per key, across `workers` processes.

    Args:
        workers: how many worker processes count (1 when the server serves in its own process).
        worker: which worker the calling process is (0 .. workers - 1); read on each count, so a forked
            worker sees its own index. None counts as 0.
        hashes: rows of each worker's sketch.
        slots: counters per row.
    """

    __slots__ = ("_cells", "_map", "_pid", "_row", "_seeds", "_worker", "hashes", "slots", "workers")

    def __init__(
        self,
        workers: int = 1,
        worker: Callable[[], int | None] = lambda: 0,
        *,
        hashes: int = TABLE_HASHES,
        slots: int = TABLE_SLOTS,
    ) -> None:
        if workers < 1 or hashes < 1 or slots < 1:
            raise ValueError(
                f"an InflightTable needs workers, hashes and slots >= 1, got {workers, hashes, slots}"
            )
        self.workers = workers
        self.hashes = hashes
        self.slots = slots
        self._worker = worker
        # MAP_SHARED | MAP_ANONYMOUS: the forked workers see one another's writes.
        self._map = mmap.mmap(-1, workers * hashes * slots * _COUNTER_SIZE)
        self._cells = memoryview(self._map).cast("q")
        self._seeds = tuple(random.getrandbits(64) for _ in range(hashes))
        self._pid = 0
        self._row = 0

    def __repr__(self) -> str:
        return f"<InflightTable workers={self.workers} {self.hashes} x {self.slots}>"

    def indexes(self, key: Hashable) -> tuple[int, ...]:
        """The counter `key` is kept in, in each row."""
        slots = self.slots
        return tuple(row * slots + hash((seed, key)) % slots for row, seed in enumerate(self._seeds))

    def incr(self, key: Hashable, value: int = 1) -> Guard:
        """Count `key` in progress by `value`; the guard's `count` is the estimate over every worker."""
        return Guard(self, self.indexes(key), value)

    def get(self, key: Hashable) -> int:
        """The estimated count of `key` in progress, over every worker."""
        return self.get_at(self.indexes(key))

    def _own(self) -> int:
        pid = os.getpid()
        if pid != self._pid:
            # A new process in this worker's place: what its sketch holds belongs to a dead one.
            index = min(max(self._worker() or 0, 0), self.workers - 1)
            size = self.hashes * self.slots
            start = index * size * _COUNTER_SIZE
            self._map[start : start + size * _COUNTER_SIZE] = bytes(size * _COUNTER_SIZE)
            self._pid = pid
            self._row = index * size
        return self._row

    def incr_at(self, indexes: tuple[int, ...], value: int) -> int:
        """Add `value` to this worker's counters at `indexes`; return the estimate over every worker."""
        cells = self._cells
        base = self._own()
        for index in indexes:
            cells[base + index] += value
        return self.get_at(indexes)

    def get_at(self, indexes: tuple[int, ...]) -> int:
        """The estimate at `indexes`: the smallest, over the rows, of the workers' counters added up."""
        cells = self._cells
        stride = self.hashes * self.slots
        span = stride * self.workers
        return min(sum(cells[index:span:stride]) for index in indexes)
