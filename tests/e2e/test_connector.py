"""connect_peer: TCP, Unix sockets and TLS against real loopback listeners; every failure mapped to `Error`.

Real sockets on 127.0.0.1 port 0 and in tmp_path, because this module is the I/O boundary. Timeouts run on
virtual time: a TCP connect that never completes comes from a fake socket installed with trio's own
`set_custom_socket_factory` hook (no unroutable addresses), and a TLS handshake that never completes from a
Unix socket listener that accepts nothing (a Unix connect completes in the kernel without waiting, so the
autojump clock cannot fire before it).
"""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio
import trustme

from actorproxy.http._error import Error, ErrorSource, ErrorType
from actorproxy.proxy._connector import _dns_matches, connect_peer, tls_context
from actorproxy.proxy._peer import HttpPeer, PeerOptions, TcpKeepalive
from actorproxy.proxy._sockets import SocketStream

HOST = "upstream.example"


# -- plain TCP -----------------------------------------------------------------------------------------------


async def _listener() -> trio.SocketListener:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    return listeners[0]


def _port(listener: trio.SocketListener) -> int:
    port: int = listener.socket.getsockname()[1]
    return port


async def test_tcp_connect_carries_bytes_with_nodelay_on() -> None:
    async with await _listener() as listener:
        client = await connect_peer(HttpPeer(f"127.0.0.1:{_port(listener)}"))
        assert isinstance(client, SocketStream)
        server = await listener.accept()
        async with client, server:
            await client.send_all(b"ping")
            assert await server.receive_some() == b"ping"
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_tcp_keepalive_options_are_set() -> None:
    options = PeerOptions(tcp_keepalive=TcpKeepalive(idle=61.0, interval=4.5, count=3))
    async with await _listener() as listener:
        client = await connect_peer(HttpPeer(("127.0.0.1", _port(listener)), options=options))
        async with client:
            assert isinstance(client, SocketStream)
            assert client.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE)
            if hasattr(socket, "TCP_KEEPIDLE"):
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE) == 61
            if hasattr(socket, "TCP_KEEPINTVL"):
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL) == 5  # rounded up
            if hasattr(socket, "TCP_KEEPCNT"):
                assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT) == 3


async def test_refused_is_connect_refused_from_upstream_naming_the_peer() -> None:
    listener = await _listener()
    port = _port(listener)
    await listener.aclose()  # nothing listens there any more
    with pytest.raises(Error) as caught:
        await connect_peer(HttpPeer(f"127.0.0.1:{port}"))
    error = caught.value
    assert error.etype == ErrorType.CONNECT_REFUSED
    assert error.source is ErrorSource.UPSTREAM
    assert f"127.0.0.1:{port}" in str(error)
    assert isinstance(error.__cause__, ConnectionRefusedError)
    assert not error.retry_for(reused=True)  # fail_to_connect decides


async def test_bind_to_sets_the_local_address() -> None:
    async with await _listener() as listener:
        options = PeerOptions(bind_to="127.0.0.1")
        client = await connect_peer(HttpPeer(f"127.0.0.1:{_port(listener)}", options=options))
        server = await listener.accept()
        async with client, server:
            assert isinstance(client, SocketStream)
            assert client.socket.getsockname()[0] == "127.0.0.1"
            assert server.socket.getpeername() == client.socket.getsockname()
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_bind_to_a_port_in_use_is_bind_error() -> None:
    async with await _listener() as listener, await _listener() as taken:
        bind_to = f"127.0.0.1:{_port(taken)}"
        with pytest.raises(Error) as caught:
            await connect_peer(HttpPeer(f"127.0.0.1:{_port(listener)}", options=PeerOptions(bind_to=bind_to)))
    assert caught.value.etype == ErrorType.BIND_ERROR
    assert caught.value.source is ErrorSource.UPSTREAM
    assert bind_to in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


# -- fake sockets: timeouts and errno mapping without the network --------------------------------------------


@attrs.define(eq=False)
class FakeSocket:
    """Stands in for a trio socket in open_tcp_stream: `connect` raises `error`, or hangs if it is None."""

    error: OSError | None
    family: int = socket.AF_INET
    closed: bool = False

    def setsockopt(self, *args: Any) -> None:
        pass

    async def bind(self, address: Any) -> None:
        await trio.lowlevel.checkpoint()

    async def connect(self, address: Any) -> None:
        if self.error is None:
            await trio.sleep_forever()
        await trio.lowlevel.checkpoint()
        raise self.error

    def close(self) -> None:
        self.closed = True


@attrs.define
class FakeSocketFactory(trio.abc.SocketFactory):
    error: OSError | None = None
    made: list[FakeSocket] = attrs.Factory(list)

    def socket(self, family: Any = None, type: Any = None, proto: Any = None) -> Any:
        sock = FakeSocket(self.error)
        self.made.append(sock)
        return sock


def _fake_sockets(error: OSError | None = None) -> FakeSocketFactory:
    factory = FakeSocketFactory(error)
    trio.socket.set_custom_socket_factory(factory)  # a RunVar: this test's run only
    return factory


async def test_connection_timeout_is_connect_timedout(autojump_clock: Any) -> None:
    factory = _fake_sockets()
    peer = HttpPeer("127.0.0.1:9", options=PeerOptions(connection_timeout=5.0))
    start = trio.current_time()
    with pytest.raises(Error) as caught:
        await connect_peer(peer)
    assert trio.current_time() - start == pytest.approx(5.0)
    assert caught.value.etype == ErrorType.CONNECT_TIMEDOUT
    assert caught.value.source is ErrorSource.UPSTREAM
    assert "127.0.0.1:9" in str(caught.value) and "connection_timeout 5 s" in str(caught.value)
    assert all(sock.closed for sock in factory.made)


async def test_total_connection_timeout_also_bounds_the_connect(autojump_clock: Any) -> None:
    _fake_sockets()
    peer = HttpPeer("127.0.0.1:9", options=PeerOptions(connection_timeout=10.0, total_connection_timeout=3.0))
    start = trio.current_time()
    with pytest.raises(Error, match="total_connection_timeout 3 s") as caught:
        await connect_peer(peer)
    assert trio.current_time() - start == pytest.approx(3.0)
    assert caught.value.etype == ErrorType.CONNECT_TIMEDOUT


async def test_an_outer_cancel_is_not_turned_into_an_error(autojump_clock: Any) -> None:
    factory = _fake_sockets()
    with trio.move_on_after(1.0) as scope:
        await connect_peer(HttpPeer("127.0.0.1:9", options=PeerOptions(connection_timeout=5.0)))
    assert scope.cancelled_caught
    assert all(sock.closed for sock in factory.made)


@pytest.mark.parametrize(
    ("error", "etype"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "refused"), ErrorType.CONNECT_REFUSED),
        (OSError(errno.ENETUNREACH, "network unreachable"), ErrorType.CONNECT_NO_ROUTE),
        (OSError(errno.EHOSTUNREACH, "no route to host"), ErrorType.CONNECT_NO_ROUTE),
        (TimeoutError(errno.ETIMEDOUT, "timed out"), ErrorType.CONNECT_TIMEDOUT),
        (PermissionError(errno.EACCES, "denied"), ErrorType.CONNECT_ERROR),
    ],
    ids=lambda value: type(value).__name__ if isinstance(value, OSError) else str(value),
)
async def test_os_errors_map_to_error_types(error: OSError, etype: ErrorType) -> None:
    _fake_sockets(error)
    with pytest.raises(Error) as caught:
        await connect_peer(HttpPeer("127.0.0.1:9"))
    assert caught.value.etype == etype
    assert caught.value.source is ErrorSource.UPSTREAM
    assert caught.value.__cause__ is error  # the one attempt's error, not trio's "all attempts failed"


# -- Unix sockets --------------------------------------------------------------------------------------------


async def _unix_listener(path: Path) -> trio.socket.SocketType:
    sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    await sock.bind(str(path))
    sock.listen(8)
    return sock


async def test_unix_socket_peer(tmp_path: Path) -> None:
    path = tmp_path / "upstream.sock"
    with await _unix_listener(path) as listening:
        client = await connect_peer(HttpPeer(f"unix:{path}"))
        server_sock, _ = await listening.accept()
        async with client, trio.SocketStream(server_sock) as server:
            await client.send_all(b"over unix")
            assert await server.receive_some() == b"over unix"


async def test_unix_socket_errors(tmp_path: Path) -> None:
    with pytest.raises(Error) as caught:
        await connect_peer(HttpPeer(str(tmp_path / "missing.sock")))
    assert caught.value.etype == ErrorType.CONNECT_ERROR
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    assert "missing.sock" in str(caught.value)

    path = tmp_path / "stale.sock"
    with await _unix_listener(path):
        pass  # closed: the file stays, nobody listens
    with pytest.raises(Error) as caught:
        await connect_peer(HttpPeer(str(path)))
    assert caught.value.etype == ErrorType.CONNECT_REFUSED


# -- TLS -----------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(HOST, "127.0.0.1", common_name="cn.example")


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


@attrs.define
class Upstream:
    """A TLS server on loopback: records SNI, handshake errors and client certificates; says b"hello"."""

    context: ssl.SSLContext
    port: int = 0
    sni: list[str | None] = attrs.Factory(list)
    errors: list[BaseException] = attrs.Factory(list)
    client_certs: list[Any] = attrs.Factory(list)
    streams: list[trio.abc.Stream] = attrs.Factory(list)

    async def serve(self, listener: trio.SocketListener) -> None:
        while True:
            stream = await listener.accept()
            self.streams.append(stream)  # kept open until the end: no RST racing the client's read
            ssl_stream = trio.SSLStream(stream, self.context, server_side=True)
            try:
                await ssl_stream.do_handshake()
            except trio.BrokenResourceError as exc:
                self.errors.append(exc)
                continue
            self.client_certs.append(ssl_stream.getpeercert())
            await ssl_stream.send_all(b"hello")


def _server_context(cert: trustme.LeafCert, client_ca: trustme.CA | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    if client_ca is not None:
        client_ca.configure_trust(context)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


@asynccontextmanager
async def tls_upstream(context: ssl.SSLContext) -> AsyncIterator[Upstream]:
    upstream = Upstream(context)
    context.sni_callback = lambda _obj, name, _ctx: upstream.sni.append(name)
    listener = await _listener()
    upstream.port = _port(listener)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(upstream.serve, listener)
            yield upstream
            nursery.cancel_scope.cancel()
    finally:
        for stream in upstream.streams:
            await trio.aclose_forcefully(stream)
        await listener.aclose()


async def _hello(stream: trio.abc.Stream) -> None:
    try:
        assert await stream.receive_some() == b"hello"
    finally:
        await stream.aclose()


async def test_tls_with_a_trusted_cert_and_sni(server_cert: trustme.LeafCert, ca_file: str) -> None:
    async with tls_upstream(_server_context(server_cert)) as upstream:
        peer = HttpPeer(("127.0.0.1", upstream.port), tls=True, sni=HOST, options=PeerOptions(ca=ca_file))
        client = await connect_peer(peer)
        assert isinstance(client, trio.SSLStream)
        assert client.selected_alpn_protocol() == "http/1.1"  # never h2: we speak HTTP/1.1 upstream
        await _hello(client)
    assert upstream.sni == [HOST]


async def test_without_sni_the_ip_host_is_verified_and_no_sni_is_sent(
    server_cert: trustme.LeafCert, ca: trustme.CA
) -> None:
    ca_pem = ca.cert_pem.bytes().decode()  # PEM text works as well as a path
    async with tls_upstream(_server_context(server_cert)) as upstream:
        client = await connect_peer(
            HttpPeer(f"127.0.0.1:{upstream.port}", tls=True, options=PeerOptions(ca=ca_pem))
        )
        await _hello(client)
    assert upstream.sni == [None]  # RFC 6066: SNI never carries an IP literal


async def test_a_cert_for_another_name_is_invalid_cert(server_cert: trustme.LeafCert, ca_file: str) -> None:
    async with tls_upstream(_server_context(server_cert)) as upstream:
        peer = HttpPeer(
            ("127.0.0.1", upstream.port), tls=True, sni="other.example", options=PeerOptions(ca=ca_file)
        )
        with pytest.raises(Error) as caught:
            await connect_peer(peer)
    assert caught.value.etype == ErrorType.INVALID_CERT
    assert caught.value.source is ErrorSource.UPSTREAM
    assert isinstance(caught.value.__cause__, ssl.SSLCertVerificationError)
    assert f"127.0.0.1:{upstream.port}" in str(caught.value)


async def test_an_untrusted_ca_is_invalid_cert(server_cert: trustme.LeafCert) -> None:
    async with tls_upstream(_server_context(server_cert)) as upstream:
        with pytest.raises(Error) as caught:
            await connect_peer(HttpPeer(("127.0.0.1", upstream.port), tls=True, sni=HOST))  # system CAs
    assert caught.value.etype == ErrorType.INVALID_CERT


async def test_verify_hostname_off_accepts_another_name(server_cert: trustme.LeafCert, ca_file: str) -> None:
    options = PeerOptions(ca=ca_file, verify_hostname=False)
    async with tls_upstream(_server_context(server_cert)) as upstream:
        client = await connect_peer(
            HttpPeer(("127.0.0.1", upstream.port), tls=True, sni="other.example", options=options)
        )
        await _hello(client)
    assert upstream.sni == ["other.example"]


async def test_verify_cert_off_accepts_an_untrusted_cert(server_cert: trustme.LeafCert) -> None:
    options = PeerOptions(verify_cert=False)
    async with tls_upstream(_server_context(server_cert)) as upstream:
        client = await connect_peer(
            HttpPeer(("127.0.0.1", upstream.port), tls=True, sni="x.example", options=options)
        )
        await _hello(client)


@pytest.mark.parametrize("alternative_cn", [HOST, "cn.example"], ids=["san", "subject-cn"])
async def test_alternative_cn_accepts_a_cert_naming_it(
    server_cert: trustme.LeafCert, ca_file: str, alternative_cn: str
) -> None:
    options = PeerOptions(ca=ca_file, alternative_cn=alternative_cn)
    async with tls_upstream(_server_context(server_cert)) as upstream:
        peer = HttpPeer(("127.0.0.1", upstream.port), tls=True, sni="other.example", options=options)
        client = await connect_peer(peer)
        await _hello(client)
    assert upstream.sni == ["other.example"]


async def test_alternative_cn_still_accepts_the_sni(server_cert: trustme.LeafCert, ca_file: str) -> None:
    options = PeerOptions(ca=ca_file, alternative_cn="unrelated.example")
    async with tls_upstream(_server_context(server_cert)) as upstream:
        client = await connect_peer(
            HttpPeer(("127.0.0.1", upstream.port), tls=True, sni=HOST, options=options)
        )
        await _hello(client)


async def test_alternative_cn_matching_nothing_is_invalid_cert(
    server_cert: trustme.LeafCert, ca_file: str
) -> None:
    options = PeerOptions(ca=ca_file, alternative_cn="nope.example")
    async with tls_upstream(_server_context(server_cert)) as upstream:
        peer = HttpPeer(("127.0.0.1", upstream.port), tls=True, sni="other.example", options=options)
        with pytest.raises(Error, match=r"names neither 'other\.example' nor 'nope\.example'") as caught:
            await connect_peer(peer)
    assert caught.value.etype == ErrorType.INVALID_CERT
    assert caught.value.source is ErrorSource.UPSTREAM


async def test_mtls_presents_the_client_cert(
    server_cert: trustme.LeafCert, ca: trustme.CA, tmp_path: Path
) -> None:
    client_cert = ca.issue_cert("client.example")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    client_cert.cert_chain_pems[0].write_to_path(str(cert_path))
    client_cert.private_key_pem.write_to_path(str(key_path))
    options = PeerOptions(ca=ca.cert_pem.bytes(), client_cert=(str(cert_path), str(key_path)))
    async with tls_upstream(_server_context(server_cert, client_ca=ca)) as upstream:
        client = await connect_peer(
            HttpPeer(("127.0.0.1", upstream.port), tls=True, sni=HOST, options=options)
        )
        await _hello(client)
    [seen] = upstream.client_certs
    assert ("DNS", "client.example") in seen["subjectAltName"]


async def test_a_ca_that_does_not_load_is_an_internal_error(
    server_cert: trustme.LeafCert, tmp_path: Path
) -> None:
    options = PeerOptions(ca=str(tmp_path / "missing-ca.pem"))
    async with tls_upstream(_server_context(server_cert)) as upstream:
        with pytest.raises(Error) as caught:
            await connect_peer(HttpPeer(("127.0.0.1", upstream.port), tls=True, sni=HOST, options=options))
    assert caught.value.etype == ErrorType.TLS_HANDSHAKE_FAILURE
    assert caught.value.source is ErrorSource.INTERNAL
    assert "missing-ca.pem" in str(caught.value)


async def test_a_server_that_is_not_tls_is_a_handshake_failure() -> None:
    async with await _listener() as listener, trio.open_nursery() as nursery:

        async def answer_in_plain_http() -> None:
            async with await listener.accept() as stream:
                await stream.receive_some()
                await stream.send_all(b"HTTP/1.1 400 Bad Request\r\n\r\n")

        nursery.start_soon(answer_in_plain_http)
        peer = HttpPeer(("127.0.0.1", _port(listener)), tls=True, sni=HOST)
        with pytest.raises(Error) as caught:
            await connect_peer(peer)
    assert caught.value.etype == ErrorType.TLS_HANDSHAKE_FAILURE
    assert caught.value.source is ErrorSource.UPSTREAM
    assert isinstance(caught.value.__cause__, ssl.SSLError)


async def test_tls_handshake_timeout(tmp_path: Path, autojump_clock: Any) -> None:
    path = tmp_path / "silent.sock"
    with await _unix_listener(path):  # accepts nothing: the connect completes, the handshake never does
        options = PeerOptions(verify_cert=False, connection_timeout=1.0, total_connection_timeout=5.0)
        start = trio.current_time()
        with pytest.raises(Error) as caught:
            await connect_peer(HttpPeer(str(path), tls=True, options=options))
        assert trio.current_time() - start == pytest.approx(5.0)
    assert caught.value.etype == ErrorType.TLS_HANDSHAKE_TIMEDOUT
    assert caught.value.source is ErrorSource.UPSTREAM
    assert "total_connection_timeout 5 s" in str(caught.value)


async def test_verify_hostname_on_a_unix_peer_needs_a_name(tmp_path: Path) -> None:
    path = tmp_path / "tls.sock"
    with await _unix_listener(path), pytest.raises(Error, match="needs an sni") as caught:
        await connect_peer(HttpPeer(str(path), tls=True))
    assert caught.value.source is ErrorSource.INTERNAL


def test_tls_contexts_are_cached_per_settings(ca_file: str) -> None:
    assert tls_context(True, True, ca_file, None) is tls_context(True, True, ca_file, None)
    assert tls_context(True, False, ca_file, None) is not tls_context(True, True, ca_file, None)
    assert tls_context(False, False).verify_mode == ssl.CERT_NONE


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("a.example.com", "A.Example.com.", True),
        ("*.example.com", "a.example.com", True),
        ("*.example.com", "a.b.example.com", False),  # one label only
        ("*.example.com", "example.com", False),
        ("*.com", "example.com", False),  # never a whole registrable domain
        ("a*.example.com", "ab.example.com", False),  # partial-label wildcards are not honoured
    ],
)
def test_certificate_name_matching_follows_rfc_6125(pattern: str, name: str, matches: bool) -> None:
    assert _dns_matches(pattern, name) is matches
