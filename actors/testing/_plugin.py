"""pytest fixtures for actor tests, loaded automatically when actorproxy is installed.

`actor_system` opens an actor system for the test (drained when the test ends); `probe` is a `TestProbe`
in it. Combine with pytest-trio's `autojump_clock` for anything with a timeout or an interval.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from .._system import ActorSystem, open_actor_system
from ._probe import TestProbe


@pytest.fixture
async def actor_system() -> AsyncIterator[ActorSystem]:
    async with open_actor_system("test") as system:
        yield system


@pytest.fixture
def probe(actor_system: ActorSystem) -> TestProbe:
    return TestProbe(actor_system)
