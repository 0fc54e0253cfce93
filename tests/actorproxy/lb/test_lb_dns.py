"""DNS discovery against the project's own DNS server on 127.0.0.1, port 0: A/AAAA, SRV, TTL caching,
failures, and a load balancer that follows a changing zone.

TTLs run on trio's clock, so those tests use the autojump clock: the DNS server is in the same trio run and
answers at once over loopback, so virtual time only moves while every task waits for a timer.
"""

from __future__ import annotations

import logging
from typing import Any

import dns.asyncquery
import dns.message
import dns.rcode
import pytest
import trio
import trio.testing

from actorproxy.lb import (
    Backend,
    DnsDiscovery,
    DnsDiscoveryError,
    LoadBalancer,
    LoadBalancerActor,
    ServiceDiscovery,
)
from actorproxy.testing import DnsServer, SrvRecord
from actors import ActorProxyError, ActorSystem

HOST = "api.internal"
SERVICE = "_http._tcp.api.internal"


@pytest.fixture
async def dns_server(nursery: trio.Nursery) -> DnsServer:
    server = DnsServer()
    await nursery.start(server.serve)
    return server


def host_discovery(server: DnsServer, **options: Any) -> DnsDiscovery:
    options.setdefault("port", 8080)
    return DnsDiscovery.host(HOST, nameservers=[server.host], nameserver_port=server.port, **options)


def srv_discovery(server: DnsServer, **options: Any) -> DnsDiscovery:
    return DnsDiscovery.srv(SERVICE, nameservers=[server.host], nameserver_port=server.port, **options)


async def backends_of(discovery: ServiceDiscovery) -> set[tuple[str, int]]:
    """(addr, weight) of each backend; checks that DNS never decides enablement."""
    backends, enablement = await discovery.discover()
    assert enablement == {}
    return {(backend.addr_str, backend.weight) for backend in backends}


# -- A / AAAA ----------------------------------------------------------------------------------------------


async def test_a_records_become_backends_on_the_given_port(dns_server: DnsServer) -> None:
    dns_server.set_a(HOST, ["127.0.0.1", "127.0.0.2"])
    discovery = host_discovery(dns_server, weight=3, families=["A"])
    assert await backends_of(discovery) == {("127.0.0.1:8080", 3), ("127.0.0.2:8080", 3)}
    assert dns_server.query_count(HOST, "AAAA") == 0  # only the family asked for


async def test_aaaa_records_alone_are_enough(dns_server: DnsServer) -> None:
    dns_server.set_aaaa(HOST, ["::1"])
    discovery = host_discovery(dns_server)
    assert await backends_of(discovery) == {("[::1]:8080", 1)}
    # The A query found no records (NOERROR, no answer): not an error while AAAA answers.
    assert dns_server.query_count(HOST, "A") == 1


async def test_both_families_and_what_ext_records(dns_server: DnsServer) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"])
    dns_server.set_aaaa(HOST, ["::1"])
    backends, _ = await host_discovery(dns_server).discover()
    assert backends == {Backend("127.0.0.1:8080"), Backend("[::1]:8080")}
    v4 = next(b for b in backends if b.addr == ("127.0.0.1", 8080))
    assert v4.ext == {"dns_name": HOST, "dns_records": ("api.internal. A 127.0.0.1",)}


async def test_a_cname_is_followed(dns_server: DnsServer) -> None:
    dns_server.set_records(HOST, "CNAME", ["real.internal."])
    dns_server.set_a("real.internal", ["127.0.0.9"])
    discovery = host_discovery(dns_server, families=("A",))
    assert await backends_of(discovery) == {("127.0.0.9:8080", 1)}


async def test_no_such_name_is_an_error_naming_the_query(dns_server: DnsServer) -> None:
    discovery = host_discovery(dns_server)
    with pytest.raises(DnsDiscoveryError, match=r"^DNS A/AAAA api\.internal: no such name \(NXDOMAIN\)$"):
        await discovery.discover()


async def test_a_name_without_addresses_is_an_error(dns_server: DnsServer) -> None:
    dns_server.set_records(HOST, "TXT", ['"not an address"'])
    with pytest.raises(DnsDiscoveryError, match=r"^DNS A/AAAA api\.internal: no A or AAAA records$") as info:
        await host_discovery(dns_server).discover()
    assert isinstance(info.value, ActorProxyError)
    assert (info.value.query, info.value.reason) == ("A/AAAA api.internal", "no A or AAAA records")


# -- SRV ---------------------------------------------------------------------------------------------------


async def test_srv_uses_the_lowest_priority_and_the_record_weights(dns_server: DnsServer) -> None:
    dns_server.set_srv(
        SERVICE,
        [
            SrvRecord(priority=10, weight=5, port=8001, target="a.internal"),
            SrvRecord(priority=10, weight=0, port=8002, target="b.internal"),  # weight 0 becomes 1
            SrvRecord(priority=20, weight=9, port=8003, target="c.internal"),  # a fallback: not used
        ],
    )
    for name, address in (("a", "127.0.0.1"), ("b", "127.0.0.2"), ("c", "127.0.0.3")):
        dns_server.set_a(f"{name}.internal", [address])
    backends, _ = await srv_discovery(dns_server).discover()
    assert {(b.addr_str, b.weight) for b in backends} == {("127.0.0.1:8001", 5), ("127.0.0.2:8002", 1)}
    # The server sent the targets' addresses in the additional section: no query for them.
    assert dns_server.query_count("a.internal") == dns_server.query_count("b.internal") == 0
    first = min(backends)
    assert first.ext == {
        "dns_name": "a.internal",
        "dns_records": ("_http._tcp.api.internal. SRV 10 5 8001 a.internal.", "a.internal. A 127.0.0.1"),
    }


async def test_srv_targets_are_resolved_when_the_additional_section_is_empty(dns_server: DnsServer) -> None:
    dns_server.additional = False
    dns_server.set_srv(SERVICE, [(10, 1, 8001, "a.internal"), (10, 2, 8002, "b.internal")])
    dns_server.set_a("a.internal", ["127.0.0.1"])
    dns_server.set_aaaa("b.internal", ["::1"])
    assert await backends_of(srv_discovery(dns_server)) == {("127.0.0.1:8001", 1), ("[::1]:8002", 2)}
    assert dns_server.query_count("a.internal", "A") == 1
    assert dns_server.query_count("b.internal", "AAAA") == 1


async def test_srv_falls_back_to_the_next_priority_only_when_no_target_has_an_address(
    dns_server: DnsServer,
) -> None:
    dns_server.set_srv(SERVICE, [(10, 1, 8001, "gone.internal"), (20, 1, 8002, "b.internal")])
    dns_server.set_a("b.internal", ["127.0.0.2"])
    assert await backends_of(srv_discovery(dns_server)) == {("127.0.0.2:8002", 1)}
    dns_server.set_a("gone.internal", ["127.0.0.1"])
    assert await backends_of(srv_discovery(dns_server)) == {("127.0.0.1:8001", 1)}


async def test_srv_records_for_the_same_address_add_their_weights(dns_server: DnsServer) -> None:
    dns_server.set_srv(SERVICE, [(10, 2, 8001, "a.internal"), (10, 3, 8001, "alias.internal")])
    dns_server.set_a("a.internal", ["127.0.0.1"])
    dns_server.set_a("alias.internal", ["127.0.0.1"])
    assert await backends_of(srv_discovery(dns_server)) == {("127.0.0.1:8001", 5)}


async def test_srv_errors_name_the_query(dns_server: DnsServer) -> None:
    discovery = srv_discovery(dns_server)
    with pytest.raises(DnsDiscoveryError, match=r"^DNS SRV _http\._tcp\.api\.internal: no such name"):
        await discovery.discover()
    dns_server.set_srv(SERVICE, [(0, 0, 0, ".")])  # RFC 2782: decidedly not available
    with pytest.raises(
        DnsDiscoveryError, match=r"SRV _http\._tcp\.api\.internal: the service is not offered"
    ):
        await discovery.discover()
    dns_server.set_srv(SERVICE, [(10, 1, 8001, "gone.internal")])
    with pytest.raises(
        DnsDiscoveryError, match=r"SRV _http\._tcp\.api\.internal: no SRV target has an address"
    ):
        await discovery.discover()


async def test_a_failing_target_lookup_names_the_target(
    dns_server: DnsServer, autojump_clock: trio.testing.MockClock
) -> None:
    dns_server.additional = False
    dns_server.set_srv(SERVICE, [(10, 1, 8001, "a.internal")])
    discovery = srv_discovery(dns_server, query_timeout=2.0)
    dns_server.set_a("a.internal", ["127.0.0.1"])
    dns_server.drop(name="a.internal")  # the SRV query is answered, the target's A query is not
    with pytest.raises(DnsDiscoveryError) as info:
        await discovery.discover()
    assert str(info.value) == (
        "DNS A a.internal (a target of SRV _http._tcp.api.internal): no answer within 2 s"
    )


async def test_a_large_answer_comes_over_tcp_after_a_truncated_one(dns_server: DnsServer) -> None:
    addresses = [f"127.0.1.{n}" for n in range(1, 201)]  # far more than 512 bytes
    dns_server.set_a(HOST, addresses)
    backends, _ = await host_discovery(dns_server, families=["A"]).discover()
    assert {b.addr for b in backends} == {(address, 8080) for address in addresses}
    assert dns_server.query_count(HOST, "A") == 2  # over UDP (truncated), then over TCP


# -- TTL ---------------------------------------------------------------------------------------------------


async def test_answers_are_cached_for_their_ttl(
    dns_server: DnsServer, autojump_clock: trio.testing.MockClock
) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"], ttl=30)
    discovery = host_discovery(dns_server, families=["A"])
    assert await backends_of(discovery) == {("127.0.0.1:8080", 1)}
    dns_server.set_a(HOST, ["127.0.0.2"], ttl=30)
    await trio.sleep(29)
    assert await backends_of(discovery) == {("127.0.0.1:8080", 1)}  # from the cache
    assert dns_server.query_count(HOST) == 1
    assert discovery.lookups == 1
    await trio.sleep(1.5)
    assert await backends_of(discovery) == {("127.0.0.2:8080", 1)}
    assert dns_server.query_count(HOST) == 2
    assert repr(discovery) == "<DnsDiscovery A api.internal backends=1 lookups=2>"


async def test_the_smallest_ttl_of_the_records_used_counts(
    dns_server: DnsServer, autojump_clock: trio.testing.MockClock
) -> None:
    dns_server.set_srv(SERVICE, [(10, 1, 8001, "a.internal")], ttl=60)
    dns_server.set_a("a.internal", ["127.0.0.1"], ttl=5)
    discovery = srv_discovery(dns_server)
    await discovery.discover()
    await trio.sleep(4)
    await discovery.discover()
    assert dns_server.query_count(SERVICE) == 1
    await trio.sleep(1.5)
    await discovery.discover()
    assert dns_server.query_count(SERVICE) == 2


@pytest.mark.parametrize(
    ("ttl", "options", "cached_for"),
    [(0, {}, 1.0), (86400, {}, 300.0), (0, {"min_ttl": 0.0}, 0.0), (86400, {"max_ttl": 10.0}, 10.0)],
)
async def test_ttls_are_clamped(
    dns_server: DnsServer,
    autojump_clock: trio.testing.MockClock,
    ttl: int,
    options: dict[str, float],
    cached_for: float,
) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"], ttl=ttl)
    discovery = host_discovery(dns_server, families=["A"], **options)
    await discovery.discover()
    if cached_for:
        await trio.sleep(cached_for - 0.1)
        await discovery.discover()
        assert discovery.lookups == 1
    await trio.sleep(0.2)
    await discovery.discover()
    assert discovery.lookups == 2


# -- failures ----------------------------------------------------------------------------------------------


async def test_a_server_failure_is_an_error_and_is_not_cached(
    dns_server: DnsServer, autojump_clock: trio.testing.MockClock
) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"], ttl=5)
    discovery = host_discovery(dns_server, families=["A"])
    await discovery.discover()
    await trio.sleep(6)
    dns_server.fail("SERVFAIL")
    with pytest.raises(DnsDiscoveryError, match=r"^DNS A api\.internal: every nameserver failed: .*SERVFAIL"):
        await discovery.discover()
    dns_server.recover()
    dns_server.set_a(HOST, ["127.0.0.2"], ttl=5)
    # No time passes: the failure left nothing in the cache, so this call asks again.
    assert await backends_of(discovery) == {("127.0.0.2:8080", 1)}
    assert discovery.lookups == 3


async def test_a_silent_server_times_out_on_the_query_timeout(
    dns_server: DnsServer, autojump_clock: trio.testing.MockClock
) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"])
    dns_server.drop()
    discovery = host_discovery(dns_server, query_timeout=2.5)
    start = trio.current_time()
    with pytest.raises(DnsDiscoveryError, match=r"^DNS A api\.internal: no answer within 2\.5 s$"):
        await discovery.discover()
    assert trio.current_time() - start == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"port": None}, r"^port: required"),
        ({"port": 0}, r"^port: must be an int in \[1, 65535\], got 0"),
        ({"weight": 0}, r"^weight: must be an int >= 1"),
        ({"families": ["A", "MX"]}, r"^families: must be 'A' and/or 'AAAA'"),
        ({"families": []}, r"^families:"),
        ({"nameservers": ["dns.example"]}, r"^nameservers\[0\]: 'dns.example' is not an IP address"),
        ({"nameservers": []}, r"^nameservers: empty"),
        ({"nameservers": ["127.0.0.1"], "nameserver_port": 70000}, r"^nameserver_port:"),
        ({"query_timeout": 0}, r"^query_timeout: must be > 0 seconds"),
        ({"min_ttl": -1}, r"^min_ttl: must be >= 0 seconds"),
        ({"min_ttl": 10, "max_ttl": 5}, r"^min_ttl: 10 is above max_ttl 5"),
    ],
)
def test_bad_arguments_are_named(options: dict[str, Any], message: str) -> None:
    options.setdefault("port", 8080)
    options.setdefault("nameservers", ["127.0.0.1"])
    with pytest.raises(ValueError, match=message):
        DnsDiscovery(HOST, **options)


def test_srv_takes_port_and_weight_from_its_records() -> None:
    with pytest.raises(ValueError, match=r"^port: an SRV lookup"):
        DnsDiscovery(SERVICE, srv=True, port=80, nameservers=["127.0.0.1"])
    with pytest.raises(ValueError, match=r"^weight: an SRV lookup"):
        DnsDiscovery(SERVICE, srv=True, weight=2, nameservers=["127.0.0.1"])
    with pytest.raises(ValueError, match=r"^name: "):
        DnsDiscovery.srv("", nameservers=["127.0.0.1"])
    discovery = DnsDiscovery.srv(SERVICE + ".", nameservers=["::1"])
    assert (discovery.name, discovery.query) == (SERVICE, f"SRV {SERVICE}")


# -- in a load balancer ------------------------------------------------------------------------------------


async def test_a_load_balancer_follows_the_zone_and_keeps_its_set_when_dns_fails(
    actor_system: ActorSystem,
    dns_server: DnsServer,
    autojump_clock: trio.testing.MockClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    old, new = Backend("127.0.0.1:8080"), Backend("127.0.0.2:8080")
    dns_server.set_a(HOST, ["127.0.0.1"], ttl=5)
    lb = LoadBalancer.from_backends(host_discovery(dns_server, families=["A"]))
    lb.update_frequency = 1.0
    await actor_system.spawn(LoadBalancerActor(lb), name="lb")  # t=0: the first discovery
    assert lb.snapshot.backends == {old}
    assert lb.select(b"", 256) == old

    dns_server.set_a(HOST, ["127.0.0.2"], ttl=5)
    await trio.sleep(3.5)  # updates at t=1, 2, 3 answer from the cache
    assert dns_server.query_count(HOST) == 1
    assert lb.select(b"", 256) == old
    await trio.sleep(2)  # the update at t=5 finds the TTL out and asks again
    assert dns_server.query_count(HOST) == 2
    assert lb.snapshot.backends == {new}
    assert lb.select(b"", 256) == new

    dns_server.fail("REFUSED")
    with caplog.at_level(logging.ERROR, logger="actorproxy.lb"):
        await trio.sleep(10)  # from t=10, when the TTL runs out, every update asks and is refused
    assert dns_server.query_count(HOST) > 2
    assert lb.snapshot.backends == {new}  # the last good set stays
    assert lb.select(b"", 256) == new
    assert "DNS A api.internal: every nameserver failed" in caplog.text
    assert "REFUSED" in caplog.text


# -- the test server ---------------------------------------------------------------------------------------


async def test_the_dns_server_answers_nxdomain_nodata_and_over_tcp(dns_server: DnsServer) -> None:
    dns_server.set_a(HOST, ["127.0.0.1"])

    async def ask(name: str, rdtype: str, *, tcp: bool = False) -> dns.message.Message:
        query = dns.message.make_query(name, rdtype)
        send = dns.asyncquery.tcp if tcp else dns.asyncquery.udp
        with trio.fail_after(5):
            return await send(query, dns_server.host, port=dns_server.port)

    nxdomain = await ask("other.internal", "A")
    assert nxdomain.rcode() == dns.rcode.NXDOMAIN
    nodata = await ask(HOST, "AAAA")
    assert (nodata.rcode(), nodata.answer) == (dns.rcode.NOERROR, [])
    over_tcp = await ask(HOST, "A", tcp=True)
    assert [str(rrset) for rrset in over_tcp.answer] == ["api.internal. 30 IN A 127.0.0.1"]
    assert dns_server.query_count(HOST) == 2
    assert dns_server.queries == 3
    dns_server.remove(HOST, "A")
    assert (await ask(HOST, "A")).rcode() == dns.rcode.NXDOMAIN  # no record of any type left


def test_the_dns_server_names_bad_input() -> None:
    server = DnsServer()
    with pytest.raises(ValueError, match="rcode: unknown DNS response code 'BROKEN'"):
        server.fail("BROKEN")
    with pytest.raises(ValueError, match="'XYZ': not a DNS record type"):
        server.set_records(HOST, "XYZ", ["1"])
    with pytest.raises(ValueError, match=r"api.internal A: not valid record data \['nope'\]"):
        server.set_a(HOST, ["nope"])
    with pytest.raises(RuntimeError, match="not listening yet"):
        _ = server.port
    with pytest.raises(ValueError, match="DnsServer host: 'localhost' is not an IP address"):
        DnsServer("localhost")
