"""Demo origin servers for the proxy examples, and the bits of wiring those examples share.

Pingora's guide proxies to public hosts (1.1.1.1, 1.0.0.1); our examples proxy to these instead, so they run
offline and their tests never leave the machine. Each demo upstream is a tiny HTTP/1.1 server on 127.0.0.1
that answers every request with 200 and a JSON body naming itself, the method, the path and the Host it saw,
plus an `x-upstream: <name>` header. It also sends `Server` and `alt-svc` headers, like a real origin, so a
proxy that rewrites them has something to rewrite. A `?pad=N` query adds a field of N bytes, for a body big
enough to reach the proxy in several pieces (at most `MAX_PAD`).

The origin speaks HTTP through h11 directly, not through the proxy's own codec, so a bug in the proxy cannot
hide behind the same bug on the other side.

Not an example by itself: the examples import it (`python examples/x.py` puts `examples/` on `sys.path`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from urllib.parse import parse_qs

import h11
import trio

from actorproxy import ActorSystem
from actors import HttpProxyService
from supervisors import Server

__all__ = [
    "DEMO_HOST",
    "Address",
    "demo_record",
    "run",
    "serve_demo_upstream",
    "serve_proxy",
    "start_demo_upstreams",
]

logger = logging.getLogger("examples.demo_upstreams")

#: Demo upstreams listen on loopback only.
DEMO_HOST = "127.0.0.1"
# A demo request is a few hundred bytes; 64 KiB is the read size the proxy uses too (DESIGN).
READ_SIZE = 64 * 1024
# Largest `?pad=`: many times the proxy's read size, and small enough that a typo cannot eat the memory.
MAX_PAD = 4 * 1024 * 1024


Address = tuple[str, int]
"""Where a demo upstream listens: (host, port)."""


def demo_record(name: str, request: h11.Request) -> dict[str, str]:
    """What a demo upstream says about `request`: its own name, the method, the path and the Host."""
    host = next((value for key, value in request.headers if key == b"host"), b"")
    path, _, query = request.target.decode("latin-1").partition("?")
    record = {
        "upstream": name,
        "method": request.method.decode("latin-1"),
        "path": path,
        "host": host.decode("latin-1"),
    }
    pad = parse_qs(query).get("pad", ["0"])[-1]
    if pad.isdigit() and int(pad) > 0:
        record["pad"] = "x" * min(int(pad), MAX_PAD)
    return record


async def serve_demo_upstream(
    name: str,
    *,
    port: int = 0,
    host: str = DEMO_HOST,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the demo origin `name` on `host:port` until cancelled; reports the bound port when listening."""
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    logger.info("demo upstream %s on %s:%d", name, host, bound)
    task_status.started(bound)
    await trio.serve_listeners(partial(_serve_connection, name), listeners)


async def start_demo_upstreams(
    nursery: trio.Nursery, names: Sequence[str], *, ports: Sequence[int] | None = None
) -> list[int]:
    """Start one demo upstream per name in `nursery` (on `ports`, default all 0); return their bound ports."""
    wanted = [0] * len(names) if ports is None else list(ports)
    if len(wanted) != len(names):
        raise ValueError(f"ports: {len(wanted)} given for {len(names)} upstreams")
    return [
        await nursery.start(partial(serve_demo_upstream, name, port=port))
        for name, port in zip(names, wanted, strict=True)
    ]


async def _serve_connection(name: str, stream: trio.SocketStream) -> None:
    conn = h11.Connection(h11.SERVER)
    try:
        while True:
            request = await _read_request(conn, stream)
            if request is None:
                return
            body = json.dumps(demo_record(name, request)).encode()
            headers = [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(body))),
                ("x-upstream", name),
                ("Server", "demo-upstream"),
                ("alt-svc", 'h3=":443"; ma=86400'),
            ]
            data = conn.send(h11.Response(status_code=200, headers=headers, reason=b"OK")) or b""
            if request.method != b"HEAD":
                data += conn.send(h11.Data(data=body)) or b""
            data += conn.send(h11.EndOfMessage()) or b""
            await stream.send_all(data)
            if conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                return  # the client asked to close, or we could not tell where its request ended
            conn.start_next_cycle()
    except (trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
        # A demo origin has nobody to report to: the client broke the connection, so it just ends.
        logger.debug("demo upstream %s: connection ended: %r", name, exc)
    finally:
        await trio.aclose_forcefully(stream)


async def _read_request(conn: h11.Connection, stream: trio.SocketStream) -> h11.Request | None:
    """The next request, its body read and dropped; None when the client closed between requests."""
    request: h11.Request | None = None
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await stream.receive_some(READ_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.EndOfMessage):
            return request
        elif isinstance(event, h11.ConnectionClosed):
            return None


async def serve_proxy(nursery: trio.Nursery, server: Server, proxy: HttpProxyService) -> str:
    """Run `server` in `nursery` and return the base URL of `proxy`'s first endpoint once it listens.

    When the server stops by itself (SIGTERM drains it) the rest of `nursery`, the demo upstreams, stops too.
    """

    async def serve(*, task_status: trio.TaskStatus[ActorSystem] = trio.TASK_STATUS_IGNORED) -> None:
        await server.serve(task_status=task_status)
        nursery.cancel_scope.cancel()

    await nursery.start(serve)
    host, port = proxy.bound[0][:2]
    return f"http://{host}:{port}"


def run(main: Callable[[Sequence[str] | None], Awaitable[object]]) -> None:
    """Run an example's `main` as a script: info logs on stderr, and a quiet exit on Ctrl-C."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        trio.run(main, None)
    except* KeyboardInterrupt:
        logger.info("interrupted")
