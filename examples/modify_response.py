"""Modify a response body: the upstream answers JSON, the client gets the same data as YAML.

Pingora's `modify_response` example (Json2Yaml) on a local demo upstream:

- `response_body_filter` keeps every piece of the upstream body in the request's ctx and sends nothing
  (`body.data = None`) until the last piece; then it parses the whole JSON document and sends its YAML
  form in its place.
- The new body's length is only known at its end, after the head has gone out, so `response_filter`
  removes `Content-Length` and asks for `Transfer-Encoding: chunked`; it also says the body is now YAML.
- Only JSON is converted: any other answer from the upstream passes through untouched.

Buffering a whole body costs memory per request; it suits small documents like this one.

Run it with `python examples/modify_response.py` and try:

    curl -i http://127.0.0.1:6188/
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio
import yaml
from demo_upstreams import DEMO_HOST, Address, run, serve_proxy, start_demo_upstreams

from actorproxy import (
    BodyChunk,
    HttpPeer,
    ProxyHttp,
    RequestHeader,
    ResponseHeader,
    Server,
    Session,
    http_proxy_service,
)

# The guide's port; loopback rather than its 0.0.0.0, so the demo is not reachable from the network.
LISTEN = "127.0.0.1:6188"
#: The name the upstream serves (Pingora's example asks ip.jsonip.com); the demo upstream echoes it back.
UPSTREAM_HOST = "demo.internal"


@dataclass
class MyCtx:
    """What the phases of one request share: whether to convert, and the upstream body so far."""

    convert: bool = False
    buffer: bytearray = field(default_factory=bytearray)


class Json2Yaml(ProxyHttp):
    """Proxies to `addr`, converting JSON answers to YAML."""

    def __init__(self, addr: Address) -> None:
        self.addr = addr

    def new_ctx(self) -> MyCtx:
        return MyCtx()

    async def upstream_peer(self, session: Session, ctx: MyCtx) -> HttpPeer:
        return HttpPeer(self.addr, tls=False, sni="")

    async def upstream_request_filter(
        self, session: Session, upstream_request: RequestHeader, ctx: MyCtx
    ) -> None:
        upstream_request.insert_header("Host", UPSTREAM_HOST)

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: MyCtx) -> None:
        content_type = upstream_response.headers.get("Content-Type") or ""
        ctx.convert = content_type.lower().startswith("application/json")
        if not ctx.convert:
            return
        # The length of the YAML is unknown until the JSON has all arrived: frame the body by chunks.
        upstream_response.remove_header("Content-Length")
        upstream_response.insert_header("Transfer-Encoding", "chunked")
        upstream_response.insert_header("Content-Type", "application/yaml")

    async def response_body_filter(
        self, session: Session, body: BodyChunk, end_of_stream: bool, ctx: MyCtx
    ) -> float | None:
        if not ctx.convert:
            return None
        if body.data is not None:
            ctx.buffer += body.data
            body.data = None
        if end_of_stream and ctx.buffer:
            json_body = json.loads(ctx.buffer)
            body.data = yaml.safe_dump(json_body, sort_keys=False).encode()
        return None


async def start(
    nursery: trio.Nursery, *, server: Server | None = None, listen: str = "127.0.0.1:0"
) -> tuple[str, Json2Yaml]:
    """Start the demo upstream and the proxy in `nursery`; return the proxy's URL and the app."""
    my_server = server or Server()
    [port] = await start_demo_upstreams(nursery, ["json"])
    app = Json2Yaml((DEMO_HOST, port))
    my_proxy = http_proxy_service(my_server.configuration, app)
    my_proxy.add_tcp(listen)
    my_server.add_service(my_proxy)
    return await serve_proxy(nursery, my_server, my_proxy), app


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve the proxy on `LISTEN` until Ctrl-C or SIGTERM."""
    my_server = Server.from_args(argv)
    my_server.bootstrap()
    async with trio.open_nursery() as nursery:
        url, _ = await start(nursery, server=my_server, listen=LISTEN)
        print(f"json2yaml proxy listening; try: curl -i {url}/")


if __name__ == "__main__":
    run(main)
