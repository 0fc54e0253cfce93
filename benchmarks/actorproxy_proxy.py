"""actorproxy as a benchmark target: one worker process proxying every request to one origin.

    python benchmarks/actorproxy_proxy.py --listen 127.0.0.1:8082 --upstream 127.0.0.1:8080

A `ProxyHttp` app whose `upstream_peer` returns the origin's `HttpPeer` (built once), served by
`http_proxy_service` on a `Server` with `run_forever()`: the same path a user's proxy takes. SIGTERM drains
and exits; SIGINT stops at once.

Options for `benchmarks/proxy.py`:
- `--stats-file PATH`: on SIGUSR1, run a full garbage collection, then write the upstream pool's statistics
  (checkout hits and misses: a miss is a new upstream connection), the codec's name and the number of
  live actors as one JSON object to PATH.
- `--cprofile PATH`: run under cProfile and dump the stats to PATH on exit (heavy: timings are distorted,
  use it for call counts; `py-spy` on the running process gives honest time shares).
- `--threads N`: N worker processes (the server's `threads`), sharing the listening socket. The statistics
  file then describes whichever worker took the signal (the master passes it on to none): use it with one.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import logging
import os
import signal
import sys
from typing import Any

from actorproxy.config import ServerConf
from actorproxy.http import select_codec
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session, http_proxy_service
from actorproxy.server import Server
from actors import TreeNode


class ToOrigin(ProxyHttp):
    """Every request goes to the one origin."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.peer = HttpPeer((host, int(port)), tls=False, sni="")

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return self.peer


def codec_name() -> str:
    """The HTTP/1.1 codec the proxy uses (`$ACTORPROXY_CODEC`, else the fastest installed)."""
    name: str = select_codec().name
    return name


def count_actors(nodes: tuple[TreeNode, ...]) -> int:
    return sum(1 + count_actors(node.children) for node in nodes)


def write_stats(service: HttpProxyService, server: Server, path: str) -> None:
    # A full collection first: what the process then holds is what is alive (memory figures are read
    # right after the statistics).
    gc.collect()
    statistics = service.pool.statistics()
    data = {
        "pid": os.getpid(),
        "codec": codec_name(),
        "actors": None if server.system is None else count_actors(server.system.tree()),
        "idle": statistics.idle,
        "hits": statistics.hits,
        "misses": statistics.misses,
        "reaped": statistics.reaped,
        "dead": statistics.dead,
        "evictions": statistics.evictions,
        "rejected": statistics.rejected,
    }
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        json.dump(data, file)
    os.replace(temporary, path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:8082", help="host:port to serve on")
    parser.add_argument("--upstream", required=True, help="host:port of the origin server")
    parser.add_argument("--stats-file", help="on SIGUSR1, write the pool statistics here as JSON")
    parser.add_argument("--cprofile", help="profile with cProfile; dump the stats here on exit")
    parser.add_argument("--log-level", default="WARNING", help="logging level for stderr (default WARNING)")
    parser.add_argument("--threads", type=int, default=1, help="worker processes (the server's threads)")
    args = parser.parse_args(argv)
    print(f"actorproxy {os.getpid()}: {args.listen} -> {args.upstream}, codec {codec_name()}", flush=True)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    service = http_proxy_service(None, ToOrigin(args.upstream))
    service.add_tcp(args.listen)
    server = Server(ServerConf(threads=args.threads))
    server.bootstrap()
    server.add_service(service)

    if args.stats_file:
        stats_file: str = args.stats_file
        # A plain Python signal handler: it runs in the main thread between bytecodes, reads the pool
        # synchronously and never touches trio.
        signal.signal(signal.SIGUSR1, lambda signum, frame: write_stats(service, server, stats_file))

    if not args.cprofile:
        server.run_forever()
        return 0
    profiler = cProfile.Profile()
    try:
        profiler.runcall(server.run_forever)
    finally:
        profiler.dump_stats(args.cprofile)
    return 0


if __name__ == "__main__":
    sys.exit(main())
