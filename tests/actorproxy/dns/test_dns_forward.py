"""`Forwarder` with a scripted exchange on virtual time: failover on timeouts, errors and refusals,
truncation retried over TCP, spoofed answers ignored, a dead server asked last for a while."""

from __future__ import annotations

from collections.abc import Callable

import dns.flags
import dns.message
import dns.rcode
import dns.rrset
import pytest
import trio

from actorproxy.config import DnsConf
from actorproxy.dns import DOWN_PERIOD, DnsCache, DnsCounters, DnsResponder, Forward, Forwarder, LocalNames

PRIMARY = ("127.0.0.1", 5301)
SECONDARY = ("127.0.0.1", 5302)

Behaviour = Callable[[dns.message.Message, bool], dns.message.Message | None]


def forward_of(name: str, *, tcp: bool = False) -> Forward:
    conf = DnsConf(upstream=("127.0.0.1:5301",))
    responder = DnsResponder(conf, LocalNames(conf.zones), DnsCache(0, 1))
    result = responder.handle(dns.message.make_query(name, "A").to_wire(), "127.0.0.1", tcp=tcp)
    assert isinstance(result, Forward)
    return result


def address(query: dns.message.Message, ip: str = "192.0.2.1") -> dns.message.Message:
    response = dns.message.make_response(query)
    response.answer.append(dns.rrset.from_text(query.question[0].name, 60, "IN", "A", ip))
    return response


def rcode(code: dns.rcode.Rcode) -> Behaviour:
    def answer(query: dns.message.Message, tcp: bool) -> dns.message.Message:
        response = dns.message.make_response(query)
        response.set_rcode(code)
        return response

    return answer


class Scripted:
    """Servers by address: a behaviour giving an answer, or None for silence (the query times out)."""

    def __init__(self, servers: dict[tuple[str, int], Behaviour | None]) -> None:
        self.servers = servers
        self.asked: list[tuple[tuple[str, int], bool]] = []

    async def __call__(self, server: tuple[str, int], wire: bytes, tcp: bool) -> bytes:
        self.asked.append((server, tcp))
        behaviour = self.servers[server]
        query = dns.message.from_wire(wire)
        if behaviour is None:
            await trio.sleep_forever()
        answer = behaviour(query, tcp)
        if answer is None:
            raise ConnectionRefusedError(111, "refused")
        return answer.to_wire()


def forwarder(script: Scripted) -> Forwarder:
    return Forwarder([PRIMARY, SECONDARY], query_timeout=2.0, counters=DnsCounters(), exchange=script)


async def test_a_silent_primary_fails_over_to_the_secondary_and_is_then_asked_last(
    autojump_clock: trio.testing.MockClock,
) -> None:
    script = Scripted({PRIMARY: None, SECONDARY: lambda q, tcp: address(q)})
    f = forwarder(script)
    start = trio.current_time()
    answer = await f.resolve(forward_of("www.example.org"))
    assert answer is not None
    assert answer.answer[0][0].address == "192.0.2.1"
    assert trio.current_time() - start == pytest.approx(2.0)
    assert f.counters.upstream_timeouts == 1 and f.counters.upstream_failovers == 1
    assert f.order() == [SECONDARY, PRIMARY]
    await f.resolve(forward_of("two.example.org"))
    assert script.asked[-1] == (SECONDARY, False) and f.counters.upstream_timeouts == 1
    await trio.sleep(DOWN_PERIOD)
    assert f.order() == [PRIMARY, SECONDARY]


async def test_servfail_and_refused_move_on_and_are_the_answer_when_nothing_better_comes(
    autojump_clock: trio.testing.MockClock,
) -> None:
    f = forwarder(Scripted({PRIMARY: rcode(dns.rcode.SERVFAIL), SECONDARY: lambda q, tcp: address(q)}))
    answer = await f.resolve(forward_of("www.example.org"))
    assert answer is not None and answer.rcode() == dns.rcode.NOERROR
    f = forwarder(Scripted({PRIMARY: rcode(dns.rcode.SERVFAIL), SECONDARY: rcode(dns.rcode.REFUSED)}))
    answer = await f.resolve(forward_of("www.example.org"))
    assert answer is not None and answer.rcode() == dns.rcode.SERVFAIL


async def test_nothing_answers_gives_none_and_counts_the_failure(
    autojump_clock: trio.testing.MockClock,
) -> None:
    f = forwarder(Scripted({PRIMARY: None, SECONDARY: lambda q, tcp: None}))
    assert await f.resolve(forward_of("www.example.org")) is None
    assert f.counters.upstream_failures == 1 and f.counters.upstream_timeouts == 1


async def test_a_truncated_answer_is_asked_again_over_tcp(autojump_clock: trio.testing.MockClock) -> None:
    def server(query: dns.message.Message, tcp: bool) -> dns.message.Message:
        response = address(query, "192.0.2.99" if tcp else "192.0.2.1")
        if not tcp:
            response.flags |= dns.flags.TC
        return response

    script = Scripted({PRIMARY: server, SECONDARY: None})
    answer = await forwarder(script).resolve(forward_of("big.example.org"))
    assert answer is not None and answer.answer[0][0].address == "192.0.2.99"
    assert script.asked == [(PRIMARY, False), (PRIMARY, True)]
    tcp_script = Scripted({PRIMARY: server, SECONDARY: None})
    await forwarder(tcp_script).resolve(forward_of("big.example.org", tcp=True))
    assert tcp_script.asked == [(PRIMARY, True)]


async def test_an_answer_with_another_id_or_question_is_not_taken(
    autojump_clock: trio.testing.MockClock,
) -> None:
    def spoofed(query: dns.message.Message, tcp: bool) -> dns.message.Message:
        response = address(query)
        response.id = (query.id + 1) % 0x10000
        return response

    def other_question(query: dns.message.Message, tcp: bool) -> dns.message.Message:
        return address(dns.message.make_query("evil.example.org", "A", id=query.id))

    for bad in (spoofed, other_question):
        f = forwarder(Scripted({PRIMARY: bad, SECONDARY: lambda q, tcp: address(q, "192.0.2.2")}))
        answer = await f.resolve(forward_of("www.example.org"))
        assert answer is not None and answer.answer[0][0].address == "192.0.2.2"


async def test_the_upstream_query_has_a_fresh_id_and_asks_for_recursion(
    autojump_clock: trio.testing.MockClock,
) -> None:
    seen: list[dns.message.Message] = []

    def server(query: dns.message.Message, tcp: bool) -> dns.message.Message:
        seen.append(query)
        return address(query)

    forward = forward_of("www.example.org")
    await forwarder(Scripted({PRIMARY: server, SECONDARY: None})).resolve(forward)
    assert seen[0].flags & dns.flags.RD and seen[0].edns == 0
    assert seen[0].question == forward.query.question
