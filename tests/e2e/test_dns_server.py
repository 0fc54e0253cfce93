"""The local DNS server on loopback, asked by dig and by dnspython: site names, NXDOMAIN, forwarding with
failover from a primary that never answers to a working secondary, truncation and TCP, and a storm of
malformed packets that leaves it answering."""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator

import attrs
import dns.asyncquery
import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
import trio
import trio.lowlevel

from actorproxy.config import DnsConf
from actorproxy.dns import DnsService, LocalNames
from actorproxy.testing import DnsServer
from actors import ActorSystem

# dig's own tries are turned off: each test decides what a failure is. Seconds for one dig answer.
DIG_TIMEOUT = 5
# The primary's silence costs this much per uncached forwarded name.
QUERY_TIMEOUT = 0.5
# Malformed packets in the storm.
STORM = 3000


@attrs.frozen
class Running:
    service: DnsService
    port: int
    secondary: DnsServer


@pytest.fixture
async def silent_primary() -> AsyncIterator[int]:
    """A UDP port that reads queries and never answers: a resolver that times out."""
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await sock.bind(("127.0.0.1", 0))
    with sock:
        yield sock.getsockname()[1]


@pytest.fixture
async def dns_server(system: ActorSystem, nursery: trio.Nursery, silent_primary: int) -> Running:
    secondary = DnsServer()
    await nursery.start(secondary.serve)
    secondary.set_a("www.example.org", ["192.0.2.10"])
    secondary.set_a("big.example.org", [f"198.51.100.{n}" for n in range(1, 101)])
    conf = DnsConf(
        listen="127.0.0.1:0",
        zones=("test",),
        upstream=(f"127.0.0.1:{silent_primary}", f"127.0.0.1:{secondary.port}"),
        query_timeout=QUERY_TIMEOUT,
    )
    service = DnsService(conf, LocalNames(conf.zones, ["app.test", "*.wild.test"]))
    await system.spawn(service.child_spec().start, name=service.name)
    assert service.address is not None
    return Running(service, service.address[1], secondary)


async def dig(port: int, *args: str) -> str:
    command = ["dig", "@127.0.0.1", "-p", str(port), f"+time={DIG_TIMEOUT}", "+tries=1", *args]
    with trio.fail_after(DIG_TIMEOUT * 3):
        done = await trio.run_process(command, capture_stdout=True, capture_stderr=True)
    return done.stdout.decode()


async def ask(port: int, name: str, rdtype: str = "A", *, tcp: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    with trio.fail_after(DIG_TIMEOUT):
        if tcp:
            return await dns.asyncquery.tcp(query, "127.0.0.1", port=port)
        return await dns.asyncquery.udp(query, "127.0.0.1", port=port)


async def test_dig_gets_the_address_of_a_site(dns_server: Running) -> None:
    assert (await dig(dns_server.port, "+short", "app.test")).split() == ["127.0.0.1"]
    assert (await dig(dns_server.port, "+short", "AAAA", "app.test")).split() == ["::1"]
    assert (await dig(dns_server.port, "+short", "x.y.wild.test")).split() == ["127.0.0.1"]
    full = await dig(dns_server.port, "app.test")
    assert "status: NOERROR" in full and " aa " in full.split("flags:")[1].split(";")[0] + " "


async def test_dnspython_gets_sites_and_nxdomain_over_udp_and_tcp(dns_server: Running) -> None:
    for tcp in (False, True):
        answer = await ask(dns_server.port, "app.test", tcp=tcp)
        assert answer.rcode() == dns.rcode.NOERROR
        assert [rdata.address for rdata in answer.answer[0]] == ["127.0.0.1"]
        missing = await ask(dns_server.port, "nope.test", tcp=tcp)
        assert missing.rcode() == dns.rcode.NXDOMAIN
        assert missing.authority[0].rdtype == dns.rdatatype.SOA
    nodata = await ask(dns_server.port, "wild.test")
    assert nodata.rcode() == dns.rcode.NOERROR and not nodata.answer
    any_answer = await ask(dns_server.port, "app.test", "ANY")
    assert [rrset.rdtype for rrset in any_answer.answer] == [dns.rdatatype.A]


async def test_a_forwarded_name_fails_over_to_the_secondary_then_comes_from_the_cache(
    dns_server: Running,
) -> None:
    assert (await dig(dns_server.port, "+short", "www.example.org")).split() == ["192.0.2.10"]
    counters = dns_server.service.statistics().counters
    assert counters.upstream_timeouts == 1 and counters.upstream_failovers == 1
    assert dns_server.secondary.query_count("www.example.org", "A") == 1
    answer = await ask(dns_server.port, "www.example.org")
    assert [rdata.address for rdata in answer.answer[0]] == ["192.0.2.10"]
    assert dns_server.secondary.query_count("www.example.org", "A") == 1  # from the cache
    assert dns_server.service.statistics().counters.cache_hits == 1
    # The primary, marked down, is asked after the secondary now: no second timeout.
    assert (await dig(dns_server.port, "+short", "nothing.example.org")) == ""
    assert dns_server.service.statistics().counters.upstream_timeouts == 1


async def test_a_large_answer_is_truncated_over_udp_and_whole_over_tcp(dns_server: Running) -> None:
    udp = await ask(dns_server.port, "big.example.org")
    assert udp.flags & dns.flags.TC
    tcp = await ask(dns_server.port, "big.example.org", tcp=True)
    assert not tcp.flags & dns.flags.TC and len(tcp.answer[0]) == 100
    # dig retries over TCP by itself when it sees TC.
    assert len((await dig(dns_server.port, "+short", "big.example.org")).split()) == 100


async def test_a_storm_of_malformed_packets_leaves_the_server_answering(dns_server: Running) -> None:
    rng = random.Random(53)
    good = dns.message.make_query("app.test", "A").to_wire()
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with sock:
        for n in range(STORM):
            kind = n % 3
            if kind == 0:
                packet = rng.randbytes(rng.randrange(0, 600))
            elif kind == 1:
                packet = good[: rng.randrange(0, len(good))]
            else:
                packet = bytearray(good)
                for _ in range(4):
                    packet[rng.randrange(len(packet))] = rng.randrange(256)
                packet = bytes(packet)
            await sock.sendto(packet, ("127.0.0.1", dns_server.port))
            if n % 200 == 0:
                await trio.lowlevel.checkpoint()
        # A TCP connection sending garbage is closed, and the server goes on.
        with trio.fail_after(DIG_TIMEOUT):
            stream = await trio.open_tcp_stream("127.0.0.1", dns_server.port)
            async with stream:
                await stream.send_all(b"\x00\x05hello")
                assert await stream.receive_some() == b""
    assert (await dig(dns_server.port, "+short", "app.test")).split() == ["127.0.0.1"]
    counters = dns_server.service.statistics().counters
    assert counters.malformed > STORM // 3
