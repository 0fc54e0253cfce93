"""`Consistent`: Ketama consistent hashing, compatible with nginx's and Pingora's (`pingora-ketama`).

Rules:
- Each backend puts `POINT_MULTIPLE * weight` points on a ring of 32-bit CRC32 values. Its points come from
  one CRC32 state seeded with the host, a NUL byte and the port in decimal (`b"10.0.0.1\\0" b"8080"`); point
  k is that state continued with point k-1's value as 4 little-endian bytes (0 for the first point). IPv6
  hosts are written compressed and without brackets, as Rust's `IpAddr` prints them.
- Unix socket backends (Pingora skips them) are seeded with the path, the NUL byte and an empty port, so
  they take part and cannot collide with a TCP backend's seed, which always ends in a digit.
- Points are sorted by value; of several points with the same value the one from the backend that sorts
  first keeps it. A key goes to the first point at or after `crc32(key)`, wrapping past the end; fallbacks
  walk the following points, so they repeat backends (`UniqueIterator` removes the repeats).
- Adding or removing a backend moves only the keys whose nearest point it gains or loses: about 1/n of them.
"""

from __future__ import annotations

import os
import zlib
from bisect import bisect_left
from collections.abc import Iterable, Iterator

from ._backend import Backend
from ._selection import sorted_backends

__all__ = ["POINT_MULTIPLE", "Consistent", "ketama_points"]

# Points per unit of weight: 160, the value of nginx's `upstream hash ... consistent`, libmemcached's Ketama
# and Pingora's `pingora-ketama`; it is what makes the rings compatible.
POINT_MULTIPLE = 160


def _seed(backend: Backend) -> int:
    addr = backend.addr
    if isinstance(addr, str):
        return zlib.crc32(os.fsencode(addr) + b"\0")
    host, port = addr
    return zlib.crc32(host.encode() + b"\0" + str(port).encode())


def ketama_points(backend: Backend) -> list[int]:
    """The ring points of one backend, in the order they are generated (not sorted)."""
    seed = _seed(backend)
    points = []
    previous = 0
    for _ in range(POINT_MULTIPLE * backend.weight):
        previous = zlib.crc32(previous.to_bytes(4, "little"), seed)
        points.append(previous)
    return points


class Consistent:
    """Ketama consistent hashing over a backend set (Pingora's `Consistent` selection).

    Args:
        backends: the backend set (deduplicated and sorted here).
    """

    __slots__ = ("_hashes", "_owners", "backends")

    def __init__(self, backends: Iterable[Backend]) -> None:
        self.backends = sorted_backends(backends)
        ring = sorted(
            (point, index) for index, backend in enumerate(self.backends) for point in ketama_points(backend)
        )
        hashes: list[int] = []
        owners: list[int] = []
        for point, index in ring:
            if not hashes or hashes[-1] != point:
                hashes.append(point)
                owners.append(index)
        self._hashes = hashes
        self._owners = owners

    @property
    def ring_size(self) -> int:
        """The number of points on the ring, after dropping duplicates."""
        return len(self._hashes)

    def iter(self, key: bytes) -> Iterator[Backend]:
        hashes = self._hashes
        if not hashes:
            return
        backends = self.backends
        owners = self._owners
        size = len(hashes)
        position = bisect_left(hashes, zlib.crc32(key))
        while True:
            if position == size:
                position = 0
            yield backends[owners[position]]
            position += 1

    def __repr__(self) -> str:
        return f"<Consistent backends={len(self.backends)} points={len(self._hashes)}>"
