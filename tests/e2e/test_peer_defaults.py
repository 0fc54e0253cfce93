"""The server's `client_bind_to_ipv4` and `ca_file` reach upstream connections whose peer sets neither."""

from __future__ import annotations

from functools import partial
from typing import Any

import httpx
import trio

from actorproxy.config import ServerConf
from actorproxy.proxy import HttpPeer, PeerDefaults, ProxyHttp, Session, http_proxy_service
from actors import ActorSystem


class To(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.port = port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def answer(sources: list[str], stream: trio.SocketStream) -> None:
    sources.append(stream.socket.getpeername()[0])
    data = b""
    while b"\r\n\r\n" not in data:
        data += await stream.receive_some(65536)
    await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
    await stream.aclose()


async def test_connections_to_upstreams_come_from_client_bind_to_ipv4(
    nursery: trio.Nursery, system: ActorSystem
) -> None:
    sources: list[str] = []
    [listener] = await nursery.start(partial(trio.serve_tcp, partial(answer, sources), 0, host="127.0.0.1"))
    port = listener.socket.getsockname()[1]
    service = http_proxy_service(ServerConf(client_bind_to_ipv4=("127.0.0.2",)), To(port))
    service.add_tcp("127.0.0.1:0")
    await system.spawn(service.child_spec().start, name=service.name)
    host, proxy_port = service.bound[0]
    async with httpx.AsyncClient(base_url=f"http://{host}:{proxy_port}") as client:
        assert (await client.get("/")).text == "ok"
    assert sources == ["127.0.0.2"]


def test_defaults_fill_only_what_the_peer_left_unset() -> None:
    defaults = PeerDefaults(ca="/etc/ca.pem", bind_ipv4=("10.0.0.1",), bind_ipv6=("::1",))
    given = HttpPeer("example.com:443", tls=True, sni="example.com")
    tls = defaults.apply(given)
    assert (tls.options.ca, tls.options.bind_to) == ("/etc/ca.pem", "10.0.0.1")
    assert (given.options.ca, given.options.bind_to) == (None, None)  # a copy: the given peer is unchanged
    assert (tls.address, tls.tls, tls.sni) == (given.address, given.tls, given.sni)
    own = HttpPeer("[2001:db8::1]:443", tls=True, sni="x")
    own.options.ca = "/mine.pem"
    own = defaults.apply(own)
    assert (own.options.ca, own.options.bind_to) == ("/mine.pem", "::1")
    plain = HttpPeer("127.0.0.1:80", tls=False, sni="")
    plain = defaults.apply(plain)
    assert plain.options.ca is None  # no TLS, no CA


class Shared(ProxyHttp):
    """Every request goes to one peer object, as a declared route's does."""

    def __init__(self, port: int) -> None:
        self.peer = HttpPeer(("127.0.0.1", port), tls=False, sni="")
        self.peer.options.idle_timeout = 0  # a new upstream connection per request

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return self.peer


async def test_a_shared_peer_is_not_changed_by_the_defaults_of_one_request(
    nursery: trio.Nursery, system: ActorSystem
) -> None:
    sources: list[str] = []
    [listener] = await nursery.start(partial(trio.serve_tcp, partial(answer, sources), 0, host="127.0.0.1"))
    app = Shared(listener.socket.getsockname()[1])
    binds = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
    service = http_proxy_service(ServerConf(client_bind_to_ipv4=binds), app)
    service.add_tcp("127.0.0.1:0")
    await system.spawn(service.child_spec().start, name=service.name)
    host, proxy_port = service.bound[0]
    async with httpx.AsyncClient(base_url=f"http://{host}:{proxy_port}") as client:
        for _ in range(50):
            assert (await client.get("/")).text == "ok"
    assert app.peer.options.bind_to is None
    # Each request picks its own source address: with 50 picks out of 3, all three show up (the chance
    # that one is missing is 3 * (2/3)**50, about 5e-9).
    assert set(sources) == set(binds)
