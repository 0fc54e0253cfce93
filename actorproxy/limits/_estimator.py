"""`Estimator`: a count-min sketch, the counting structure under `Rate` and `Inflight` (Pingora's
`pingora_limits::estimator`).

Rules:
- Memory is fixed at construction: `hashes` rows of `slots` counters, whatever the number of keys.
- A key is counted in one counter per row, chosen by that row's hash; its estimate is the smallest of them.
  Collisions only add, so an estimate is never below the true count (while every key's count stays >= 0)
  and, for a sketch holding N in all, exceeds it by more than e/slots x N with probability at most
  e^-hashes (Cormode and Muthukrishnan, 2005).
- Keys are any hashable value. Python salts `str` hashes per interpreter, so a sketch is good for one
  process (and the processes forked from it), never for state stored across runs.
- Pure: no clock, no I/O; one trio thread, so no atomics are needed.
"""

from __future__ import annotations

import random
from collections.abc import Hashable

__all__ = ["Estimator"]

_MASK = (1 << 64) - 1
# Pingora's `Rate` uses 4 hashes of 1,024 slots; its `Inflight` 4 of 8,192.
DEFAULT_HASHES = 4
DEFAULT_SLOTS = 1024


class Estimator:
    """A count-min sketch of `hashes` rows by `slots` counters.

    Args:
        hashes: rows (independent hashes); more rows lower the chance of a large overestimate.
        slots: counters per row; more slots lower the overestimate itself.
    """

    __slots__ = ("_rows", "_seeds", "hashes", "slots")

    def __init__(self, hashes: int = DEFAULT_HASHES, slots: int = DEFAULT_SLOTS) -> None:
        if hashes < 1 or slots < 1:
            raise ValueError(f"an Estimator needs at least one hash and one slot, got {hashes} x {slots}")
        self.hashes = hashes
        self.slots = slots
        self._rows = [[0] * slots for _ in range(hashes)]
        # Each row's hash: multiply-shift of the key's 64-bit hash by a random odd multiplier, keeping the
        # high bits, so that rows are independent (the low bits of `hash((seed, key))` were not: two keys
        # met in every row of an 8 x 8 sketch about 3% of the time instead of once in 16 million).
        self._seeds = tuple(random.getrandbits(64) | 1 for _ in range(hashes))

    def __repr__(self) -> str:
        return f"<Estimator {self.hashes} x {self.slots}>"

    def indexes(self, key: Hashable) -> tuple[int, ...]:
        """The counter `key` is kept in, in each row (what a `Guard` keeps instead of the key)."""
        slots = self.slots
        hashed = hash(key) & _MASK
        return tuple((hashed * seed & _MASK) * slots >> 64 for seed in self._seeds)

    def incr(self, key: Hashable, value: int = 1) -> int:
        """Add `value` to `key`'s count; return its new estimate."""
        return self.incr_at(self.indexes(key), value)

    def decr(self, key: Hashable, value: int = 1) -> None:
        """Take `value` from `key`'s count."""
        self.incr_at(self.indexes(key), -value)

    def get(self, key: Hashable) -> int:
        """The estimate of `key`'s count: at least the true count, see the module rules."""
        return self.get_at(self.indexes(key))

    def incr_at(self, indexes: tuple[int, ...], value: int) -> int:
        """`incr` for a key whose `indexes` are known."""
        estimate = None
        for row, index in zip(self._rows, indexes, strict=True):
            count = row[index] + value
            row[index] = count
            if estimate is None or count < estimate:
                estimate = count
        assert estimate is not None  # at least one row
        return estimate

    def get_at(self, indexes: tuple[int, ...]) -> int:
        """`get` for a key whose `indexes` are known."""
        return min(row[index] for row, index in zip(self._rows, indexes, strict=True))

    def reset(self) -> None:
        """Set every count to zero."""
        for row in self._rows:
            row[:] = [0] * self.slots
