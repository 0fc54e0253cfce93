"""LoadBalancer under concurrent selection and discovery updates (Pingora's `test_consistency`).

A task selects continuously while another swaps the discovery set between two disjoint sets of 3,000
backends and publishes each with `update`. Every selection must come from a snapshot that was current: the
last published set or, while an update is in progress, the one it is publishing; never None, never a backend
from neither. Once the last update returned, only the final set is served.

No socket is opened: discovery is in memory and there is no health check, so every backend is ready.
Pingora's test uses `Consistent` (Ketama); building a ring of 3,000 backends here takes seconds, so the
selectors used are the fast `Weighted` ones (round robin and FNV hash), which are rebuilt the same way on
each change of the set.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.lowlevel

from actorproxy.lb import Backend, FNVHash, LoadBalancer, RoundRobin

#: Backends per set, as in Pingora's test.
EXPECTED = 3000
#: How many times the updater swaps the set.
SWAPS = 20
#: Selections between two checkpoints of the selecting task.
BATCH = 100


def backend_set(first_port: int) -> frozenset[Backend]:
    return frozenset(Backend(f"127.0.0.1:{port}") for port in range(first_port, first_port + EXPECTED))


SET_A = backend_set(10000)
SET_B = backend_set(13000)


class SwappingDiscovery:
    """An in-memory discovery whose `discover` yields once, so selections run while an update is underway."""

    def __init__(self, backends: frozenset[Backend]) -> None:
        self.backends = backends

    async def discover(self) -> tuple[frozenset[Backend], dict[Backend, bool]]:
        backends = self.backends
        await trio.lowlevel.checkpoint()
        return backends, {}


@pytest.mark.parametrize("selection", [RoundRobin, FNVHash])
async def test_selection_stays_consistent_while_the_set_is_swapped(selection: Any) -> None:
    discovery = SwappingDiscovery(SET_A)
    lb = LoadBalancer.from_backends(discovery, selection=selection)
    assert lb.select(b"key", 256) is None  # nothing discovered yet
    assert await lb.update()
    assert lb.backends().get_backend() == SET_A

    published = SET_A  # the set the last finished update published
    pending: frozenset[Backend] | None = None  # the set an update in progress is publishing
    done = False
    selections = 0
    batches_during_updates = 0

    async def select_continuously() -> None:
        nonlocal selections, batches_during_updates
        n = 0
        while not done:
            allowed = published | pending if pending is not None else published
            if pending is not None:
                batches_during_updates += 1
            for _ in range(BATCH):
                backend = lb.select(n.to_bytes(8, "little"), 256)
                n += 1
                assert backend is not None
                assert backend in allowed, backend
            selections += BATCH
            await trio.lowlevel.checkpoint()

    async def swap_and_update() -> None:
        nonlocal published, pending, done
        for swap in range(SWAPS):
            new = SET_B if swap % 2 == 0 else SET_A
            pending = discovery.backends = new
            assert await lb.update()
            published, pending = new, None
            await trio.lowlevel.checkpoint()
        done = True

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(select_continuously)
            nursery.start_soon(swap_and_update)

    assert selections >= SWAPS * BATCH
    assert batches_during_updates > 0  # the selector did run while updates were underway

    final = SET_B if SWAPS % 2 else SET_A
    assert published == final
    assert lb.backends().get_backend() == final and len(lb.ready_backends()) == EXPECTED
    for n in range(5 * BATCH):
        backend = lb.select(f"after {n}".encode(), 256)
        assert backend is not None and backend in final


async def test_update_publishes_all_backends_at_once() -> None:
    """Pingora's `test_consistency` itself: a concurrent update publishes the whole set in one snapshot."""
    lb = LoadBalancer.from_backends(SwappingDiscovery(SET_A), selection=FNVHash)
    counts: list[int] = []

    async def update() -> None:
        assert await lb.update()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(update)
        while not counts or counts[-1] == 0:
            counts.append(len(lb.backends().get_backend()))
            await trio.lowlevel.checkpoint()

    assert set(counts) <= {0, EXPECTED}  # never a partial set
    assert counts[-1] == EXPECTED
    assert lb.select_with(b"test", 1, lambda _backend, _ready: True) is not None
