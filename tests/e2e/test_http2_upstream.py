"""HTTP/2 to upstreams: an h2 origin (on the `h2` package) behind the proxy, reached by h2c with prior
knowledge or by ALPN over TLS, from HTTP/1.1 and HTTP/2 clients; multiplexing, capacity, GOAWAY."""

from __future__ import annotations

import json
import ssl
import textwrap
from typing import Any

import attrs
import httpx
import pytest
import trio
import trustme
from h2client import RawH2
from h2origin import H2Origin
from upstream import Upstream

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.proxy import ALPN, HttpPeer, PeerOptions, ProxyHttp, Session
from actorproxy.server import Server


class ToOrigin(ProxyHttp):
    def __init__(
        self,
        origin: H2Origin,
        alpn: ALPN = ALPN.H2,
        *,
        tls: bool = False,
        ca: str | None = None,
        **options: Any,
    ) -> None:
        self.origin = origin
        self.options = PeerOptions(alpn=alpn, ca=ca, **options)
        self.tls = tls

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(
            ("127.0.0.1", self.origin.port),
            tls=self.tls,
            sni="localhost" if self.tls else "",
            options=attrs.evolve(self.options),
        )


async def statuses_of(client: httpx.AsyncClient, urls: list[str]) -> list[int]:
    """The statuses of `urls` fetched all at once."""
    statuses: list[int] = []

    async def one(url: str) -> None:
        statuses.append((await client.get(url)).status_code)

    async with trio.open_nursery() as nursery:
        for url in urls:
            nursery.start_soon(one, url)
    return statuses


@pytest.fixture
async def origin(nursery: trio.Nursery) -> H2Origin:
    server = H2Origin()
    await nursery.start(server.serve)
    return server


async def test_h1_client_to_h2c_origin(origin: H2Origin, start_proxy: Any) -> None:
    base, service = await start_proxy(ToOrigin(origin))
    async with httpx.AsyncClient() as client:
        response = await client.post(f"{base}/echo/up?x=1", content=b"hello", headers={"x-test": "yes"})
        assert response.status_code == 200
        echoed = response.json()
        assert echoed["method"] == "POST"
        assert echoed["path"] == "/echo/up?x=1"
        assert echoed["body"] == "hello"
        assert ["x-test", "yes"] in echoed["headers"]
        assert echoed["authority"] == base.removeprefix("http://")
        big = await client.get(f"{base}/big?size=300000")
        assert big.content == b"x" * 300000
    assert origin.connections == 1  # both requests on one h2 connection
    assert service.pool.h2.opened == 1


async def test_h1_client_gets_h2_trailers_chunked(origin: H2Origin, start_proxy: Any) -> None:
    base, _ = await start_proxy(ToOrigin(origin))
    async with await trio.open_tcp_stream("127.0.0.1", int(base.rsplit(":", 1)[1])) as stream:
        await stream.send_all(b"GET /trailers HTTP/1.1\r\nHost: x\r\nTE: trailers\r\n\r\n")
        data = b""
        while not data.endswith(b"\r\n\r\n") or b"x-checksum" not in data:
            chunk = await stream.receive_some(65536)
            assert chunk
            data += chunk
    assert b"transfer-encoding: chunked" in data.lower()
    assert b"grpc-status: 0" in data.lower()


async def test_concurrent_requests_share_one_connection(origin: H2Origin, start_proxy: Any) -> None:
    base, _service = await start_proxy(ToOrigin(origin), listen=lambda s: s.add_tcp("127.0.0.1:0", h2c=True))
    async with httpx.AsyncClient(http2=True, http1=False) as client:
        statuses = await statuses_of(client, [f"{base}/slow?delay=0.2&n={n}" for n in range(20)])
    assert statuses == [200] * 20
    assert origin.connections == 1
    assert origin.max_open > 1


async def test_full_connection_opens_another(origin: H2Origin, start_proxy: Any) -> None:
    base, _service = await start_proxy(ToOrigin(origin, max_h2_streams=2))
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=10)) as client:
        statuses = await statuses_of(client, [f"{base}/slow?delay=0.3&n={n}" for n in range(6)])
    assert statuses == [200] * 6
    assert origin.connections >= 3
    assert origin.max_open <= 2


async def test_goaway_retires_and_retries_unprocessed(nursery: trio.Nursery, start_proxy: Any) -> None:
    origin = H2Origin(goaway_after=3)
    await nursery.start(origin.serve)
    base, _ = await start_proxy(ToOrigin(origin), max_retries=5)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=20)) as client:
        statuses = await statuses_of(client, [f"{base}/slow?delay=0.1&n={n}" for n in range(8)])
    assert statuses == [200] * 8
    assert origin.connections >= 3
    assert len(origin.requests) == 8  # nothing processed twice


async def test_h2_over_tls_by_alpn(
    nursery: trio.Nursery, start_proxy: Any, ca: trustme.CA, tmp_path: Any
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    origin = H2Origin()
    await nursery.start(origin.serve, server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    base, _service = await start_proxy(ToOrigin(origin, ALPN.H2H1, tls=True, ca=str(ca_file)))
    async with httpx.AsyncClient() as client:
        for _ in range(3):
            response = await client.get(f"{base}/echo/tls")
            assert json.loads(response.content)["path"] == "/echo/tls"
    assert origin.connections == 1


async def test_declared_in_yaml_h2c_both_sides(nursery: trio.Nursery, origin: H2Origin) -> None:
    conf = ServerConf.from_yaml(
        textwrap.dedent(
            f"""
            services:
              - name: edge
                listeners:
                  - address: 127.0.0.1:0
                    h2c: true
                routes:
                  - upstream: h2
                http2:
                  max_concurrent_streams: 50
            upstreams:
              - name: h2
                discovery:
                  static: ["127.0.0.1:{origin.port}"]
                alpn: h2
                max_h2_streams: 4
            """
        )
    )
    server = Server(conf)
    handle = build_proxy(server)
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    base = f"http://{host}:{port}"
    async with httpx.AsyncClient(http2=True, http1=False) as client:
        statuses = await statuses_of(client, [f"{base}/slow?delay=0.2&n={n}" for n in range(8)])
        response = await client.get(f"{base}/echo/yaml")
    assert statuses == [200] * 8
    assert response.http_version == "HTTP/2"
    assert response.json()["path"] == "/echo/yaml"
    assert origin.max_open <= 4
    assert origin.connections >= 2


async def test_a_stalled_client_stream_stalls_only_its_upstream_stream(
    origin: H2Origin, start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToOrigin(origin), listen=lambda s: s.add_tcp("127.0.0.1:0", h2c=True))
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]), held={1})
    try:
        stalled = await client.request("/big?size=4000000&n=stalled")
        flowing = await client.request("/big?size=600000&n=flowing")
        await client.until(lambda: client.done(flowing))
        assert len(client.answers[flowing].body) == 600_000
        assert origin.connections == 1  # both on one upstream connection
        # The stalled stream's window closed at each hop: the client's 65,535 bytes, what the proxy's window
        # for that stream lets it hold (1 MiB by default), a frame in flight; not the 4 MB.
        sent = origin.sent["/big?size=4000000&n=stalled"]
        assert sent <= 65_535 + (1 << 20) + 65_536, sent
        await client.release(stalled, 4_000_000)
    finally:
        await client.aclose()


async def test_h2h1_falls_back_to_http1_when_the_peer_picks_it(
    nursery: trio.Nursery, start_proxy: Any, ca: trustme.CA, tmp_path: Any
) -> None:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    server_context.set_alpn_protocols(["http/1.1"])  # an HTTP/1.1 origin that says so
    upstream = Upstream("tls-h1")
    await nursery.start(upstream.serve, server_context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)

    class ToTls(ProxyHttp):
        async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
            options = PeerOptions(alpn=ALPN.H2H1, ca=str(ca_file))
            return HttpPeer(("127.0.0.1", upstream.port), tls=True, sni="localhost", options=options)

    base, service = await start_proxy(ToTls(), listen=lambda s: s.add_tcp("127.0.0.1:0", h2c=True))
    async with httpx.AsyncClient(http2=True, http1=False) as client:
        for n in range(3):
            response = await client.get(f"{base}/echo/fallback?n={n}")
            assert response.http_version == "HTTP/2"  # the client's side
            assert response.json()["target"] == f"/echo/fallback?n={n}"
    assert upstream.connections == 1  # HTTP/1.1 upstream, kept alive and reused
    assert service.pool.h2.opened == 0


EVIL_RESPONSE_FIELDS = {
    "CRLF in a value": ("x-split", "a\r\nset-cookie: stolen=1"),
    "LF in a value": ("x-split", "a\nHTTP/1.1 200 OK"),
    "transfer-encoding": ("transfer-encoding", "chunked"),
    "connection": ("connection", "close"),
    "uppercase name": ("X-Upper", "1"),
    "pseudo-header in the middle": (":path", "/x"),
}


@pytest.mark.parametrize(("name", "value"), EVIL_RESPONSE_FIELDS.values(), ids=EVIL_RESPONSE_FIELDS.keys())
async def test_a_malformed_h2_response_never_reaches_an_http1_client(
    origin: H2Origin, start_proxy: Any, name: str, value: str
) -> None:
    base, _ = await start_proxy(ToOrigin(origin))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/evil", params={"name": name, "value": value})
        fine = await client.get(f"{base}/echo/after")
    assert response.status_code == 502
    assert "stolen" not in str(response.headers) and response.content != b"evil"
    assert fine.status_code == 200
