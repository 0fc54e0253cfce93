"""The proxy test harness: a DNS server for discovery tests, with the actor test kit re-exported.

`actors.testing` holds the kit for actors of any kind (`TestProbe`, fault injection, the `actor_system` and
`probe` fixtures); this package adds what testing a proxy takes.
"""

from actors.testing import (
    DEFAULT_EXPECT_TIMEOUT,
    FaultyActor,
    InjectedFault,
    TestProbe,
    crash_on_nth,
    fail_start,
    hang_on_stop,
    living_tasks,
    slow_start,
)

from ._dns import DEFAULT_DNS_TTL, DnsServer, SrvRecord

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
