"""Backend selection: which backend a request goes to, as pure code (no actors, no I/O).

Rules:
- A selector is built once from a set of backends, which it dedupes and sorts (Pingora builds from a
  `BTreeSet`), and is then replaced whole when the set changes: the load balancer publishes it as an
  immutable snapshot. Only an algorithm's own state (a round-robin counter, a random generator) changes.
- `selector.iter(key)` yields backends in preference order, possibly repeating them and possibly forever;
  `UniqueIterator` removes repeats and bounds the draws, and `select` takes the first acceptable one. This is
  Pingora's `select_with`; health is not known here, so `accept` gets only the backend.
- `Weighted` is Pingora's `Weighted<H>` (its `RoundRobin`, `Random` and `FNVHash` selections): the first pick
  is weighted, every fallback is uniform over the backends and chained from the previous index, so with
  `FNVHash` the whole sequence is a function of the key.
- `LeastConnections` and `PowerOfTwoChoices` go beyond Pingora: they read an in-flight count per backend
  (a mapping the caller keeps up to date; a missing backend counts 0) when a selection starts, and compare
  `inflight / weight`.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Protocol

from ._backend import Backend

__all__ = [
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "BackendSelection",
    "FNVHash",
    "LeastConnections",
    "PowerOfTwoChoices",
    "Random",
    "RoundRobin",
    "SelectionAlgorithm",
    "UniqueIterator",
    "Weighted",
    "select",
    "sorted_backends",
]

# FNV-1a, 64-bit: the offset basis and prime from the FNV specification (draft-eastlake-fnv), as in the
# `fnv` crate that Pingora's `FNVHash` uses.
FNV_OFFSET_BASIS = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
# Pingora's algorithms return a u64.
_U64 = (1 << 64) - 1


class SelectionAlgorithm(Protocol):
    """Turns a key into a 64-bit number (Pingora's `SelectionAlgorithm`)."""

    def next(self, key: bytes) -> int:
        """A number in `[0, 2**64)`; it may or may not depend on `key`."""
        ...


class RoundRobin:
    """Successive numbers from 0; the key is ignored."""

    __slots__ = ("_counter",)

    def __init__(self) -> None:
        self._counter = itertools.count()

    def next(self, key: bytes) -> int:
        return next(self._counter) & _U64


class Random:
    """A uniformly random 64-bit number; the key is ignored.

    Args:
        rng: the generator to draw from; the `random` module's shared one when omitted.
    """

    __slots__ = ("_getrandbits",)

    def __init__(self, rng: random.Random | None = None) -> None:
        self._getrandbits = rng.getrandbits if rng is not None else random.getrandbits

    def next(self, key: bytes) -> int:
        return self._getrandbits(64)


class FNVHash:
    """The FNV-1a 64-bit hash of the key: the same key always gives the same number."""

    __slots__ = ()

    def next(self, key: bytes) -> int:
        h = FNV_OFFSET_BASIS
        for byte in key:
            h = ((h ^ byte) * FNV_PRIME) & _U64
        return h


class BackendSelection(Protocol):
    """A selector: an immutable backend set and the order to try them in for a key (Pingora's trait)."""

    @property
    def backends(self) -> tuple[Backend, ...]:
        """The backends, deduplicated and sorted."""
        ...

    def iter(self, key: bytes) -> Iterator[Backend]:
        """Backends to try for `key`, best first; repeats allowed, possibly endless."""
        ...


def sorted_backends(backends: Iterable[Backend]) -> tuple[Backend, ...]:
    """Deduplicate and sort, as Pingora's `BTreeSet<Backend>`: the order every selector is built from."""
    return tuple(sorted(set(backends)))


class Weighted:
    """Pingora's `Weighted<H>`: a weighted first pick, then uniform fallbacks chained from it.

    Each backend's index appears `weight` times in the table, so the table has as many entries as the total
    weight.

    Args:
        backends: the backend set (deduplicated and sorted here).
        algorithm: `RoundRobin()`, `Random()`, `FNVHash()` or any `SelectionAlgorithm`.
    """

    __slots__ = ("_table", "algorithm", "backends")

    def __init__(self, backends: Iterable[Backend], algorithm: SelectionAlgorithm) -> None:
        self.backends = sorted_backends(backends)
        self.algorithm = algorithm
        self._table = tuple(
            index for index, backend in enumerate(self.backends) for _ in range(backend.weight)
        )

    def iter(self, key: bytes) -> Iterator[Backend]:
        backends = self.backends
        if not backends:
            return
        algorithm = self.algorithm
        table = self._table
        count = len(backends)
        index = algorithm.next(key)
        yield backends[table[index % len(table)]]
        while True:
            index = algorithm.next(index.to_bytes(8, "little"))
            yield backends[index % count]

    def __repr__(self) -> str:
        return f"<Weighted {type(self.algorithm).__name__} backends={len(self.backends)}>"


class LeastConnections:
    """The backend with the fewest in-flight requests per unit of weight; ties go round robin.

    The fallbacks are the other backends, least loaded first.

    Args:
        backends: the backend set (deduplicated and sorted here).
        inflight: in-flight requests per backend, read (not copied) at each selection.
    """

    __slots__ = ("_next_start", "backends", "inflight")

    def __init__(self, backends: Iterable[Backend], inflight: Mapping[Backend, int]) -> None:
        self.backends = sorted_backends(backends)
        self.inflight = inflight
        self._next_start = 0

    def iter(self, key: bytes = b"") -> Iterator[Backend]:
        backends = self.backends
        count = len(backends)
        if not count:
            return
        inflight = self.inflight
        # Floats are exact enough: only loads within a relative 2**-52 of each other could compare equal.
        loads = [inflight.get(backend, 0) / backend.weight for backend in backends]
        # Equally loaded backends are ranked from just after the last first pick, so they take turns.
        start = self._next_start % count

        def rank(index: int) -> tuple[float, int]:
            return (loads[index], (index - start) % count)

        best = min(range(count), key=rank)
        self._next_start = best + 1
        yield backends[best]
        # Only a fallback pays for sorting the rest.
        for index in sorted((i for i in range(count) if i != best), key=rank):
            yield backends[index]

    def __repr__(self) -> str:
        return f"<LeastConnections backends={len(self.backends)}>"


class PowerOfTwoChoices:
    """Of two distinct backends drawn at random, the one with fewer in-flight requests per unit of weight.

    A tie goes to the first drawn. The loser is the first fallback; then two more are drawn, and so on.

    Args:
        backends: the backend set (deduplicated and sorted here).
        inflight: in-flight requests per backend, read (not copied) at each draw.
        rng: the generator to draw from; the `random` module's shared one when omitted.
    """

    __slots__ = ("_randrange", "backends", "inflight")

    def __init__(
        self,
        backends: Iterable[Backend],
        inflight: Mapping[Backend, int],
        rng: random.Random | None = None,
    ) -> None:
        self.backends = sorted_backends(backends)
        self.inflight = inflight
        self._randrange = rng.randrange if rng is not None else random.randrange

    def iter(self, key: bytes = b"") -> Iterator[Backend]:
        backends = self.backends
        count = len(backends)
        if count < 2:
            yield from backends
            return
        inflight = self.inflight
        randrange = self._randrange
        while True:
            first_index = randrange(count)
            # Uniform over the other count - 1 backends: skip over the first one.
            second_index = randrange(count - 1)
            if second_index >= first_index:
                second_index += 1
            first, second = backends[first_index], backends[second_index]
            # Cross-multiplied so unequal weights compare exactly: a/wa > b/wb <=> a*wb > b*wa.
            if inflight.get(first, 0) * second.weight > inflight.get(second, 0) * first.weight:
                first, second = second, first
            yield first
            yield second

    def __repr__(self) -> str:
        return f"<PowerOfTwoChoices backends={len(self.backends)}>"


class UniqueIterator:
    """Each backend at most once, from at most `max_iterations` draws of `iterator` (Pingora's name).

    Args:
        iterator: backends, repeats allowed, possibly endless (a selector's `iter(key)`).
        max_iterations: how many backends to draw at most, repeats included.
    """

    __slots__ = ("_inner", "_max_iterations", "_seen", "_steps")

    def __init__(self, iterator: Iterable[Backend], max_iterations: int) -> None:
        self._inner = iter(iterator)
        self._max_iterations = max_iterations
        self._steps = 0
        self._seen: set[Backend] = set()

    def __iter__(self) -> UniqueIterator:
        return self

    def __next__(self) -> Backend:
        seen = self._seen
        while self._steps < self._max_iterations:
            backend = next(self._inner)  # StopIteration ends us too
            self._steps += 1
            if backend not in seen:
                seen.add(backend)
                return backend
        raise StopIteration

    def get_next(self) -> Backend | None:
        """The next unseen backend, or None when the draws are used up."""
        return next(self, None)


def select(
    selector: BackendSelection,
    key: bytes,
    max_iterations: int,
    accept: Callable[[Backend], bool] | None = None,
) -> Backend | None:
    """The first backend for `key` that `accept` takes (Pingora's `select_with`).

    Args:
        selector: the current selector snapshot.
        key: what hashing selectors hash (the others ignore it).
        max_iterations: bounds the search, repeats included; Ketama may repeat a backend many times.
        accept: called with each candidate until it returns True; None accepts the first.

    Returns:
        The backend, or None when the set is empty or no candidate within `max_iterations` was accepted.
    """
    for backend in UniqueIterator(selector.iter(key), max_iterations):
        if accept is None or accept(backend):
            return backend
    return None
