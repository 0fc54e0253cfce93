"""The reference a Python user would pick instead: a minimal aiohttp reverse proxy on uvloop.

    python benchmarks/aiohttp_proxy.py --listen 127.0.0.1:8081 --upstream 127.0.0.1:8080

One process, one event loop (uvloop, installed as the event loop policy). Every request is forwarded with one
shared `aiohttp.ClientSession`, whose connector keeps a pool of keep-alive connections to the upstream, and
the response body is streamed back chunk by chunk as it arrives (a `StreamResponse`, not buffered). Hop-by-hop
headers are dropped both ways, as a proxy must. No access log. This is what `benchmarks/proxy.py` runs as the
"aiohttp + uvloop" reference; it needs `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import AsyncIterator

import aiohttp
import uvloop
from aiohttp import web
from multidict import CIMultiDict

# RFC 9110 §7.6.1, plus the framing header: aiohttp frames both sides itself.
HOP_BY_HOP = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "transfer-encoding", "upgrade", "trailer"}
)
# Pool size per upstream: more than the benchmark's concurrency, so no request waits for a connection.
POOL_LIMIT = 256


def forwardable(headers: CIMultiDict[str] | aiohttp.typedefs.LooseHeaders) -> CIMultiDict[str]:
    """The end-to-end headers of `headers`: hop-by-hop ones and those named by `Connection` removed."""
    source = CIMultiDict(headers)
    named = {token.strip().lower() for value in source.getall("connection", []) for token in value.split(",")}
    return CIMultiDict((k, v) for k, v in source.items() if k.lower() not in HOP_BY_HOP | named)


def make_app(upstream: str) -> web.Application:
    base = f"http://{upstream}"

    async def session_context(app: web.Application) -> AsyncIterator[None]:
        connector = aiohttp.TCPConnector(limit=POOL_LIMIT, keepalive_timeout=60)
        async with aiohttp.ClientSession(
            connector=connector, auto_decompress=False, timeout=aiohttp.ClientTimeout(total=None)
        ) as session:
            app["session"] = session
            yield

    async def proxy(request: web.Request) -> web.StreamResponse:
        session: aiohttp.ClientSession = request.app["session"]
        body = request.content if request.body_exists else None
        async with session.request(
            request.method,
            base + request.raw_path,
            headers=forwardable(request.headers),
            data=body,
            allow_redirects=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Accept"),
        ) as upstream_response:
            response = web.StreamResponse(
                status=upstream_response.status,
                reason=upstream_response.reason,
                headers=forwardable(upstream_response.headers),
            )
            if upstream_response.content_length is not None:
                response.content_length = upstream_response.content_length
            await response.prepare(request)
            async for chunk in upstream_response.content.iter_any():
                await response.write(chunk)
            await response.write_eof()
            return response

    app = web.Application()
    app.cleanup_ctx.append(session_context)
    app.router.add_route("*", "/{tail:.*}", proxy)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8081", help="host:port to serve on")
    parser.add_argument("--upstream", required=True, help="host:port of the origin server")
    args = parser.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(make_app(args.upstream), host=host, port=int(port), access_log=None, print=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
