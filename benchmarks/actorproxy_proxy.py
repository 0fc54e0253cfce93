"""actorproxy as a benchmark target: one worker process proxying every request to one origin.

    python benchmarks/actorproxy_proxy.py --listen 127.0.0.1:8082 --upstream 127.0.0.1:8080

A `ProxyHttp` app whose `upstream_peer` returns the origin's `HttpPeer` (built once), served by
`http_proxy_service` on a `Server` with `run_forever()`: the same path a user's proxy takes. SIGTERM drains
and exits; SIGINT stops at once.

Options for `benchmarks/proxy.py`:
- `--stats-file PATH`: on SIGUSR2, run a full garbage collection, then write the upstream pool's statistics
  (checkout hits and misses: a miss is a new upstream connection), the codec's name and the number of
  live actors as one JSON object to PATH. (SIGUSR1 is the server's own: it reopens log files.)
- `--metrics ADDR`, `--access-log PATH`: the Prometheus page and an access log (combined format) on, to
  measure what they cost (`benchmarks/proxy.py --actorproxy-option=--access-log=/tmp/a.log`).
- `--cprofile PATH`: run under cProfile and dump the stats to PATH on exit (heavy: timings are distorted,
  use it for call counts; `py-spy` on the running process gives honest time shares).
- `--cache memory` or `--cache sqlite:PATH`: the HTTP cache on every request (`ResponseCache` on a store of
  that backend, run as a background service), with `--cache-ttl` seconds of freshness for responses that
  state none (the origin's static files), as nginx's `proxy_cache_valid`.
- `--declared`: the proxy declared in YAML (one route to the origin) instead of the Python app; with
  `--rate-limit RATE`, the route is rate limited by client address (`1000000/s` never refuses: what a
  limit costs when it does not trigger); with `--redis URL` too, the limit counts in that Redis
  (`backend: redis`).
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

from actorproxy.config import AccessLogConf, ServerConf
from actorproxy.declared import build_proxy
from actorproxy.http import select_codec
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, ResponseCache, Session, http_proxy_service
from actorproxy.server import Server, background_service
from actorproxy.store import MemoryBackend, SqliteBackend, Store
from actors import TreeNode

# The memory store's cap for the cache: room for every response of a run, as nginx's cache has on disk.
MEMORY_STORE_SIZE = 1024 * 1024 * 1024


class ToOrigin(ProxyHttp):
    """Every request goes to the one origin."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.peer = HttpPeer((host, int(port)), tls=False, sni="")

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return self.peer


class CachingToOrigin(ToOrigin):
    """Every request goes to the one origin, through the HTTP cache."""

    def __init__(self, upstream: str, cache: ResponseCache) -> None:
        super().__init__(upstream)
        self.cache = cache

    def request_cache_filter(self, session: Session, ctx: Any) -> None:
        session.cache.enable(self.cache)


def cache_store(spec: str) -> Store:
    """The store `--cache` names: `memory` or `sqlite:PATH`."""
    if spec == "memory":
        return Store(MemoryBackend(max_size=MEMORY_STORE_SIZE))
    kind, _, path = spec.partition(":")
    if kind != "sqlite" or not path:
        raise SystemExit(f"--cache: expected memory or sqlite:PATH, got {spec!r}")
    return Store(SqliteBackend(path))


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
    parser.add_argument("--stats-file", help="on SIGUSR2, write the pool statistics here as JSON")
    parser.add_argument("--cprofile", help="profile with cProfile; dump the stats here on exit")
    parser.add_argument("--log-level", default="WARNING", help="logging level for stderr (default WARNING)")
    parser.add_argument("--metrics", metavar="ADDR", help="also serve the Prometheus page on host:port")
    parser.add_argument("--access-log", metavar="PATH", help="log each request (combined format) to PATH")
    parser.add_argument("--cache", metavar="STORE", help="cache every request: memory or sqlite:PATH")
    parser.add_argument(
        "--cache-ttl", type=float, default=3600.0, help="freshness of responses that state none (seconds)"
    )
    parser.add_argument("--threads", type=int, default=1, help="worker processes (the server's threads)")
    parser.add_argument(
        "--declared",
        action="store_true",
        help="serve the proxy declared in YAML (one route to the origin) instead of the Python app",
    )
    parser.add_argument(
        "--rate-limit",
        metavar="RATE",
        help="with --declared: a rate limit on the route by client address (1000000/s never refuses)",
    )
    parser.add_argument("--redis", metavar="URL", help="with --rate-limit: count the limit in this Redis")
    args = parser.parse_args(argv)
    print(f"actorproxy {os.getpid()}: {args.listen} -> {args.upstream}, codec {codec_name()}", flush=True)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    if args.declared or args.rate_limit:
        server = Server(
            ServerConf.from_yaml(
                declared_yaml(args.listen, args.upstream, args.rate_limit, args.threads, args.redis)
            )
        )
        server.bootstrap()
        service = build_proxy(server).services["proxy"].service
        return serve(server, service, args)

    server = Server(ServerConf(threads=args.threads))
    server.bootstrap()
    store = None
    app = ToOrigin(args.upstream)
    if args.cache:
        store = cache_store(args.cache)
        app = CachingToOrigin(args.upstream, ResponseCache(store, default_ttl=args.cache_ttl))
    service = http_proxy_service(None, app)
    service.add_tcp(args.listen)
    if args.access_log:
        service.configure(access_log=AccessLogConf(path=args.access_log))
    if store is None:
        server.add_service(service)
    else:
        server.add_service(service, depends_on=[server.add_service(background_service("store", store))])
    if args.metrics:
        server.add_prometheus_service(args.metrics)
    return serve(server, service, args)


def declared_yaml(
    listen: str, upstream: str, rate: str | None, threads: int, redis: str | None = None
) -> str:
    """One service with one route to the origin, with a rate limit by client address when `rate` is given
    (counted in the Redis at `redis` if given)."""
    backend = ", backend: redis" if redis else ""
    limit = f", rate_limit: {{key: client_ip, rate: '{rate}', burst: 1000000{backend}}}" if rate else ""
    return (
        (f"redis: {{url: '{redis}'}}\n" if redis else "") + f"threads: {threads}\n"
        "services:\n"
        f"  - {{name: proxy, listeners: [{{address: '{listen}'}}], routes: [{{upstream: origin{limit}}}]}}\n"
        "upstreams:\n"
        f"  - {{name: origin, discovery: {{static: ['{upstream}']}}}}\n"
    )


def serve(server: Server, service: HttpProxyService, args: argparse.Namespace) -> int:
    """Run `server` until a signal stops it, with the statistics signal and the profiler if asked."""
    if args.stats_file:
        stats_file: str = args.stats_file
        # A plain Python signal handler: it runs in the main thread between bytecodes, reads the pool
        # synchronously and never touches trio.
        signal.signal(signal.SIGUSR2, lambda signum, frame: write_stats(service, server, stats_file))

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
