"""The phase table: a request calls only the phases an application overrides, and relays what is buffered."""

from __future__ import annotations

from typing import Any

import pytest

from actorproxy.config import Forwarding
from actorproxy.http import ResponseHeader, available_codecs, select_codec
from actorproxy.proxy import BodyChunk, Exchange, HttpPeer, ProxyHttp, Session
from actorproxy.proxy._phases import SKIPPABLE, Phases
from actorproxy.testing import ScriptedStream

# A chunked body: its end is bytes of its own (the last chunk), which go in the same write when buffered.
RESPONSE = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"


class PeerOnly(ProxyHttp):
    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", 80), tls=False, sni="")


class FiltersResponses(PeerOnly):
    def __init__(self) -> None:
        self.pieces: list[tuple[bytes | None, bool]] = []

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        upstream_response.insert_header("X-Filtered", "1")

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: Any
    ) -> float | None:
        self.pieces.append((body.data, end_of_stream))
        return None


class Inherits(FiltersResponses):
    """Overrides nothing itself: what its base overrides counts."""


def test_an_app_that_overrides_nothing_skips_every_default() -> None:
    assert Phases.of(PeerOnly()) == Phases(**dict.fromkeys(SKIPPABLE, False))


def test_overrides_count_in_the_class_its_bases_and_the_instance() -> None:
    phases = Phases.of(Inherits())
    overridden = [name for name in SKIPPABLE if getattr(phases, name)]
    assert overridden == ["response_filter", "response_body_filter"]
    app = PeerOnly()
    app.logging = lambda session, e, ctx: None  # type: ignore[method-assign]
    assert [name for name in SKIPPABLE if getattr(Phases.of(app), name)] == ["logging"]


def test_the_defaults_are_what_skipping_them_assumes() -> None:
    # Skipping a phase stands for calling its default: each returns its constant and does nothing else.
    app = ProxyHttp()
    assert app.new_ctx() is None
    for name in SKIPPABLE:
        if name == "new_ctx":
            continue
        method = getattr(app, name)
        arguments: tuple[Any, ...] = (None,) * (method.__code__.co_argcount - 1)
        coroutine = method(*arguments)
        with pytest.raises(StopIteration) as returned:
            coroutine.send(None)
        expected = {"request_filter": False, "proxy_upstream_filter": True}.get(name)
        assert returned.value.value is expected, name


async def _relay(codec: str, app: ProxyHttp) -> list[bytes]:
    """What the client is sent for `RESPONSE`, write by write, when `app` relays it."""
    chosen = select_codec(codec)
    client = ScriptedStream([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"], close=False)
    downstream = chosen.server(client)
    request = await downstream.read_request()
    assert request is not None
    upstream = chosen.client(ScriptedStream([RESPONSE], close=False))
    session = Session(downstream, request)
    assert await Exchange(app, session, None, upstream, Forwarding(via=None)).run() == 200
    return client.writes


@pytest.mark.parametrize("codec", available_codecs())
async def test_a_response_no_filter_sees_goes_out_whole_in_one_write(codec: str) -> None:
    writes = await _relay(codec, PeerOnly())
    assert len(writes) == 1
    assert writes[0].endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")


@pytest.mark.parametrize("codec", available_codecs())
async def test_body_filters_see_each_piece_then_the_end(codec: str) -> None:
    app = FiltersResponses()
    writes = await _relay(codec, app)
    assert app.pieces == [(b"hello", False), (None, True)]
    assert b"X-Filtered: 1\r\n" in writes[0]
    assert b"".join(writes).endswith(b"\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
