"""The request path's CPU cost, in one process: µs of CPU per proxied request, steady under other load.

    python benchmarks/path.py                 # tiny and 64 KiB bodies, 20,000 requests each
    python benchmarks/path.py --requests 5000 --body tiny
    python benchmarks/path.py --profile FILE  # also count calls per request with cProfile (slower)
    python benchmarks/path.py --instructions  # instructions per request under valgrind: noise-free
    python benchmarks/path.py --declared [--rate-limit 1000000/s]  # the proxy declared in YAML instead
    python benchmarks/path.py --cache memory  # the HTTP cache: uncached, miss and hit (or --cache sqlite)

`benchmarks/proxy.py` measures throughput against nginx and aiohttp, which swings with whatever else the
machine runs. This script measures what a change to the request path costs, with little noise: the proxy
(`http_proxy_service`, a `ProxyHttp` whose `upstream_peer` returns one peer, every default on), an origin
and the clients all run in one `trio.run` on real loopback sockets, and the process's CPU time is divided
by the requests served. The origin and the clients are as cheap as trio allows (raw non-blocking sockets,
fixed bytes, no parsing beyond finding the end of a message), and their own cost is measured alone in the
same run (clients straight to the origin) and subtracted: what remains is the proxy's CPU per request.

Each figure is the best of three runs. 50 keep-alive clients send requests back to back, as wrk does in
`benchmarks/proxy.py`. CPU time counts user and system time, so syscalls are in it. The garbage collector is
set as in a serving process (`settle_for_serving`: what exists before is frozen, young collections rarer).

`--instructions` counts instead the user-space instructions the process executes (valgrind's callgrind,
`apt-get install valgrind`), which do not depend on what else the machine runs: the same code gives the
same count to within about 0.3%. Each body is run four times in a child process under valgrind: clients
straight to the origin and through the proxy, each with `--low` and `--high` requests (500 and 1,500 by
default). The difference between the two sizes divided by the difference in requests is the cost of one
request, start-up and warm-up cancelled out; the proxy's is the proxied figure minus the direct one. The
children run with a fixed hash seed and a fixed seed for trio's scheduling order. Instructions leave out
the kernel's work (the syscalls themselves) and do not weigh cache misses, so they track the Python the
proxy runs, which is what most changes to the request path change. About two minutes per body on two
cores (valgrind runs Python some 50x slower).

`--declared` measures the proxy declared in YAML (one service, one route to the origin, as
`actorproxy run` builds it) instead of the Python application; `--rate-limit RATE` adds a rate limit by
client address to that route (`1000000/s` never refuses: what a limit that does not trigger costs).

`--cache memory|sqlite` measures the HTTP cache (docs/cache.md) on that store: the same application with
`request_cache_filter` turning the cache on (`ResponseCache(store, default_ttl=3600)`, the store run as a
background service as `actorproxy run` does), in three ways, each beside the proxy without a cache in the
same run: `miss` (every request a new URL, `/bench?c=<client>&n=<k>`, so every response is looked up,
missed and stored) and `hit` (one URL, stored by the warm-up round). Here the clients read each answer's
Content-Length, since a cached answer's head (Age, x-cache) is not of a fixed length; `uncached` is the
proxy without the cache with those clients and URLs.

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import trio
from trio_floor_proxy import send_all  # this directory (a script's sys.path[0])

from actorproxy.config import ServerConf
from actorproxy.declared import build_proxy
from actorproxy.http import select_codec
from actorproxy.proxy import HttpPeer, ProxyHttp, ResponseCache, Session, http_proxy_service
from actorproxy.server import Server, background_service, settle_for_serving
from actorproxy.store import MemoryBackend, SqliteBackend, Store
from actors import open_actor_system

BODIES = {"tiny": b"hello, world\n", "64k": b"x" * 65536}
CLIENTS = 50
REQUEST = b"GET /bench HTTP/1.1\r\nHost: bench\r\nUser-Agent: path\r\nAccept: */*\r\n\r\n"
# `--cache`: what is measured (each beside the others in one run), and the memory store's cap (room for
# every response of a run).
CACHE_MODES = ("uncached", "miss", "hit")
MEMORY_STORE_SIZE = 1024 * 1024 * 1024


def response_bytes(body: bytes) -> bytes:
    head = (
        f"HTTP/1.1 200 OK\r\nServer: origin\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
        "Connection: keep-alive\r\n\r\n"
    )
    return head.encode() + body


async def _recv(sock: socket.socket) -> bytes:
    while True:
        try:
            return sock.recv(262144)
        except BlockingIOError:
            await trio.lowlevel.wait_readable(sock)


async def serve_origin(answer: bytes, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    """Answer every request head on every connection with `answer` (requests carry no body)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    listener.setblocking(False)
    async with trio.open_nursery() as nursery:
        task_status.started(listener.getsockname()[1])
        while True:
            try:
                conn, _ = listener.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(listener)
                continue
            conn.setblocking(False)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            nursery.start_soon(_origin_connection, conn, answer)


async def _origin_connection(conn: socket.socket, answer: bytes) -> None:
    pending = b""
    with conn:
        while data := await _recv(conn):
            pending += data
            heads = pending.count(b"\r\n\r\n")
            if heads:
                pending = pending[pending.rindex(b"\r\n\r\n") + 4 :]
                await send_all(conn, answer * heads)


async def _connect(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setblocking(False)
    try:
        sock.connect(("127.0.0.1", port))
    except BlockingIOError:
        await trio.lowlevel.wait_writable(sock)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


async def client(port: int, requests: int, expected: int) -> None:
    """Send `requests` requests one after another on one connection; read each whole answer."""
    with await _connect(port) as sock:
        for _ in range(requests):
            await send_all(sock, REQUEST)
            received = 0
            while received < expected:
                data = await _recv(sock)
                if not data:
                    raise RuntimeError("the server closed the connection")
                received += len(data)


def _request(target: str) -> bytes:
    return f"GET {target} HTTP/1.1\r\nHost: bench\r\nUser-Agent: path\r\nAccept: */*\r\n\r\n".encode()


async def reading_client(port: int, requests: int, targets: list[bytes]) -> None:
    """As `client`, sending `targets` in turn (again from the first when they run out), and reading each
    answer's head for its Content-Length (a cached answer's head has no fixed length)."""
    with await _connect(port) as sock:
        for index in range(requests):
            await send_all(sock, targets[index % len(targets)])
            data = b""
            while (end := data.find(b"\r\n\r\n")) < 0:
                received = await _recv(sock)
                if not received:
                    raise RuntimeError("the server closed the connection")
                data += received
            found = re.search(rb"(?i)\r\ncontent-length: *(\d+)", data[:end])
            missing = end + 4 + (0 if found is None else int(found[1])) - len(data)
            while missing > 0:
                received = await _recv(sock)
                if not received:
                    raise RuntimeError("the server closed the connection")
                missing -= len(received)


class ToOrigin(ProxyHttp):
    def __init__(self, port: int) -> None:
        self.peer = HttpPeer(("127.0.0.1", port), tls=False, sni="")

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return self.peer


class CachedToOrigin(ToOrigin):
    """`ToOrigin` with the HTTP cache on every request."""

    def __init__(self, port: int, cache: ResponseCache) -> None:
        super().__init__(port)
        self.cache = cache

    def request_cache_filter(self, session: Session, ctx: Any) -> None:
        session.cache.enable(self.cache)


def cache_store(backend: str, directory: str) -> Store:
    """A new store of `backend` (`memory`, or `sqlite`: a file in `directory`)."""
    if backend == "memory":
        return Store(MemoryBackend(max_size=MEMORY_STORE_SIZE))
    return Store(SqliteBackend(os.path.join(directory, "cache.db")))


async def _clients(port: int, requests: int, expected: int) -> float:
    per_client = requests // CLIENTS
    started = time.process_time()
    async with trio.open_nursery() as nursery:
        for _ in range(CLIENTS):
            nursery.start_soon(client, port, per_client, expected)
    return time.process_time() - started


#: The proxy under measure: the Python application, or the proxy declared in YAML with an optional rate
#: limit, or with the HTTP cache on a store (set from the command line, passed on to the `--run-once`
#: children).
PROXY: dict[str, Any] = {"declared": False, "rate_limit": None, "cache": None}


def _targets(mode: str, client: int, round_: str, requests: int) -> list[bytes]:
    """What one `--cache` client asks for: a new URL each time for `miss`, else one."""
    if mode != "miss":
        return [_request("/bench")]
    return [_request(f"/bench?r={round_}&c={client}&n={k}") for k in range(requests)]


async def _cache_clients(port: int, requests: int, mode: str, round_: str) -> float:
    per_client = requests // CLIENTS
    targets = [_targets(mode, client, round_, per_client) for client in range(CLIENTS)]
    started = time.process_time()
    async with trio.open_nursery() as nursery:
        for client_targets in targets:
            nursery.start_soon(reading_client, port, per_client, client_targets)
    return time.process_time() - started


async def _measure_cache(body: bytes, requests: int, mode: str, through_proxy: bool) -> float:
    """`_measure` for `--cache`: `mode` is one of `CACHE_MODES`."""
    backend = PROXY["cache"]
    assert backend is not None  # only with --cache
    answer = response_bytes(body)
    async with trio.open_nursery() as nursery:
        origin = await nursery.start(serve_origin, answer)
        if not through_proxy:
            seconds = await _cache_clients(origin, requests, mode, "run")
            nursery.cancel_scope.cancel()
            return seconds
        with tempfile.TemporaryDirectory() as directory:
            async with open_actor_system("bench") as system:
                app: ProxyHttp = ToOrigin(origin)
                if mode != "uncached":
                    store = cache_store(backend, directory)
                    await system.spawn(background_service("store", store).child_spec().start, name="store")
                    app = CachedToOrigin(origin, ResponseCache(store, default_ttl=3600))
                service = http_proxy_service(None, app)
                service.add_tcp("127.0.0.1:0")
                await system.spawn(service.child_spec().start, name=service.name)
                port = service.bound[0][1]
                await _cache_clients(port, CLIENTS, mode, "warm-up")
                seconds = await _cache_clients(port, requests, mode, "run")
        nursery.cancel_scope.cancel()
        return seconds


def declared_yaml(origin: int, rate: str | None, directory: str) -> str:
    """One service with one route to the origin, rate limited by client address when `rate` is given."""
    limit = f", rate_limit: {{key: client_ip, rate: '{rate}', burst: 1000000}}" if rate else ""
    route = f"{{upstream: origin{limit}}}"
    return (
        f"upgrade_sock: {directory}/upgrade.sock\n"
        "services:\n"
        f"  - {{name: proxy, listeners: [{{address: '127.0.0.1:0'}}], routes: [{route}]}}\n"
        "upstreams:\n"
        f"  - {{name: origin, discovery: {{static: ['127.0.0.1:{origin}']}}}}\n"
    )


async def _through(port: int, requests: int) -> float:
    # The proxy's answer carries its own fields (Via, Connection): its length is the origin's plus those;
    # read one to learn it. A first round fills the upstream pool.
    expected = await _answer_length(port)
    await _clients(port, CLIENTS, expected)
    return await _clients(port, requests, expected)


async def _measure(body: bytes, requests: int, through_proxy: bool) -> float:
    answer = response_bytes(body)
    async with trio.open_nursery() as nursery:
        origin = await nursery.start(serve_origin, answer)
        if not through_proxy:
            seconds = await _clients(origin, requests, len(answer))
            nursery.cancel_scope.cancel()
            return seconds
        if PROXY["declared"]:
            with tempfile.TemporaryDirectory() as directory:
                server = Server(ServerConf.from_yaml(declared_yaml(origin, PROXY["rate_limit"], directory)))
                handle = build_proxy(server)
                await nursery.start(server.serve)
                seconds = await _through(handle.services["proxy"].service.bound[0][1], requests)
                nursery.cancel_scope.cancel()
                return seconds
        async with open_actor_system("bench") as system:
            service = http_proxy_service(None, ToOrigin(origin))
            service.add_tcp("127.0.0.1:0")
            await system.spawn(service.child_spec().start, name=service.name)
            seconds = await _through(service.bound[0][1], requests)
        nursery.cancel_scope.cancel()
        return seconds


async def _answer_length(port: int) -> int:
    sock = socket.socket()
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    with sock:
        await send_all(sock, REQUEST)
        data = b""
        while b"\r\n\r\n" not in data:
            data += await _recv(sock)
        head = data.partition(b"\r\n\r\n")[0]
        length = next(
            int(line.split(b":", 1)[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        )
        return len(head) + 4 + length


def measure(body: bytes, requests: int, *, through_proxy: bool = True, mode: str | None = None) -> float:
    """CPU seconds for `requests` requests, best of three runs (`mode`: one of `CACHE_MODES`, with
    `--cache`)."""
    best = float("inf")
    settle_for_serving()  # the collector as a serving process has it
    for _ in range(3):
        gc.collect()
        if mode is None:
            seconds = trio.run(_measure, body, requests, through_proxy)
        else:
            seconds = trio.run(_measure_cache, body, requests, mode, through_proxy)
        best = min(best, seconds)
    return best


def cache_rows(names: list[str], requests: int) -> list[dict[str, Any]]:
    """µs of CPU per request of the proxy without a cache, and with it on a miss and on a hit."""
    rows = []
    for name in names:
        body = BODIES[name]
        row: dict[str, Any] = {"body": name, "store": PROXY["cache"], "requests": requests}
        direct = {mode: measure(body, requests, through_proxy=False, mode=mode) for mode in ("miss", "hit")}
        for mode in CACHE_MODES:
            alone = direct["miss" if mode == "uncached" else mode]
            proxied = measure(body, requests, mode=mode)
            row[f"{mode}_us_per_request"] = round((proxied - alone) / requests * 1e6, 1)
        uncached = row["uncached_us_per_request"]
        row["miss_vs_uncached"] = round(uncached / row["miss_us_per_request"], 2)
        row["hit_vs_uncached"] = round(uncached / row["hit_us_per_request"], 2)
        rows.append(row)
    return rows


def instructions(body: str, requests: int, through_proxy: bool, mode: str | None = None) -> int:
    """User-space instructions of one child process that runs `requests` requests, under callgrind
    (`mode`: one of `CACHE_MODES`, with `--cache`)."""
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--run-once", body, "--requests", str(requests)]
    if mode is not None:
        command += ["--cache", PROXY["cache"], "--cache-mode", mode]
    if not through_proxy:
        command.append("--direct")
    if PROXY["declared"]:
        command.append("--declared")
    if PROXY["rate_limit"]:
        command += ["--rate-limit", PROXY["rate_limit"]]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"Collected : (\d+)", done.stderr)
    if done.returncode or found is None:
        raise RuntimeError(f"valgrind run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return int(found[1])


def instructions_rows(names: list[str], low: int, high: int) -> list[dict[str, Any]]:
    """Instructions per request, clients and origin alone and through the proxy, for each body."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    runs = [(name, count, through) for name in names for through in (False, True) for count in (low, high)]
    # Two children at a time: the counts do not depend on what else runs.
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    rows = []
    for name in names:
        direct = (counts[name, high, False] - counts[name, low, False]) / (high - low)
        proxied = (counts[name, high, True] - counts[name, low, True]) / (high - low)
        rows.append(
            {
                "body": name,
                "codec": select_codec().name,
                "requests": [low, high],
                "direct_instructions_per_request": round(direct),
                "proxied_instructions_per_request": round(proxied),
                "proxy_instructions_per_request": round(proxied - direct),
            }
        )
    return rows


def cache_instructions_rows(names: list[str], modes: list[str], low: int, high: int) -> list[dict[str, Any]]:
    """`instructions_rows` for `--cache`: the proxy's instructions per request in each of `modes`."""
    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (apt-get install valgrind)")
    runs = [
        (name, count, through, mode)
        for name in names
        for mode in modes
        for through in (False, True)
        for count in (low, high)
    ]
    with ThreadPoolExecutor(max_workers=2) as pool:
        counts = dict(zip(runs, pool.map(lambda run: instructions(*run), runs), strict=True))
    rows = []
    for name in names:
        row: dict[str, Any] = {"body": name, "store": PROXY["cache"], "requests": [low, high]}
        for mode in modes:
            direct = (counts[name, high, False, mode] - counts[name, low, False, mode]) / (high - low)
            proxied = (counts[name, high, True, mode] - counts[name, low, True, mode]) / (high - low)
            row[f"{mode}_instructions_per_request"] = round(proxied - direct)
        rows.append(row)
    return rows


def run_once(body: str, requests: int, through_proxy: bool, mode: str | None = None) -> None:
    """One run, for `--instructions`: a fixed order of trio's scheduling batches (its private generator)."""
    trio._core._run._r.seed(0)
    settle_for_serving()
    if mode is None:
        trio.run(_measure, BODIES[body], requests, through_proxy)
    else:
        trio.run(_measure_cache, BODIES[body], requests, mode, through_proxy)


def profiled(path: str, function: Any, *args: Any) -> None:
    """`trio.run(function, *args)` under cProfile, its statistics written to `path`."""
    profiler = cProfile.Profile()
    profiler.enable()
    trio.run(function, *args)
    profiler.disable()
    profiler.dump_stats(path)


def cache_main(args: argparse.Namespace, names: list[str]) -> None:
    """`--cache`: the table (or JSON) of the proxy's cost per request uncached, on a miss and on a hit."""
    if args.instructions:
        modes = args.cache_mode or list(CACHE_MODES)
        rows = cache_instructions_rows(names, modes, args.low, args.high)
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        print("| body | store | " + " | ".join(f"{mode} instructions/request" for mode in modes) + " |")
        print("| --- | --- | " + " | ".join("---" for _ in modes) + " |")
        for row in rows:
            counts = " | ".join(f"{row[f'{mode}_instructions_per_request']:,}" for mode in modes)
            print(f"| {row['body']} | {row['store']} | {counts} |")
        return
    rows = cache_rows(names, args.requests)
    if args.profile:
        settle_for_serving()
        for name in names:
            for mode in args.cache_mode or [m for m in CACHE_MODES if m != "uncached"]:
                path = f"{args.profile}.{name}.{mode}"
                profiled(path, _measure_cache, BODIES[name], args.requests, mode, True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| body | store | uncached | miss | hit | miss vs uncached | hit vs uncached |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['body']} | {row['store']} | {row['uncached_us_per_request']} µs |"
            f" {row['miss_us_per_request']} µs | {row['hit_us_per_request']} µs |"
            f" {row['miss_vs_uncached']}x | {row['hit_vs_uncached']}x |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000, help="requests per run (default 20,000)")
    parser.add_argument("--body", choices=[*BODIES, "all"], default="all")
    parser.add_argument("--profile", metavar="FILE", help="profile one proxied run with cProfile into FILE")
    parser.add_argument("--json", action="store_true", help="JSON on stdout")
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request under valgrind instead"
    )
    parser.add_argument("--low", type=int, default=500, help="--instructions: the smaller run (requests)")
    parser.add_argument("--high", type=int, default=1500, help="--instructions: the larger run (requests)")
    parser.add_argument(
        "--declared", action="store_true", help="measure the proxy declared in YAML (one route to the origin)"
    )
    parser.add_argument("--rate-limit", metavar="RATE", help="with --declared: a limit by client address")
    parser.add_argument(
        "--cache", choices=["memory", "sqlite"], help="the HTTP cache on this store: uncached, miss and hit"
    )
    parser.add_argument(
        "--cache-mode",
        choices=CACHE_MODES,
        action="append",
        help="with --cache: measure only this (uncached, miss, hit; repeatable)",
    )
    parser.add_argument("--run-once", choices=list(BODIES), help=argparse.SUPPRESS)
    parser.add_argument("--direct", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    PROXY.update(declared=args.declared or bool(args.rate_limit), rate_limit=args.rate_limit)
    if args.run_once:
        PROXY["cache"] = args.cache
        run_once(args.run_once, args.requests, not args.direct, args.cache_mode[0] if args.cache else None)
        return
    names = list(BODIES) if args.body == "all" else [args.body]
    if args.cache:
        PROXY["cache"] = args.cache
        cache_main(args, names)
        return
    if args.instructions:
        rows = instructions_rows(names, args.low, args.high)
        if args.json:
            print(json.dumps(rows, indent=2))
            return
        print("| body | codec | proxy instructions/request | (clients + origin alone) |")
        print("| --- | --- | --- | --- |")
        for row in rows:
            print(
                f"| {row['body']} | {row['codec']} | {row['proxy_instructions_per_request']:,} |"
                f" {row['direct_instructions_per_request']:,} |"
            )
        return
    rows = []
    for name in names:
        body = BODIES[name]
        direct = measure(body, args.requests, through_proxy=False)
        proxied = measure(body, args.requests)
        rows.append(
            {
                "body": name,
                "codec": select_codec().name,
                "requests": args.requests,
                "direct_us_per_request": round(direct / args.requests * 1e6, 1),
                "proxied_us_per_request": round(proxied / args.requests * 1e6, 1),
                "proxy_us_per_request": round((proxied - direct) / args.requests * 1e6, 1),
            }
        )
        if args.profile:
            profiled(f"{args.profile}.{name}", _measure, body, args.requests, True)
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print("| body | codec | proxy CPU µs/request | (clients + origin alone) |")
    print("| --- | --- | --- | --- |")
    for row in rows:
        print(
            f"| {row['body']} | {row['codec']} | {row['proxy_us_per_request']} |"
            f" {row['direct_us_per_request']} |"
        )


if __name__ == "__main__":
    main()
