"""Each codec's client side against a real origin server (h11, over TCP on loopback).

The proxy engine opens its upstream connections itself; these tests drive every codec's client connection
directly, so each one meets a real server and a real socket whatever the engine picks.
"""

from __future__ import annotations

import json

import pytest
import trio
from upstream import Upstream

from actorproxy.http import (
    ClientSide,
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    RequestHeader,
    available_codecs,
    select_codec,
)


@pytest.fixture(params=available_codecs())
def codec(request: pytest.FixtureRequest) -> Codec:
    return select_codec(request.param)


async def connect(codec: Codec, upstream: Upstream) -> ClientSide:
    return codec.client(await trio.open_tcp_stream("127.0.0.1", upstream.port), read_timeout=5.0)


async def read_all(conn: ClientSide) -> bytes:
    pieces = []
    while (piece := await conn.read_body()) is not None:
        pieces.append(piece)
    return b"".join(pieces)


def get(target: str, *fields: tuple[str, str], method: str = "GET") -> RequestHeader:
    return RequestHeader(method, target, [("Host", "origin"), *fields])


async def test_one_connection_carries_many_exchanges(codec: Codec, upstreams: list[Upstream]) -> None:
    conn = await connect(codec, upstreams[0])
    for n in range(5):
        await conn.write_request(get(f"/echo/{n}", ("X-Case-Kept", "yes")), end=True)
        response = await conn.read_response()
        assert (response.status, response.headers.get("x-upstream")) == (200, "up0")
        record = json.loads(await read_all(conn))
        assert record["target"] == f"/echo/{n}"
        assert ["X-Case-Kept", "yes"] in record["headers"]
        assert conn.start_next_cycle()
    await conn.close()
    assert upstreams[0].connections == 1


async def test_bodies_both_ways(codec: Codec, upstreams: list[Upstream]) -> None:
    conn = await connect(codec, upstreams[0])
    await conn.write_request(get("/echo", ("Content-Length", "200000")), b"a" * 100_000)
    await conn.write_body(b"b" * 100_000)
    await conn.finish()
    await conn.read_response()
    assert json.loads(await read_all(conn))["body"] == "a" * 100_000 + "b" * 100_000
    assert conn.start_next_cycle()

    await conn.write_request(get("/echo", ("Transfer-Encoding", "chunked")), b"abc")
    await conn.write_body(b"def")
    await conn.finish(Headers([("X-Sum", "6")]))
    await conn.read_response()
    record = json.loads(await read_all(conn))
    assert (record["body"], record["trailers"]) == ("abcdef", [["x-sum", "6"]])
    assert conn.start_next_cycle()

    await conn.write_request(get("/big?size=1000000"), end=True)
    await conn.read_response()
    assert await read_all(conn) == b"x" * 1_000_000
    assert conn.reusable
    await conn.close()


async def test_chunked_response_head_and_truncation(codec: Codec, upstreams: list[Upstream]) -> None:
    conn = await connect(codec, upstreams[0])
    await conn.write_request(get("/chunked"), end=True)
    await conn.read_response()
    assert await read_all(conn) == b"hello chunked world"
    assert conn.response_trailers == Headers([("x-checksum", "done")])
    assert conn.start_next_cycle()

    await conn.write_request(get("/echo", method="HEAD"), end=True)
    response = await conn.read_response()
    assert int(response.headers.get("content-length") or "0") > 0
    assert await conn.read_body() is None
    assert conn.start_next_cycle()

    await conn.write_request(get("/truncated"), end=True)
    await conn.read_response()
    with pytest.raises(Error) as caught:
        await read_all(conn)
    assert (caught.value.etype, caught.value.source) == (ErrorType.CONNECTION_CLOSED, ErrorSource.UPSTREAM)
    assert not conn.reusable
    await conn.close()
