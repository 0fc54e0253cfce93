"""Transports end to end: TLS on either side of the proxy, Unix sockets on either side."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from rawhttp import exchange, open_stream
from upstream import Upstream

from actorproxy.http import Error, ErrorType
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session


class ToPeer(ProxyHttp):
    """Proxies every request to a fresh copy of one peer description."""

    def __init__(self, address: Any, *, tls: bool = False, sni: str = "", ca: str | None = None) -> None:
        self.address = address
        self.tls = tls
        self.sni = sni
        self.ca = ca
        self.errors: list[Error | None] = []
        self.clients: list[Any] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        peer = HttpPeer(self.address, tls=self.tls, sni=self.sni)
        peer.options.ca = self.ca
        return peer

    async def logging(self, session: Session, e: Error | None, ctx: Any) -> None:
        self.errors.append(e)
        self.clients.append(session.client_addr)


def write_server_cert(ca: trustme.CA, directory: Path, *names: str) -> tuple[str, str]:
    """A certificate chain and key for `names`, signed by `ca`, as PEM files: (cert path, key path)."""
    cert = ca.issue_cert(*names)
    cert_path = directory / "server-chain.pem"
    key_path = directory / "server-key.pem"
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


def causes(exc: BaseException | None) -> list[BaseException]:
    """`exc` and what caused it, explicitly or not, outermost first."""
    chain = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__
    return chain


def write_ca(ca: trustme.CA, directory: Path, name: str = "ca.pem") -> str:
    path = directory / name
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_tls_termination(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_path, key_path = write_server_cert(ca, tmp_path, "localhost", "127.0.0.1")

    def listen(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", cert_path, key_path)

    app = ToPeer(("127.0.0.1", upstreams[0].port))
    base, _ = await start_proxy(app, listen=listen)
    assert base.startswith("https://127.0.0.1:")
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    async with httpx.AsyncClient(base_url=base, verify=client_context) as client:
        first = await client.get("/echo/tls")
        second = await client.post("/echo/tls", content=b"over tls")
    assert first.status_code == 200 and first.json()["target"] == "/echo/tls"
    assert second.status_code == 200 and second.json()["body"] == "over tls"
    assert upstreams[0].connections == 1
    # The session sees the client's address through the TLS layer (the first request's logging has run:
    # the second request came on the same connection after it).
    assert app.clients[0][0] == "127.0.0.1"


async def test_tls_termination_rejects_a_client_that_does_not_trust_it(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_path, key_path = write_server_cert(ca, tmp_path, "localhost", "127.0.0.1")

    def listen(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", cert_path, key_path)

    base, _ = await start_proxy(ToPeer(("127.0.0.1", upstreams[0].port)), listen=listen)
    stranger = ssl.create_default_context()
    trustme.CA().configure_trust(stranger)
    async with httpx.AsyncClient(base_url=base, verify=stranger) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.get("/echo")
    assert any(isinstance(exc, ssl.SSLCertVerificationError) for exc in causes(caught.value))
    assert upstreams[0].requests == []


async def tls_upstream(nursery: trio.Nursery, ca: trustme.CA) -> Upstream:
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    upstream = Upstream("tls-up")
    await nursery.start(upstream.serve, server_context)
    return upstream


async def test_tls_to_the_upstream(
    nursery: trio.Nursery, start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    upstream = await tls_upstream(nursery, ca)
    app = ToPeer(("127.0.0.1", upstream.port), tls=True, sni="localhost", ca=write_ca(ca, tmp_path))
    base, _ = await start_proxy(app)
    async with httpx.AsyncClient(base_url=base) as client:
        responses = [await client.get(f"/echo/{n}") for n in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["x-upstream"] for r in responses] == ["tls-up"] * 3
    assert [r["target"] for r in upstream.requests] == ["/echo/0", "/echo/1", "/echo/2"]
    assert upstream.connections == 1  # the TLS connection went back to the pool and was reused


async def test_tls_to_an_upstream_with_an_untrusted_certificate_answers_502(
    nursery: trio.Nursery, start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    upstream = await tls_upstream(nursery, ca)
    other_ca = write_ca(trustme.CA(), tmp_path, "other-ca.pem")
    app = ToPeer(("127.0.0.1", upstream.port), tls=True, sni="localhost", ca=other_ca)
    base, _ = await start_proxy(app)
    async with await open_stream(base) as stream:
        # Read until the proxy closes: by then the request's logging phase has run.
        response = await exchange(
            stream, "GET", "/echo", headers=[("Connection", "close")], until_closed=True
        )
    assert response.status == 502
    [error] = app.errors
    assert error is not None and error.etype == ErrorType.INVALID_CERT
    assert upstream.requests == []


async def test_proxy_listens_on_a_unix_socket(
    upstreams: list[Upstream], start_proxy: Any, tmp_path: Path
) -> None:
    path = str(tmp_path / "proxy.sock")

    def listen(service: HttpProxyService) -> None:
        service.add_uds(path)

    base, service = await start_proxy(ToPeer(("127.0.0.1", upstreams[0].port)), listen=listen)
    assert service.bound[0] == path
    transport = httpx.AsyncHTTPTransport(uds=path)
    async with httpx.AsyncClient(base_url=base, transport=transport) as client:
        get = await client.get("/echo/uds")
        post = await client.post("/echo/uds", content=b"through a socket file")
    assert get.status_code == 200 and get.json()["target"] == "/echo/uds"
    assert post.json()["body"] == "through a socket file"


async def test_upstream_on_a_unix_socket(nursery: trio.Nursery, start_proxy: Any, tmp_path: Path) -> None:
    path = str(tmp_path / "up.sock")
    upstream = Upstream("uds-up")
    await nursery.start(upstream.serve_unix, path)
    base, _ = await start_proxy(ToPeer(path))
    async with httpx.AsyncClient(base_url=base) as client:
        responses = [await client.get(f"/echo/{n}") for n in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["x-upstream"] for r in responses] == ["uds-up"] * 3
    assert upstream.connections == 1


async def test_tls_termination_picks_a_certificate_per_sni_name(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    default_cert, default_key = write_server_cert(ca, tmp_path, "default.test")
    other_dir = tmp_path / "other"
    other_dir.mkdir()
    other_cert, other_key = write_server_cert(ca, other_dir, "other.test")
    other_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    other_context.load_cert_chain(other_cert, other_key)

    def by_name(ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        if server_name == "other.test":
            ssl_object.context = other_context

    def listen(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", default_cert, default_key, sni_callback=by_name)

    _, service = await start_proxy(ToPeer(("127.0.0.1", upstreams[0].port)), listen=listen)
    host, port = service.bound[0]
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    for name in ("default.test", "other.test"):
        # Verification checks the presented certificate against `name`: it passes only if the proxy chose
        # the certificate for that name.
        tcp = await trio.open_tcp_stream(host, port)
        stream = trio.SSLStream(tcp, client_context, server_hostname=name, https_compatible=True)
        await stream.do_handshake()
        await stream.send_all(f"GET /echo HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := await stream.receive_some(65536):
            reply += chunk
        await stream.aclose()
        assert reply.startswith(b"HTTP/1.1 200 ")
