"""The actor test kit: `TestProbe`, fault injection, and the pytest fixtures `actor_system` and `probe`.

The fixtures are registered as a pytest plugin when the package is installed. Combine them with
pytest-trio's `autojump_clock` for anything with a timeout or an interval.
"""

import trio

from ._faults import FaultyActor, InjectedFault, crash_on_nth, fail_start, hang_on_stop, slow_start
from ._probe import DEFAULT_EXPECT_TIMEOUT, TestProbe

__all__ = [
    "DEFAULT_EXPECT_TIMEOUT",
    "FaultyActor",
    "InjectedFault",
    "TestProbe",
    "crash_on_nth",
    "fail_start",
    "hang_on_stop",
    "living_tasks",
    "slow_start",
]


def living_tasks() -> int:
    """Tasks alive in the current trio run (compare before and after to find leaked tasks)."""
    return trio.lowlevel.current_statistics().tasks_living
