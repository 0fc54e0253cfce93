"""Pingora's behaviour where actorproxy once differed: CONNECT, per-request peer timeouts on a pooled
connection, the number of tries, and a request that loops back to the proxy."""

from __future__ import annotations

import subprocess
from functools import partial
from typing import Any

import httpx
import trio
from rawhttp import open_stream, parse_responses
from upstream import Upstream

from actorproxy.config import Forwarding
from actorproxy.http import Error, ErrorType
from actorproxy.proxy import HttpPeer, ProxyHttp, Session


class ToPort(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port
        self.peers = 0

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        self.peers += 1
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def read_all(stream: trio.abc.Stream) -> bytes:
    data = b""
    with trio.fail_after(10):
        while chunk := await stream.receive_some(65536):
            data += chunk
    return data


# -- CONNECT -------------------------------------------------------------------------------------------------

CONNECT = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"


async def test_connect_is_answered_405_before_any_phase(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = ToPort(upstreams[0].port)
    base, service = await start_proxy(app)
    stream = await open_stream(base)
    await stream.send_all(CONNECT + b"\x16\x03\x01 what a TLS client sends next")
    [(status, headers, _)] = parse_responses(await read_all(stream))
    fields = {name.lower(): value for name, value in headers}
    assert status == 405
    assert "CONNECT" not in fields["allow"] and "GET" in fields["allow"]
    assert fields["connection"] == "close"  # what follows on the connection is never read as a request
    assert app.peers == 0 and upstreams[0].requests == []
    assert service.counters.rejected == 1


async def test_curl_through_the_proxy_as_a_forward_proxy_is_refused(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToPort(upstreams[0].port))
    done = await trio.run_process(
        ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "-p", "-x", base, "https://example.com/"],
        capture_stdout=True,
        capture_stderr=True,
        check=False,
    )
    assert done.returncode != 0  # curl gives up on the tunnel
    assert done.stdout.decode().strip() == "405"


async def test_connect_goes_to_the_phases_when_allowed(nursery: trio.Nursery, start_proxy: Any) -> None:
    heads: list[bytes] = []

    async def establish(stream: trio.SocketStream) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stream.receive_some(65536)
        heads.append(head)
        await stream.send_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        await stream.aclose()

    [listener] = await nursery.start(partial(trio.serve_tcp, establish, 0, host="127.0.0.1"))
    app = ToPort(listener.socket.getsockname()[1])
    base, _ = await start_proxy(app, allow_connect_method_proxying=True)
    stream = await open_stream(base)
    await stream.send_all(CONNECT)
    with trio.fail_after(10):
        answer = await stream.receive_some(65536)
    await stream.aclose()
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert app.peers == 1
    assert [head.split(b" ", 2)[:2] for head in heads] == [[b"CONNECT", b"example.com:443"]]


def test_curl_is_installed() -> None:
    # The CONNECT tests above drive curl; `.ci/run` installs it.
    assert subprocess.run(["curl", "--version"], capture_output=True, check=False).returncode == 0


# -- per-request peer timeouts -------------------------------------------------------------------------------


class TimeoutByPath(ToPort):
    """`/slow...` gets a 0.5 s read timeout, everything else the default (60 s)."""

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        peer = await super().upstream_peer(session, ctx)
        if session.req_header.path.startswith("/slow"):
            peer.options.read_timeout = 0.5
        return peer

    async def connected_to_upstream(self, session: Session, reused: bool, peer: HttpPeer, ctx: Any) -> None:
        session.req_header.insert_header("x-reused", str(reused))


async def test_a_read_timeout_set_for_one_request_holds_on_a_pooled_connection(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, service = await start_proxy(TimeoutByPath(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/echo")).status_code == 200  # opens the connection, 60 s timeout
        with trio.fail_after(5):
            slow = await client.get("/slow?delay=3")
        assert slow.status_code == 504
    assert service.pool.statistics().hits == 1  # the slow request went on the pooled connection


class LongReadTimeout(ToPort):
    """A pooled connection opened with a 0.2 s read timeout; later requests ask for 5 s."""

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        peer = await super().upstream_peer(session, ctx)
        peer.options.read_timeout = 0.2 if session.req_header.path == "/echo" else 5.0
        return peer


async def test_a_longer_timeout_for_one_request_holds_on_a_pooled_connection(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, service = await start_proxy(LongReadTimeout(upstreams[0].port))
    async with httpx.AsyncClient(base_url=base) as client:
        assert (await client.get("/echo")).status_code == 200
        assert (await client.get("/slow?delay=0.5")).status_code == 200  # not the 0.2 s it was opened with
    assert service.pool.statistics().hits == 1


# -- the number of tries -------------------------------------------------------------------------------------


class AlwaysRetry(ToPort):
    def fail_to_connect(self, session: Session, peer: HttpPeer, ctx: Any, e: Error) -> Error:
        e.set_retry(True)
        return e


async def test_max_retries_is_the_number_of_tries(start_proxy: Any) -> None:
    with trio.socket.socket() as held:
        await held.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        app = AlwaysRetry(held.getsockname()[1])
        base, _ = await start_proxy(app, max_retries=5)
        async with httpx.AsyncClient(base_url=base) as client:
            assert (await client.get("/")).status_code == 502
    assert app.peers == 5


# -- loops ---------------------------------------------------------------------------------------------------


async def test_a_request_that_comes_back_to_the_proxy_gets_508(start_proxy: Any) -> None:
    # A route that points at the proxy itself: the second pass sees its own pseudonym in Via.
    app = ToPort(0)
    base, service = await start_proxy(app, forwarding=Forwarding(via="edge-7"))
    app.port = service.bound[0][1]
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/loop")
    assert response.status_code == 508
    assert app.peers == 1  # the looped request was not forwarded again
    assert service.counters.errors.get(ErrorType.http_status(508).name) == 1


async def test_another_proxys_via_is_forwarded(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToPort(upstreams[0].port), forwarding=Forwarding(via="edge-7"))
    async with httpx.AsyncClient(base_url=base) as client:
        response = await client.get("/echo", headers={"Via": "1.1 edge-6, 1.0 edge-70 (comment)"})
    assert response.status_code == 200
    [request] = upstreams[0].requests
    via = [value for name, value in request["headers"] if name.lower() == "via"]
    assert via == ["1.1 edge-6, 1.0 edge-70 (comment), 1.1 edge-7"]
