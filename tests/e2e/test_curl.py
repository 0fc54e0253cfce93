"""The proxy end to end with the system's curl as the client: curl → actorproxy → origin on loopback."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from upstream import Upstream

from actorproxy.proxy import HttpPeer, ProxyHttp, Session

CURL = "/usr/bin/curl"

pytestmark = pytest.mark.skipif(not Path(CURL).exists(), reason="needs the curl binary")


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


async def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run curl (no proxy from the environment, at most 10 s) and return its output; fail on its errors."""
    return await trio.run_process(
        [CURL, "--silent", "--show-error", "--noproxy", "*", "--max-time", "10", *args],
        capture_stdout=True,
        capture_stderr=True,
    )


def forwarded_headers(record: dict[str, Any]) -> dict[str, str]:
    return {name.lower(): value for name, value in record["headers"]}


async def test_curl_get(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    result = await curl("--write-out", "\n%{http_code}", f"{base}/echo/get?x=1")
    body, status = result.stdout.rsplit(b"\n", 1)
    assert status == b"200"
    assert json.loads(body)["target"] == "/echo/get?x=1"
    assert json.loads(body)["method"] == "GET"


async def test_curl_post_body(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    result = await curl("--data-binary", "name=value&other=thing", f"{base}/echo/post")
    echoed = json.loads(result.stdout)
    assert echoed["method"] == "POST"
    assert echoed["body"] == "name=value&other=thing"
    assert forwarded_headers(echoed)["content-length"] == "22"


async def test_curl_chunked_request_body(upstreams: list[Upstream], start_proxy: Any, tmp_path: Path) -> None:
    payload = b"".join(b"line %d of a chunked upload\n" % n for n in range(2000))
    upload = tmp_path / "upload.bin"
    upload.write_bytes(payload)
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    await curl("-H", "Transfer-Encoding: chunked", "--data-binary", f"@{upload}", f"{base}/echo/chunked-up")
    [record] = upstreams[0].requests
    assert record["body"].encode("latin-1") == payload
    assert forwarded_headers(record)["transfer-encoding"] == "chunked"


async def test_curl_expect_100_continue(upstreams: list[Upstream], start_proxy: Any, tmp_path: Path) -> None:
    # Over curl's threshold (1 KiB in old releases, 1 MiB since 7.70), so curl adds the Expect itself.
    payload = bytes(range(256)) * (5 * 1024)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(payload)
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    # A long expect timeout: without the proxy's 100 Continue curl would wait 5 s and hit --max-time 3.
    result = await curl(
        "--verbose",
        "--expect100-timeout",
        "5",
        "--max-time",
        "3",
        "--write-out",
        "%{http_code}",
        "--data-binary",
        f"@{upload}",
        f"{base}/status/200",
    )
    stderr = result.stderr.decode()
    assert "> Expect: 100-continue" in stderr
    assert "< HTTP/1.1 100 Continue" in stderr
    assert result.stdout == b"200"
    [record] = upstreams[0].requests
    assert record["body"].encode("latin-1") == payload


async def test_curl_head(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    result = await curl("--head", f"{base}/echo/head")
    head = result.stdout.decode()
    assert head.startswith("HTTP/1.1 200")
    assert "x-upstream: up0" in head.lower()
    # The head of a HEAD response is all there is: curl would report "transfer closed" on a stray body.
    assert head.endswith("\r\n\r\n")
    assert upstreams[0].requests[0]["method"] == "HEAD"


async def test_curl_reuses_the_connection_for_two_urls(upstreams: list[Upstream], start_proxy: Any) -> None:
    base, _ = await start_proxy(ToFirst(upstreams[0]))
    result = await curl("--verbose", f"{base}/echo/one", f"{base}/echo/two")
    stderr = result.stderr.decode()
    assert "Re-using existing connection" in stderr
    assert stderr.count("Connected to") == 1
    assert [r["target"] for r in upstreams[0].requests] == ["/echo/one", "/echo/two"]
    assert upstreams[0].connections == 1
