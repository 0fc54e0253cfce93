"""Response compression through a real proxy on loopback, on both codecs: curl and httpx against a real
origin; gzip, br and zstd negotiated, streamed, decoded for clients that refuse an upstream's coding, and
turned on per route in YAML."""

from __future__ import annotations

import gzip
import textwrap
import zlib
from typing import Any

import brotli
import httpx
import pytest
import trio
import zstandard
from upstream import Upstream, text_body

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.http import ResponseHeader
from actorproxy.proxy import HttpPeer, ProxyHttp, Session
from actorproxy.server import Server

DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}


class Compressing(ProxyHttp):
    """Proxies to one origin with `session.downstream_compression` set in `request_filter`."""

    def __init__(self, port: int, *, level: int = 5, decompress: bool = False) -> None:
        self.port = port
        self.level = level
        self.decompress = decompress

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        session.downstream_compression.adjust_level(self.level)
        session.downstream_compression.adjust_decompression(self.decompress)
        return False

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.port), tls=False, sni="")


async def curl(*args: str) -> tuple[dict[str, str], bytes]:
    """Run curl; return the last response's header fields (lower-case names) and the body it wrote."""
    done = await trio.run_process(["curl", "-sS", "-D", "-", *args], capture_stdout=True, capture_stderr=True)
    head, _, body = done.stdout.partition(b"\r\n\r\n")
    fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n")[1:])
    return {name.lower(): value for name, value in fields.items()}, body


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_curl_gets_each_coding_and_decodes_the_body(
    coding: str, upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    url = f"{base}/text?size=200000"
    fields, raw = await curl("-H", f"Accept-Encoding: {coding}", url)
    assert fields["content-encoding"] == coding
    assert fields["vary"] == "Accept-Encoding"
    assert fields["etag"] == 'W/"v1"'
    assert "content-length" not in fields and "accept-ranges" not in fields
    assert fields["transfer-encoding"] == "chunked"
    assert len(raw) < 200000 // 20
    assert DECODE[coding](raw) == text_body(200000)
    _, decoded = await curl("--compressed", url)  # curl's own Accept-Encoding, decoded by curl
    assert decoded == text_body(200000)


async def test_a_whole_small_response_is_compressed_in_one_write_with_a_length(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/text?size=3000", headers={"Accept-Encoding": "gzip"})
    assert response.headers["content-encoding"] == "gzip"
    assert int(response.headers["content-length"]) < 3000  # the compressed length, not the upstream's
    assert response.content == text_body(3000)  # httpx decoded it


async def test_keep_alive_carries_compressed_and_plain_responses_in_turn(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    async with httpx.AsyncClient() as client:
        for size, accept in ((90000, "br"), (500, "identity"), (10, "gzip"), (70000, "zstd"), (3000, "gzip")):
            response = await client.get(f"{base}/text?size={size}", headers={"Accept-Encoding": accept})
            assert response.content == text_body(size)
            expected = None if accept == "identity" or size < 20 else accept
            assert response.headers.get("content-encoding") == expected
    assert upstreams[0].connections == 1


@pytest.mark.parametrize(
    ("path", "method", "accept"),
    [
        ("/text?size=5000&type=image/png", "GET", "gzip"),  # not a compressible type
        ("/text?size=19", "GET", "gzip"),  # below min_size
        ("/text?size=5000", "HEAD", "gzip"),  # no body
        ("/text?size=5000", "GET", "deflate"),  # nothing the proxy offers
        ("/text?size=5000", "GET", ""),
    ],
)
async def test_what_passes_unchanged(
    path: str, method: str, accept: str, upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    async with httpx.AsyncClient() as client:
        response = await client.request(method, base + path, headers={"Accept-Encoding": accept})
    assert response.status_code == 200
    assert "content-encoding" not in response.headers
    assert response.headers["etag"] == '"v1"'
    if method == "GET":
        assert response.content == text_body(int(path.split("size=")[1].split("&", maxsplit=1)[0]))


async def test_chunked_upstream_bodies_are_compressed_too(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    fields, raw = await curl("-H", "Accept-Encoding: gzip", f"{base}/text?size=100000&chunked=1")
    assert fields["content-encoding"] == "gzip"
    assert gzip.decompress(raw) == text_body(100000)


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
async def test_an_upstream_coding_the_client_refuses_is_decoded(
    coding: str, upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port, level=0, decompress=True))
    url = f"{base}/encoded?coding={coding}&size=300000"
    fields, raw = await curl("-H", "Accept-Encoding: identity", url)
    assert "content-encoding" not in fields
    assert raw == text_body(300000)
    fields, raw = await curl("-H", f"Accept-Encoding: {coding}", url)  # accepted: relayed as it came
    assert fields["content-encoding"] == coding
    assert DECODE[coding](raw) == text_body(300000)


async def test_without_decompression_an_upstream_coding_passes_as_it_came(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port))
    fields, raw = await curl("-H", "Accept-Encoding: identity", f"{base}/encoded?coding=br&size=5000")
    assert fields["content-encoding"] == "br"
    assert brotli.decompress(raw) == text_body(5000)


async def test_a_corrupt_upstream_body_is_a_502_not_a_broken_page(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(Compressing(upstreams[0].port, level=0, decompress=True))
    async with httpx.AsyncClient() as client:
        response = await client.get(f"{base}/encoded?coding=broken-gzip", headers={"Accept-Encoding": "br"})
    assert response.status_code == 502


async def test_each_piece_reaches_the_client_before_the_upstream_sends_the_next(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    origin = upstreams[0]
    base, _ = await start_proxy(Compressing(origin.port))
    decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
    received = b""
    async with (
        httpx.AsyncClient() as client,
        client.stream("GET", f"{base}/drip?size=40000", headers={"Accept-Encoding": "gzip"}) as response,
    ):
        assert response.headers["content-encoding"] == "gzip"
        raw = response.aiter_raw()
        with trio.fail_after(10):
            while len(received) < 20000:
                received += decoder.decompress(await raw.__anext__())
        # The upstream sets `held` once its first send returns, which may be just after the proxy relayed
        # it: wait for it, then the rest is still at the upstream.
        with trio.fail_after(10):
            await origin.held.wait()
        assert not origin.release.is_set()
        origin.release.set()
        async for piece in raw:
            received += decoder.decompress(piece)
    assert received == text_body(40000) and decoder.eof


class AnswersItself(ProxyHttp):
    """Writes its own response in `request_filter`, compressed by the session's switch."""

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        session.downstream_compression.adjust_level(6)
        header = ResponseHeader.build(200, [("Content-Type", "application/json")])
        await session.write_response_header(header)
        for _ in range(10):
            await session.write_response_body(b'{"items": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n' * 100)
        await session.write_response_body(None, end_of_stream=True)
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        raise AssertionError("never reached")


async def test_a_response_a_filter_writes_is_compressed_too(start_proxy: Any) -> None:
    base, _ = await start_proxy(AnswersItself())
    fields, raw = await curl("-H", "Accept-Encoding: zstd", base + "/")
    assert fields["content-encoding"] == "zstd"
    assert DECODE["zstd"](raw) == b'{"items": [1, 2, 3, 4, 5, 6, 7, 8, 9]}\n' * 1000


async def test_a_route_turns_compression_on_in_yaml(nursery: trio.Nursery, upstreams: list[Upstream]) -> None:
    text = textwrap.dedent(
        f"""
        services:
          - name: edge
            listeners: [{{address: "127.0.0.1:0"}}]
            routes:
              - path_prefix: /text
                upstream: origin
                compression: {{gzip: 4, br: 0, zstd: 0, min_size: 100}}
              - path_prefix: /encoded
                upstream: origin
                compression: {{decompress: true}}
              - upstream: origin
        upstreams:
          - name: origin
            discovery: {{static: ["127.0.0.1:{upstreams[0].port}"]}}
        """
    )
    server = Server(ServerConf.from_yaml(text))
    handle = build_proxy(server)
    await nursery.start(server.serve)
    host, port = handle.services["edge"].service.bound[0][:2]
    base = f"http://{host}:{port}"
    fields, raw = await curl("-H", "Accept-Encoding: br, zstd, gzip", f"{base}/text?size=5000")
    assert fields["content-encoding"] == "gzip"  # the only coding the route enables
    assert gzip.decompress(raw) == text_body(5000)
    fields, _ = await curl("-H", "Accept-Encoding: gzip", f"{base}/text?size=99")
    assert "content-encoding" not in fields  # below the route's min_size
    fields, raw = await curl(f"{base}/encoded?coding=zstd&size=5000")
    assert "content-encoding" not in fields and raw == text_body(5000)
    fields, _ = await curl("-H", "Accept-Encoding: gzip", f"{base}/other")
    assert "content-encoding" not in fields  # a route without compression
