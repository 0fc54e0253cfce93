"""HTTP/2 from real clients to the proxy: curl (h2c with prior knowledge, and h2 by ALPN over TLS), httpx,
h2load; an HTTP/1.1 origin behind, so every request is an h2 -> h1 downgrade."""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from h2client import Answer, RawH2, drain_finishes_held_stream
from upstream import Upstream

from actorproxy.config import HttpLimits
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session, http_proxy_service
from actors import ActorSystem

CURL = "/usr/bin/curl"
H2LOAD = shutil.which("h2load")

pytestmark = pytest.mark.skipif(not Path(CURL).exists(), reason="needs the curl binary")


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.http2: list[bool] = []

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        self.http2.append(session.is_http2())
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


async def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return await trio.run_process(
        [CURL, "--silent", "--show-error", "--noproxy", "*", "--max-time", "10", *args],
        capture_stdout=True,
        capture_stderr=True,
    )


def tls_files(ca: trustme.CA, tmp_path: Path) -> tuple[Path, Path, Path]:
    """A certificate for localhost from `ca`: (chain, key, the CA's certificate) as PEM files."""
    cert = ca.issue_cert("localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    ca.cert_pem.write_to_path(ca_file)
    return cert_file, key_file, ca_file


def h2c(service: HttpProxyService) -> None:
    service.add_tcp("127.0.0.1:0", h2c=True)


async def test_curl_h2c_prior_knowledge(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = ToFirst(upstreams[0])
    base, _ = await start_proxy(app, listen=h2c)
    result = await curl(
        "--http2-prior-knowledge", "--write-out", "\n%{http_version} %{http_code}", f"{base}/echo/a?x=1"
    )
    body, status = result.stdout.rsplit(b"\n", 1)
    assert status == b"2 200"
    echoed = json.loads(body)
    assert echoed["target"] == "/echo/a?x=1"
    assert app.http2 == [True]


async def test_curl_h2c_post_body(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c)
    result = await curl("--http2-prior-knowledge", "--data-binary", "name=value", f"{base}/echo/post")
    echoed = json.loads(result.stdout)
    assert echoed["method"] == "POST"
    assert echoed["body"] == "name=value"


async def test_h2c_listener_still_speaks_http1(upstreams: list[Upstream], start_proxy: Any) -> None:
    app = ToFirst(upstreams[0])
    base, _ = await start_proxy(app, listen=h2c)
    result = await curl("--http1.1", "--write-out", "\n%{http_version}", f"{base}/echo/one")
    assert result.stdout.rsplit(b"\n", 1)[1] == b"1.1"
    assert app.http2 == [False]


async def test_curl_http2_over_tls_by_alpn(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_file, key_file, ca_file = tls_files(ca, tmp_path)
    app = ToFirst(upstreams[0])

    def tls(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", str(cert_file), str(key_file))

    base, _ = await start_proxy(app, listen=tls)
    port = base.rsplit(":", 1)[1]
    result = await curl(
        "--http2",
        "--cacert",
        str(ca_file),
        "--resolve",
        f"localhost:{port}:127.0.0.1",
        "--write-out",
        "\n%{http_version} %{http_code}",
        f"https://localhost:{port}/echo/tls",
    )
    body, status = result.stdout.rsplit(b"\n", 1)
    assert status == b"2 200"
    assert json.loads(body)["target"] == "/echo/tls"
    # http/1.1 by ALPN on the same listener
    result = await curl(
        "--http1.1",
        "--cacert",
        str(ca_file),
        "--resolve",
        f"localhost:{port}:127.0.0.1",
        "--write-out",
        "\n%{http_version}",
        f"https://localhost:{port}/echo/tls",
    )
    assert result.stdout.rsplit(b"\n", 1)[1] == b"1.1"
    assert app.http2 == [True, False]


async def test_httpx_http2_many_streams(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_file, key_file, _ = tls_files(ca, tmp_path)

    def tls(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", str(cert_file), str(key_file))

    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=tls)
    port = base.rsplit(":", 1)[1]
    context = ssl.create_default_context()
    ca.configure_trust(context)

    def fetch() -> list[tuple[str, int, str]]:
        with httpx.Client(http2=True, verify=context) as client:
            out = []
            for n in range(5):
                response = client.get(f"https://localhost:{port}/big?size={n * 70000}")
                out.append((response.http_version, response.status_code, str(len(response.content))))
            return out

    results = await trio.to_thread.run_sync(fetch)
    assert results == [("HTTP/2", 200, str(n * 70000)) for n in range(5)]


@pytest.mark.skipif(H2LOAD is None, reason="needs h2load (nghttp2-client)")
async def test_h2load_many_concurrent_streams(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c)
    assert H2LOAD is not None
    result = await trio.run_process(
        [H2LOAD, "-n", "400", "-c", "4", "-m", "50", f"{base}/echo/load"], capture_stdout=True
    )
    out = result.stdout.decode()
    assert "400 succeeded, 0 failed, 0 errored" in out, out
    assert "400 2xx" in out, out


class Routed(ProxyHttp):
    """`/dead...` to a closed port (502), `/boom` raises (500), everything else to the upstream."""

    def __init__(self, upstream: Upstream, dead_port: int) -> None:
        self.upstream = upstream
        self.dead_port = dead_port

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        if session.req_header.uri.startswith("/boom"):
            raise RuntimeError("a bug in the application")
        port = self.dead_port if session.req_header.uri.startswith("/dead") else self.upstream.port
        return HttpPeer(("127.0.0.1", port), tls=False, sni="")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_a_failing_stream_never_fails_its_siblings(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(Routed(upstreams[0], closed_port()), listen=h2c)
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]))
    try:
        slow = await client.request("/slow?delay=0.3")
        smuggled = await client.request("/echo/bad", extra=[("transfer-encoding", "chunked")])
        dead = await client.request("/dead")
        boom = await client.request("/boom")
        cancelled = await client.request("/slow?delay=5")
        client.conn.reset_stream(cancelled)
        await client.flush()
        posted = await client.request("/echo/post", method="POST", body=b"x" * 100_000)
        await client.until(lambda: all(client.done(s) for s in (slow, smuggled, dead, boom, posted)))
        answers = client.answers
        assert answers[slow].status == 200
        assert answers[smuggled].reset == 1  # PROTOCOL_ERROR: that stream alone
        assert answers[dead].status == 502
        assert answers[boom].status == 500
        assert answers[posted].status == 200
        assert json.loads(answers[posted].body)["body"] == "x" * 100_000
        assert client.goaway is None and not client.closed
        again = await client.request("/echo/after")
        await client.until(lambda: client.done(again))
        assert answers[again].status == 200
    finally:
        await client.aclose()


async def test_a_stalled_stream_holds_only_its_own_window(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c)
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]), held={1})
    try:
        stalled = await client.request("/big?size=1000000")
        assert stalled == 1
        flowing = await client.request("/big?size=500000")
        await client.until(lambda: client.done(flowing))
        assert len(client.answers[flowing].body) == 500_000
        # The stalled stream got what its window allowed (65,535 bytes, RFC 9113's default) and no more.
        assert len(client.answers[stalled].body) <= 65_535
        assert not client.done(stalled)
        await client.release(stalled, 1_000_000)
    finally:
        await client.aclose()


async def test_graceful_stop_sends_goaway_and_open_streams_finish(
    upstreams: list[Upstream], system: ActorSystem
) -> None:
    upstream = upstreams[0]
    service = http_proxy_service(None, ToFirst(upstream))
    service.configure(grace_period=5)
    h2c(service)
    ref = await system.spawn(service.child_spec().start, name=service.name)
    client = await RawH2.connect(service.bound[0][1])
    try:
        await drain_finishes_held_stream(client, ref.request_stop, upstream.held, upstream.release)
    finally:
        await client.aclose()


async def test_trailers_cross_between_versions(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c)
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]))
    try:
        # h2 request trailers -> a chunked HTTP/1.1 request with trailers.
        stream_id = client.conn.get_next_available_stream_id()
        head = [(":method", "POST"), (":scheme", "http"), (":authority", "localhost"), (":path", "/echo/t")]
        client.conn.send_headers(stream_id, [*head, ("te", "trailers")])
        client.answers[stream_id] = Answer()
        await client.send_body(stream_id, b"body", end=False)
        client.conn.send_headers(stream_id, [("x-sum", "42")], end_stream=True)
        await client.flush()
        # A chunked HTTP/1.1 response with a trailer -> h2 trailers.
        chunked = await client.request("/chunked", extra=[("te", "trailers")])
        await client.until(lambda: client.done(stream_id) and client.done(chunked))
        echoed = json.loads(client.answers[stream_id].body)
        assert echoed["body"] == "body"
        assert ["x-sum", "42"] in echoed["trailers"]
        assert client.answers[chunked].trailers == {"x-checksum": "done"}
    finally:
        await client.aclose()


async def test_a_body_over_max_body_size_is_answered_413_on_its_stream_only(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c, limits=HttpLimits(max_body_size=100_000))
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]))
    try:
        big = await client.request("/echo/big", method="POST", body=b"x" * 300_000)
        small = await client.request("/echo/small", method="POST", body=b"y" * 1000)
        await client.until(lambda: client.done(big) and client.done(small))
        assert client.answers[big].status == 413
        assert client.answers[small].status == 200
    finally:
        await client.aclose()


async def test_an_idle_connection_gets_goaway_and_closes(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c, keepalive_timeout=0.3)
    client = await RawH2.connect(int(base.rsplit(":", 1)[1]))
    try:
        done = await client.request("/echo/one")
        await client.until(lambda: client.done(done))
        await client.until(lambda: client.closed, 5)
        assert client.goaway == (done, 0)
    finally:
        await client.aclose()


async def test_a_tls_listener_without_h2_in_its_alpn_speaks_http1(
    upstreams: list[Upstream], start_proxy: Any, ca: trustme.CA, tmp_path: Path
) -> None:
    cert_file, key_file, ca_file = tls_files(ca, tmp_path)

    def tls(service: HttpProxyService) -> None:
        service.add_tls("127.0.0.1:0", str(cert_file), str(key_file), alpn=["http/1.1"])

    base, _ = await start_proxy(ToFirst(upstreams[0]), listen=tls)
    port = base.rsplit(":", 1)[1]
    result = await curl(
        "--http2", "--cacert", str(ca_file), "--resolve", f"localhost:{port}:127.0.0.1",
        "--write-out", "\n%{http_version} %{http_code}", f"https://localhost:{port}/echo/h1",
    )  # fmt: skip
    assert result.stdout.rsplit(b"\n", 1)[1] == b"1.1 200"
