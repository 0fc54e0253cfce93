"""Test helpers for actorproxy actors: `TestProbe`, fault injection, a DNS server, and pytest fixtures.

The fixtures `actor_system` and `probe` are registered as a pytest plugin when actorproxy is installed.
"""

import trio

from ._dns import DEFAULT_DNS_TTL, DnsServer, SrvRecord
from ._faults import FaultyActor, InjectedFault, crash_on_nth, fail_start, hang_on_stop, slow_start
from ._probe import DEFAULT_EXPECT_TIMEOUT, TestProbe

__all__ = [
    "DEFAULT_DNS_TTL",
    "DEFAULT_EXPECT_TIMEOUT",
    "DnsServer",
    "FaultyActor",
    "InjectedFault",
    "SrvRecord",
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
