"""The proxy test harness: the proxy on memory streams, a DNS server, with the actor test kit re-exported.

`actors.testing` holds the kit for actors of any kind (`TestProbe`, fault injection, the `actor_system` and
`probe` fixtures); this package adds what testing a proxy takes:

- `MemoryListener`: connections made in memory, accepted by a service (`HttpProxyService.add_listener`);
- `MemoryNetwork` (`open_memory_network()`): in-memory upstreams by address, the service's `connect`;
- `Origin`: an HTTP/1.1 origin server to serve an address of the network; `exchange`: one request and its
  response on any stream;
- `ScriptedStream`: a stream that plays back a script of reads and records the writes, to drive a codec;
- `DnsServer`: a DNS server on loopback, for discovery tests;
- `RedisServer`: a real `redis-server` on loopback, for tests of what keeps state in Redis.

docs/testing.md shows them testing a `ProxyHttp` application without a socket.
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

from ._client import RawResponse, exchange
from ._dns import DEFAULT_DNS_TTL, DnsServer, SrvRecord
from ._memory import MemoryListener, MemoryNetwork, UpstreamHandler, open_memory_network
from ._origin import Origin, OriginRequest, OriginResponse
from ._redis import RedisServer
from ._scripted import ScriptedStream, Starved

__all__ = [
    "DEFAULT_DNS_TTL",
    "DEFAULT_EXPECT_TIMEOUT",
    "DnsServer",
    "FaultyActor",
    "InjectedFault",
    "MemoryListener",
    "MemoryNetwork",
    "Origin",
    "OriginRequest",
    "OriginResponse",
    "RawResponse",
    "RedisServer",
    "ScriptedStream",
    "SrvRecord",
    "Starved",
    "TestProbe",
    "UpstreamHandler",
    "crash_on_nth",
    "exchange",
    "fail_start",
    "hang_on_stop",
    "living_tasks",
    "open_memory_network",
    "slow_start",
]
