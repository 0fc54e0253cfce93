"""Demo origin servers for the proxy examples, and the bits of wiring those examples share.

The demo upstreams themselves live in the package (`actorproxy.demo`, also behind `actorproxy demo`); this
module re-exports them under the names the examples import, and adds the examples' own wiring: `serve_proxy`
runs a server in a nursery and returns its URL, `run` runs an example's `main` as a script.

Run as a script, it serves demo upstreams on fixed ports, by default the ones `examples/proxy.yaml` sends
to, so that the proxy declared there has something to proxy to:

    python examples/demo_upstreams.py            # 127.0.0.1:9001 .. 9004, named after their ports
    actorproxy -c examples/proxy.yaml            # in another shell; then curl -i http://127.0.0.1:6191/

The examples import this module by its plain name (`python examples/x.py` puts `examples/` on `sys.path`).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Awaitable, Callable, Sequence

import trio

from actorproxy import HttpProxyService, Server
from actorproxy.demo import (
    DEMO_HOST,
    MAX_PAD,
    Address,
    demo_record,
    serve_demo_upstream,
    start_demo_upstreams,
)
from actors import ActorSystem

__all__ = [
    "DEMO_HOST",
    "MAX_PAD",
    "Address",
    "demo_record",
    "main",
    "run",
    "serve_demo_upstream",
    "serve_proxy",
    "start_demo_upstreams",
]

logger = logging.getLogger("examples.demo_upstreams")

#: The ports the upstreams of `examples/proxy.yaml` listen on.
PROXY_YAML_PORTS = (9001, 9002, 9003, 9004)


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


async def main(argv: Sequence[str] | None = None) -> None:
    """Serve one demo upstream per port given (default `PROXY_YAML_PORTS`), named after its port."""
    parser = argparse.ArgumentParser(description="Serve demo upstreams on 127.0.0.1 until Ctrl-C.")
    parser.add_argument(
        "ports", nargs="*", type=int, default=list(PROXY_YAML_PORTS), help="ports to serve on"
    )
    ports: list[int] = parser.parse_args(argv).ports
    async with trio.open_nursery() as nursery:
        bound = await start_demo_upstreams(nursery, [str(port) for port in ports], ports=ports)
        print("demo upstreams listening on " + ", ".join(f"{DEMO_HOST}:{port}" for port in bound), flush=True)


if __name__ == "__main__":
    run(main)
