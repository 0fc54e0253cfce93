"""Each codec's classes have exactly the members of `ServerSide` / `ClientSide`, with their signatures.

mypy checks the codecs against the protocols where `Codec` is built; this checks it at run time too, on
each available codec, including the public members a protocol does not name.
"""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import trio.testing

from actorproxy.http import ClientSide, Codec, ServerSide, available_codecs, select_codec


@pytest.fixture(params=available_codecs())
def codec(request: pytest.FixtureRequest) -> Codec:
    return select_codec(request.param)


def members(protocol: type) -> dict[str, Any]:
    """The public members a protocol declares, its base protocols' included: name -> function, property, or
    None for an annotated attribute."""
    found: dict[str, Any] = {}
    for cls in reversed(protocol.__mro__):
        found.update(dict.fromkeys(name for name in vars(cls).get("__annotations__", {}) if name[0] != "_"))
        found.update((name, value) for name, value in vars(cls).items() if name[0] != "_")
    return found


def shape(function: Any) -> list[tuple[str, Any, Any]]:
    """A function's parameters: name, kind and default (annotations are checked by mypy)."""
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_the_protocols_name_the_interface() -> None:
    assert {"read_request", "write_response", "keepalive", "detach", "bytes_read"} <= set(members(ServerSide))
    assert {"write_request", "read_response", "reusable", "read_timeout", "stream"} <= set(
        members(ClientSide)
    )


@pytest.mark.parametrize("side", ["server", "client"])
async def test_a_codec_has_exactly_the_protocol_members(codec: Codec, side: str) -> None:
    protocol = ServerSide if side == "server" else ClientSide
    expected = members(protocol)
    conn = getattr(codec, side)(trio.testing.memory_stream_pair()[0])
    public = {name for name in dir(conn) if name[0] != "_"}
    assert public == set(expected), (
        f"{type(conn).__name__}: missing {set(expected) - public}, extra {public - set(expected)}"
    )
    for name, declared in expected.items():
        if not inspect.isfunction(declared):
            continue
        defined = getattr(type(conn), name)
        assert inspect.iscoroutinefunction(defined) == inspect.iscoroutinefunction(declared), name
        assert shape(defined) == shape(declared), name


async def test_the_client_timeouts_can_be_set(codec: Codec) -> None:
    conn = codec.client(trio.testing.memory_stream_pair()[0], read_timeout=1.0)
    assert (conn.read_timeout, conn.write_timeout) == (1.0, None)
    conn.read_timeout, conn.write_timeout = 2.0, 3.0
    assert (conn.read_timeout, conn.write_timeout) == (2.0, 3.0)
