"""Automatic TLS on a real listener: curl, trusting only the local CA, reaches a site by its name (SNI) with
a certificate issued on first use; a name the sites do not have gets no certificate of its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trio

from actorproxy.ca import LocalCA, SiteCertificates
from actorproxy.http import ResponseHeader
from actorproxy.proxy import HttpPeer, ProxyHttp, Session, http_proxy_service
from actors import ActorSystem

# curl's exit status for a certificate that does not verify.
CURL_BAD_CERTIFICATE = 60


class Hello(ProxyHttp):
    """Answers every request itself with the host it was for."""

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        body = f"hello {session.req_header.headers.get('host')}\n".encode()
        header = ResponseHeader.build(200)
        header.insert_header("Content-Length", str(len(body)))
        await session.write_response_header(header)
        await session.write_response_body(body, end_of_stream=True)
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        raise AssertionError("every request is answered in request_filter")


@pytest.fixture
async def tls_port(system: ActorSystem, tmp_path: Path) -> tuple[int, Path, SiteCertificates]:
    ca = LocalCA.create(["test"])
    ca.save(tmp_path / "ca")
    certificates = SiteCertificates(
        ca,
        tmp_path / "ca" / "certs",
        validity_period=90 * 86400,
        renewal_period=30 * 86400,
        accept=lambda name: name.endswith(".test") and name != "other.test",
    )
    cert, key = certificates.default_files()
    service = http_proxy_service(None, Hello())
    service.add_tls("127.0.0.1:0", str(cert), str(key), sni_callback=certificates.sni_callback)
    await system.spawn(service.child_spec().start, name=service.name)
    return service.bound[0][1], tmp_path / "ca" / "rootCA.pem", certificates


async def curl(port: int, root: Path, name: str) -> trio.CompletedProcess:  # type: ignore[type-arg]
    command = ["curl", "-sS", "--cacert", str(root), "--resolve", f"{name}:{port}:127.0.0.1"]
    with trio.fail_after(20):
        return await trio.run_process(
            [*command, f"https://{name}:{port}/"], capture_stdout=True, capture_stderr=True, check=False
        )


async def test_curl_verifies_a_site_certificate_issued_on_first_use(
    tls_port: tuple[int, Path, SiteCertificates],
) -> None:
    port, root, certificates = tls_port
    for name in ("app.test", "deep.sub.app.test", "localhost"):
        done = await curl(port, root, name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.decode() == f"hello {name}:{port}\n"
    assert {"app.test", "deep.sub.app.test", "localhost"} <= set(certificates.names())
    assert (await curl(port, root, "app.test")).returncode == 0
    assert certificates.statistics().issued == 3  # the second visit found it in memory


async def test_a_name_that_is_not_a_site_gets_no_certificate(
    tls_port: tuple[int, Path, SiteCertificates],
) -> None:
    port, root, certificates = tls_port
    done = await curl(port, root, "other.test")
    assert done.returncode == CURL_BAD_CERTIFICATE
    assert "other.test" not in certificates.names()
