"""The proxy on memory streams: a service on a `MemoryListener`, its upstreams on a `MemoryNetwork`."""

from __future__ import annotations

from typing import Any

import attrs
import trio

from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session
from actorproxy.testing import (
    MemoryListener,
    MemoryNetwork,
    RawResponse,
    exchange,
)
from actors import ActorSystem

#: Where the tests' origins listen (nothing listens there for real).
ORIGIN = ("10.0.0.1", 80)
OTHER_ORIGIN = ("10.0.0.2", 80)


class ToOrigin(ProxyHttp):
    """Proxies every request to one address."""

    def __init__(self, address: tuple[str, int] = ORIGIN) -> None:
        self.address = address

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(self.address, tls=False, sni="")


@attrs.define
class MemoryProxy:
    """A running service, the listener it accepts from and the network it connects through."""

    service: HttpProxyService
    listener: MemoryListener
    network: MemoryNetwork
    system: ActorSystem

    async def connect(self) -> trio.abc.Stream:
        return await self.listener.connect()

    async def get(self, target: str, **kwargs: Any) -> RawResponse:
        """One GET on a new connection, which is then closed."""
        async with await self.connect() as stream:
            return await exchange(stream, "GET", target, **kwargs)


async def read_until_closed(stream: trio.abc.ReceiveStream) -> bytes:
    """Everything the proxy sends until it closes its side."""
    data = b""
    while chunk := await stream.receive_some(65536):
        data += chunk
    return data
