"""`DnsResponder` on packets, without sockets: local answers, refusals, garbage, sizes, rate limits."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
import trio

from actorproxy.config import DnsConf
from actorproxy.dns import DnsCache, DnsResponder, Forward, LocalNames, NameKind

REMOTE = "192.0.2.7"


def responder(**changes: object) -> DnsResponder:
    conf = DnsConf(upstream=("127.0.0.1:5300",), **changes)  # type: ignore[arg-type]
    return DnsResponder(conf, LocalNames(conf.zones, ["app.test", "*.wild.test"]), DnsCache(16, 3600))


def answer(wire: bytes | Forward | None) -> dns.message.Message:
    assert isinstance(wire, bytes)
    return dns.message.from_wire(wire)


def query(name: str, rdtype: str = "A", **kwargs: object) -> bytes:
    return dns.message.make_query(name, rdtype, **kwargs).to_wire()  # type: ignore[arg-type]


def test_local_names() -> None:
    names = LocalNames(["test"], ["app.test", "*.wild.test", "a.b.c.test", "example.org"])
    assert names.kind("app.test") is NameKind.SITE
    assert names.kind("x.y.wild.test") is NameKind.SITE
    assert names.kind("wild.test") is NameKind.EMPTY  # the wildcard's base has no address of its own
    assert names.kind("b.c.test") is NameKind.EMPTY and names.kind("c.test") is NameKind.EMPTY
    assert names.kind("test") is NameKind.EMPTY
    assert names.kind("other.test") is NameKind.MISSING
    assert names.names() == ["*.wild.test", "a.b.c.test", "app.test"]  # example.org is outside the zone
    names.publish(["new.test"])
    assert names.kind("app.test") is NameKind.MISSING and names.kind("new.test") is NameKind.SITE


async def test_a_site_is_answered_authoritatively_with_the_query_id_and_flags() -> None:
    wire = query("APP.test.", "A")
    response = answer(responder().handle(wire, "127.0.0.1", tcp=False))
    sent = dns.message.from_wire(wire)
    assert response.id == sent.id and response.question == sent.question
    assert response.flags & dns.flags.QR and response.flags & dns.flags.AA and response.flags & dns.flags.RD
    assert response.answer[0].ttl == 5 and response.answer[0][0].address == "127.0.0.1"


async def test_other_types_get_nodata_and_unknown_names_nxdomain_with_the_soa() -> None:
    r = responder(address6=None)
    for name, rdtype, rcode in (
        ("app.test", "MX", dns.rcode.NOERROR),
        ("app.test", "AAAA", dns.rcode.NOERROR),
        ("nope.test", "A", dns.rcode.NXDOMAIN),
    ):
        response = answer(r.handle(query(name, rdtype), "127.0.0.1", tcp=False))
        assert response.rcode() == rcode and not response.answer
        assert response.authority[0].rdtype == dns.rdatatype.SOA


async def test_edns_is_answered_with_edns_and_a_newer_version_gets_badvers() -> None:
    r = responder()
    response = answer(r.handle(query("app.test", use_edns=0, payload=4096), "127.0.0.1", tcp=False))
    assert response.edns == 0 and response.payload == 1232
    bad = answer(r.handle(query("app.test", use_edns=1), "127.0.0.1", tcp=False))
    assert bad.rcode() == dns.rcode.BADVERS


async def test_malformed_packets_are_dropped_and_counted_and_odd_queries_get_error_codes() -> None:
    r = responder()
    good = query("app.test")
    for garbage in (b"", b"\x00" * 11, good[:15], b"\xff" * 40, answer_wire(good)):
        assert r.handle(garbage, "127.0.0.1", tcp=False) is None
    assert r.counters.malformed == 5
    two = dns.message.make_query("app.test", "A")
    two.question.append(two.question[0])
    assert answer(r.handle(two.to_wire(), "127.0.0.1", tcp=False)).rcode() == dns.rcode.FORMERR
    notify = dns.message.make_query("app.test", "A")
    notify.set_opcode(dns.opcode.NOTIFY)
    assert answer(r.handle(notify.to_wire(), "127.0.0.1", tcp=False)).rcode() == dns.rcode.NOTIMP
    chaos = dns.message.make_query("version.bind", "TXT", "CH")
    assert answer(r.handle(chaos.to_wire(), "127.0.0.1", tcp=False)).rcode() == dns.rcode.REFUSED


def answer_wire(wire: bytes) -> bytes:
    message = dns.message.from_wire(wire)
    return dns.message.make_response(message).to_wire()


async def test_forwarding_is_for_loopback_and_allowed_networks_only() -> None:
    r = responder(allow=("10.0.0.0/8",))
    assert isinstance(r.handle(query("example.org"), "127.0.0.1", tcp=False), Forward)
    assert isinstance(r.handle(query("example.org"), "::1", tcp=False), Forward)
    assert isinstance(r.handle(query("example.org"), "10.1.2.3", tcp=False), Forward)
    refused = answer(r.handle(query("example.org"), REMOTE, tcp=False))
    assert refused.rcode() == dns.rcode.REFUSED
    # The local zones answer anyone.
    assert answer(r.handle(query("app.test"), REMOTE, tcp=False)).answer
    no_upstream = DnsResponder(DnsConf(), LocalNames(["test"]), DnsCache(16, 60))
    assert (
        answer(no_upstream.handle(query("example.org"), "127.0.0.1", tcp=False)).rcode() == dns.rcode.REFUSED
    )


async def test_udp_answers_to_unverified_sources_stay_small_until_tcp_proves_the_address() -> None:
    r = responder()
    many = dns.message.make_query("big.example.org", "A", use_edns=0, payload=4096)
    upstream = dns.message.make_response(many)
    upstream.answer.append(
        dns.rrset.from_text_list("big.example.org.", 60, "IN", "A", [f"198.51.100.{n}" for n in range(1, 61)])
    )
    wire = r.encode(r.relay(many, upstream), many, REMOTE, tcp=False)
    assert wire is not None and len(wire) <= 512 and dns.message.from_wire(wire).flags & dns.flags.TC
    loopback = r.encode(r.relay(many, upstream), many, "127.0.0.1", tcp=False)
    assert loopback is not None and 512 < len(loopback) <= 1232
    r.clients.verify(REMOTE)
    verified = r.encode(r.relay(many, upstream), many, REMOTE, tcp=False)
    assert verified is not None and len(verified) > 512
    tcp = r.encode(r.relay(many, upstream), many, REMOTE, tcp=True)
    assert tcp is not None and int.from_bytes(tcp[:2], "big") == len(tcp) - 2
    assert not dns.message.from_wire(tcp[2:]).flags & dns.flags.TC


async def test_responses_to_one_network_are_rate_limited_with_every_second_one_slipped(
    autojump_clock: trio.testing.MockClock,
) -> None:
    r = responder(rate_limit=5)
    results = [r.handle(query("app.test"), "192.0.2.9", tcp=False) for _ in range(9)]
    assert all(isinstance(result, bytes) for result in results[:5])
    late = results[5:]
    slipped = [answer(result) for result in late if result is not None]
    assert len(slipped) == 2 and all(m.flags & dns.flags.TC and not m.answer for m in slipped)
    assert r.counters.rate_limited == 4
    # The same /24 shares the bucket (this one slips, as the one two before it did); loopback is never
    # limited.
    assert not answer(r.handle(query("app.test"), "192.0.2.200", tcp=False)).answer
    assert all(isinstance(r.handle(query("app.test"), "127.0.0.1", tcp=False), bytes) for _ in range(50))
    await trio.sleep(1)  # a second refills the bucket
    assert isinstance(r.handle(query("app.test"), "192.0.2.9", tcp=False), bytes)


@pytest.mark.parametrize("rdtype", ["A", "AAAA"])
async def test_a_cached_upstream_answer_is_served_with_its_ttl_lowered(
    autojump_clock: trio.testing.MockClock, rdtype: str
) -> None:
    r = responder()
    forward = r.handle(query("www.example.org", rdtype), "127.0.0.1", tcp=False)
    assert isinstance(forward, Forward)
    upstream = dns.message.make_response(forward.query)
    address = "192.0.2.1" if rdtype == "A" else "2001:db8::1"
    upstream.answer.append(dns.rrset.from_text("www.example.org.", 100, "IN", rdtype, address))
    r.remember(forward, upstream)
    await trio.sleep(40)
    cached = answer(r.handle(query("www.example.org", rdtype), "127.0.0.1", tcp=False))
    assert cached.answer[0].ttl == 60 and r.counters.cache_hits == 1
    await trio.sleep(61)
    assert isinstance(r.handle(query("www.example.org", rdtype), "127.0.0.1", tcp=False), Forward)
