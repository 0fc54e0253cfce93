"""The known HTTP/2 attacks, each run against a real h2c listener with frames written by hand (the `h2`,
`hpack` and `hyperframe` packages, or bytes): Rapid Reset, CONTINUATION flood, HPACK bomb and oversized
header lists, SETTINGS and PING floods, a zero-window stall, and the request smuggling an h2 -> h1
downgrade would allow without RFC 9113 §8.2's checks. An HTTP/1.1 origin is behind the proxy."""

from __future__ import annotations

from typing import Any

import hpack
import pytest
from h2client import RawH2
from hyperframe.frame import ContinuationFrame, HeadersFrame, PingFrame, RstStreamFrame, SettingsFrame
from upstream import Upstream

from actorproxy.config import Http2Settings
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session

ENHANCE_YOUR_CALM = 0xB
PROTOCOL_ERROR = 0x1
CANCEL = 0x8
REQUEST = [(":method", "GET"), (":scheme", "http"), (":authority", "localhost"), (":path", "/echo/x")]


class ToFirst(ProxyHttp):
    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", self.upstream.port), tls=False, sni="")


def h2c(service: HttpProxyService) -> None:
    service.add_tcp("127.0.0.1:0", h2c=True)


@pytest.fixture
def attacked(upstreams: list[Upstream], start_proxy: Any) -> Any:
    """`await attacked(**http2_settings)`: a connected `RawH2` to an h2c proxy with those settings."""

    async def start(**settings: Any) -> RawH2:
        base, _ = await start_proxy(ToFirst(upstreams[0]), listen=h2c, http2=Http2Settings(**settings))
        return await RawH2.connect(int(base.rsplit(":", 1)[1]))

    return start


async def goaway_and_close(client: RawH2) -> tuple[int, int]:
    """Read until the proxy closes; its GOAWAY (last stream id, code). It closes lingering, so the GOAWAY is
    not lost to a reset however much the attacker still sends."""
    await client.until(lambda: client.closed)
    assert client.goaway is not None, "closed without a GOAWAY"
    return client.goaway


def encoded(headers: list[tuple[str, str]], encoder: hpack.Encoder | None = None) -> bytes:
    return (encoder or hpack.Encoder()).encode(headers)


async def test_rapid_reset_ends_the_connection_with_enhance_your_calm(attacked: Any) -> None:
    client = await attacked(max_resets=20)
    try:
        frames = b""
        encoder = hpack.Encoder()
        for n in range(60):
            stream_id = 1 + 2 * n
            frames += HeadersFrame(stream_id, encoded(REQUEST, encoder), flags=["END_HEADERS"]).serialize()
            frames += RstStreamFrame(stream_id, error_code=CANCEL).serialize()
        await client.send_raw(frames)
        assert (await goaway_and_close(client))[1] == ENHANCE_YOUR_CALM
    finally:
        await client.aclose()


async def test_continuation_flood_ends_the_connection(attacked: Any) -> None:
    client = await attacked()
    try:
        frames = HeadersFrame(1, encoded(REQUEST)).serialize()  # no END_HEADERS: CONTINUATION follows
        frames += b"".join(ContinuationFrame(1, b"").serialize() for _ in range(1000))
        await client.send_raw(frames)
        assert (await goaway_and_close(client))[1] == ENHANCE_YOUR_CALM
    finally:
        await client.aclose()


async def test_a_header_block_over_the_limit_ends_the_connection(attacked: Any) -> None:
    client = await attacked(max_header_list_size=16_384)
    try:
        block = encoded([*REQUEST, ("x-big", "a" * 20_000)])
        frames = HeadersFrame(1, block[:16_000]).serialize()
        frames += ContinuationFrame(1, block[16_000:], flags=["END_HEADERS"]).serialize()
        await client.send_raw(frames)
        assert (await goaway_and_close(client))[1] == ENHANCE_YOUR_CALM
    finally:
        await client.aclose()


async def test_an_hpack_bomb_ends_the_connection(attacked: Any, upstreams: list[Upstream]) -> None:
    client = await attacked(max_header_list_size=16_384)
    try:
        encoder = hpack.Encoder()
        # 4 KiB into the dynamic table once (the rest never indexed, so it stays the only entry); then each
        # reference to it is one byte that decodes to 4 KiB.
        request = [(name, value, True) for name, value in REQUEST]
        first = encoder.encode([*request, ("x-bomb", "b" * 4000)])
        await client.send_raw(HeadersFrame(1, first, flags=["END_HEADERS", "END_STREAM"]).serialize())
        bomb = encoder.encode([*request, *[("x-bomb", "b" * 4000)] * 40])
        assert len(bomb) < 100
        await client.send_raw(HeadersFrame(3, bomb, flags=["END_HEADERS", "END_STREAM"]).serialize())
        assert (await goaway_and_close(client))[1] == ENHANCE_YOUR_CALM
    finally:
        await client.aclose()
    assert len(upstreams[0].requests) <= 1  # the bomb never went upstream


@pytest.mark.parametrize("frame", ["settings", "ping"])
async def test_settings_and_ping_floods_end_the_connection(attacked: Any, frame: str) -> None:
    client = await attacked(max_control_frames=50)
    try:
        one = SettingsFrame(0, settings={}) if frame == "settings" else PingFrame(0, opaque_data=b"12345678")
        await client.send_raw(one.serialize() * 200)
        assert (await goaway_and_close(client))[1] == ENHANCE_YOUR_CALM
    finally:
        await client.aclose()


async def test_a_zero_window_stall_resets_the_stream_in_time(
    upstreams: list[Upstream], start_proxy: Any
) -> None:
    base, _ = await start_proxy(
        ToFirst(upstreams[0]), listen=h2c, http2=Http2Settings(flow_control_timeout=0.5)
    )
    port = int(base.rsplit(":", 1)[1])
    # A window of 0 for every stream: the proxy can send the head and no byte of body.
    client = await RawH2.connect(port, settings={0x4: 0})
    try:
        stalled = await client.request("/big?size=100000")
        await client.until(lambda: client.done(stalled), 5)
        answer = client.answers[stalled]
        assert answer.status == 200 and not answer.body
        assert answer.reset == CANCEL
        assert client.goaway is None and not client.closed  # the connection goes on
    finally:
        await client.aclose()


# RFC 9113 §8.2: each would frame or end an HTTP/1.1 message differently if it passed to an h1 upstream.
SMUGGLING = {
    "transfer-encoding": [("transfer-encoding", "chunked")],
    "connection": [("connection", "keep-alive")],
    "keep-alive": [("keep-alive", "timeout=5")],
    "proxy-connection": [("proxy-connection", "keep-alive")],
    "upgrade": [("upgrade", "websocket")],
    "te other than trailers": [("te", "gzip")],
    "uppercase name": [("X-Upper", "1")],
    "CRLF in a value": [("x-inject", "a\r\nx-evil: 1")],
    "LF in a value": [("x-inject", "a\nGET /evil HTTP/1.1")],
    "NUL in a value": [("x-inject", "a\0b")],
    "space in a name": [("x bad", "1")],
    "colon in a name": [("x:bad", "1")],
    "leading space in a value": [("x-pad", " padded")],
    "host and :authority differ": [("host", "evil.example")],
}


MALFORMED = {
    **{name: [*REQUEST, *fields] for name, fields in SMUGGLING.items()},
    "no :path": REQUEST[:3],
    "path without a slash": [*REQUEST[:3], (":path", "evil")],
    "pseudo-header after a regular field": [*REQUEST[:3], ("x-a", "1"), (":path", "/x")],
    "unknown pseudo-header": [*REQUEST, (":protocol", "websocket")],
    ":path twice": [*REQUEST, (":path", "/other")],
    "method not a token": [(":method", "GET /x HTTP/1.1\r\n"), *REQUEST[1:]],
}


@pytest.mark.parametrize("headers", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_requests_reset_their_stream_only(
    attacked: Any, upstreams: list[Upstream], headers: list[tuple[str, str]]
) -> None:
    client = await attacked()
    try:
        bad = await client.send_head(headers)
        good = await client.request("/echo/fine")
        await client.until(lambda: client.done(bad) and client.done(good))
        assert client.answers[bad].reset == PROTOCOL_ERROR
        assert client.answers[good].status == 200
        assert client.goaway is None
    finally:
        await client.aclose()
    assert [r["target"] for r in upstreams[0].requests] == ["/echo/fine"]


# The `h2` package checks Content-Length itself and makes any disagreement a connection error (RFC 9113
# §8.1.1 allows only the stream to be reset; closing the connection is stricter and as safe).
CONTENT_LENGTH = {
    "two that differ": ([("content-length", "0"), ("content-length", "10")], b""),
    "not digits": ([("content-length", "1, 1")], b"x"),
    "shorter than the body": ([("content-length", "5")], b"0123456789POST /evil HTTP/1.1\r\n\r\n"),
    "longer than the body": ([("content-length", "50")], b"0123456789"),
}


@pytest.mark.parametrize(("fields", "body"), CONTENT_LENGTH.values(), ids=CONTENT_LENGTH.keys())
async def test_a_content_length_that_disagrees_never_reaches_the_upstream(
    attacked: Any, upstreams: list[Upstream], fields: list[tuple[str, str]], body: bytes
) -> None:
    client = await attacked()
    try:
        await client.request("/echo/smuggled", method="POST", body=body, extra=fields)
        assert (await goaway_and_close(client))[1] == PROTOCOL_ERROR
    finally:
        await client.aclose()
    assert upstreams[0].requests == []
