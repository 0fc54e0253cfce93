"""The proxy under HTTP load: actorproxy (one worker) next to nginx, aiohttp + uvloop and the origin itself.

    python benchmarks/proxy.py                 # full run: 3 scenarios x 5 targets, 10 s each (about 4 min)
    python benchmarks/proxy.py --quick         # 3 s each, noisier
    python benchmarks/proxy.py --quick --scenarios tiny,64k --targets aiohttp,actorproxy \
        --idle-connections 0 --no-kernel       # the regression check: under a minute
    python benchmarks/proxy.py --duration 20   # seconds per measured run
    python benchmarks/proxy.py --json          # the same measurements as JSON on stdout
    python benchmarks/proxy.py --markdown      # the tables as Markdown, for benchmarks/README.md
    python benchmarks/proxy.py --profile DIR   # then profile actorproxy, tiny body (py-spy, cProfile)
    python benchmarks/proxy.py --targets actorproxy --scenarios 1m --profile DIR --profile-scenario 1m
    python benchmarks/proxy.py --cache         # the HTTP cache's hits and misses, beside nginx's
    python benchmarks/proxy.py --h2            # HTTP/2 clients (h2load) to actorproxy and to nginx
    python benchmarks/proxy.py --redis-limit   # actorproxy rate limited in a redis-server: its latency
    python benchmarks/proxy.py --only-idle     # only the memory row of 5,000 idle connections (under 30 s)

Needs `pip install -e '.[bench]'` (aiohttp, uvloop) and the Debian packages `wrk` and `nginx`
(`apt-get install wrk nginx`); `--profile` also needs `pip install py-spy` and the right to ptrace (root).

What is measured, in one run on this machine: wrk, keep-alive, 50 connections, one thread, for a fixed
duration per run, against
1. direct: the origin itself, an nginx serving fixed bodies from files (13 bytes, 64 KiB, 1 MiB),
2. nginx: a second nginx (Debian package, one worker) as a reverse proxy with an upstream keep-alive pool,
3. aiohttp: `benchmarks/aiohttp_proxy.py`, aiohttp + uvloop, one process, one shared ClientSession,
4. actorproxy: `benchmarks/actorproxy_proxy.py`, one worker process, `Server.run_forever()`,
5. actorproxy, threads: 2: the same with two worker processes sharing the listening socket,
6. trio-floor (only when asked for, `--targets ...,trio-floor`): `benchmarks/trio_floor_proxy.py`, bytes
   relayed between sockets on trio with httptools finding where messages end, and nothing else (no header
   touched or checked, one upstream connection per client connection): how fast a trio proxy can be at
   all here, next to aiohttp + uvloop.

The proxy under test is pinned to core 0; wrk and the origin share core 1 (`taskset`). `threads: 2` is not
pinned: its two workers have both cores, which wrk and the origin use too, so it shows what a second worker
adds on a machine with no core to spare. Each proxy gets a
short warm-up run first (its upstream pool fills), then the measured run, which opens 50 new client
connections. Per run: requests/s, p50 and p99 latency (wrk's histogram, read by a Lua `done()`), MiB/s,
errors (connect, read, write, timeout, HTTP status >= 400), the CPU of the proxy under test and the CPU
nobody of ours used (other processes on the machine: noise), the time to the first response on one new
connection and on each of 50 new connections opened at once during the run, and upstream connection reuse:
connections the origin accepted during the run and in its second half (nginx `stub_status`), the most
ESTABLISHED connections from the proxy to the origin at once (`ss`, every 0.5 s) and, for actorproxy, its
pool's checkout misses.

With `--cache` (scenarios `tiny-hit`, `64k-hit`, `tiny-miss`), two more targets: nginx with `proxy_cache`
(`nginx-cache`: a disk cache, `proxy_cache_valid 200 1h`, `proxy_cache_lock on`) and actorproxy with its HTTP
cache on every request (`actorproxy-cache`: `benchmarks/actorproxy_proxy.py --cache memory`, or
`--cache-backend sqlite` for a SQLite store, with a default_ttl of an hour for the origin's files, which state
no lifetime), next to the same two proxies uncached. A hit scenario asks for one path again and again (the
warm-up stores it); the miss scenario asks for a new URL every time (`/tiny?run=<id>&n=<k>`, from a wrk
script), so the caches store every response and serve none. The cache's own targets: hits at least 2x the
uncached proxy's req/s, misses at most 10% slower.

With `--h2`, the clients speak HTTP/2 in cleartext with prior knowledge instead: h2load, 100 streams at once
over 10 connections (10 per connection), to actorproxy (`actorproxy_proxy.py --h2c`) and to nginx as an h2
proxy (`listen ... http2`), both speaking HTTP/1.1 to the origin; scenarios tiny and 64k. Per run: requests/s,
MiB/s, mean and max request time (h2load reports no percentiles), failed requests, the proxy's CPU. Needs
`h2load` (`apt-get install nghttp2-client`). The idle-connection and kernel rows are skipped.

With `--redis-limit`, the run starts a `redis-server` (Debian package) and actorproxy serves the declared
proxy (`actorproxy_proxy.py --declared`) with a rate limit by client address that never refuses, counted in
that Redis (`backend: redis`): compare its latency with a run without it (`--actorproxy-option=--declared`).

Beside the load runs, in the same run: the RSS a fresh actorproxy (one worker) grows by while it holds
5,000 idle keep-alive client connections (each has carried one request), per connection, with the number of
actors before and after (`--idle-connections N`); and `benchmarks/kernel.py`'s ask round trip with a timeout
against a memory-channel ping-pong (`--no-kernel` skips it). The targets are printed at the end, each met or
MISSED.

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import importlib.metadata
import importlib.util
import json
import os
import platform
import pstats
import re
import resource
import selectors
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h11
import trio

import actorproxy

HERE = Path(__file__).resolve().parent
CONNECTIONS = 50
FULL_SECONDS = 10.0
QUICK_SECONDS = 3.0
PROXY_CORE = 0  # the proxy under test
LOAD_CORE = 1  # wrk and the origin
# The targets, each in this one run, side by side (see TARGETS_CHECKED below for how each is read).
TARGET_TINY_RPS_RATIO = 1.5  # tiny responses: actorproxy >= 1.5x aiohttp + uvloop's req/s ...
TARGET_TINY_P99_RATIO = 1.0  # ... with a p99 no worse than aiohttp's
TARGET_64K_RPS_RATIO = 1.3  # 64 KiB: >= 1.3x aiohttp + uvloop
TARGET_1M_MIB_RATIO = 1.0  # 1 MiB: >= the nginx proxy's MiB/s
TARGET_IDLE_KIB = 8.0  # RSS per idle keep-alive client connection, at most
TARGET_ASK_RATIO = 1.25  # the kernel's ask with a timeout, at most this times a memory-channel ping-pong
IDLE_CONNECTIONS = 5000  # idle keep-alive client connections held open for the memory row
REDIS_LIMIT_RATE = "1000000/s"  # --redis-limit: a limit by client address that never refuses
TARGET_HIT_RATIO = 2.0  # the cache's targets: hits at least 2x our own uncached proxying ...
TARGET_MISS_RATIO = 0.9  # ... and misses at most 10% slower than no cache
# When, as a fraction of the run, to time one new connection's first response, then a burst of new ones; and
# from when new upstream connections are counted apart (none are expected: the pool is warm by then).
PROBE_AT, BURST_AT, SECOND_HALF = 0.15, 0.3, 0.5
PYSPY_RATE = 100  # samples/s: each sample briefly stops the process, so keep it low

# HTTP/2 runs (`--h2`): h2load's connections and streams at once on each.
H2_CONNECTIONS = 10
H2_STREAMS = 10
H2_TARGETS = ("nginx-h2", "actorproxy-h2")

TINY = b"hello, world\n"


@dataclass(frozen=True)
class Scenario:
    name: str
    key: str
    size: int
    #: "proxy" (the plain scenarios), "hit" (one path again and again) or "miss" (a new URL each time).
    mode: str = "proxy"

    @property
    def file(self) -> str:
        """The origin's file: the key without its cache mode."""
        return self.key.split("-", 1)[0]

    @property
    def path(self) -> str:
        return f"/{self.file}"

    @property
    def cached(self) -> bool:
        return self.mode != "proxy"

    def body(self) -> bytes:
        if self.size == len(TINY):
            return TINY
        return bytes(range(256)) * (self.size // 256)


SCENARIOS = (
    Scenario("tiny (13 B)", "tiny", len(TINY)),
    Scenario("64 KiB", "64k", 64 * 1024),
    Scenario("1 MiB", "1m", 1024 * 1024),
    Scenario("tiny, cache hit", "tiny-hit", len(TINY), "hit"),
    Scenario("64 KiB, cache hit", "64k-hit", 64 * 1024, "hit"),
    Scenario("tiny, cache miss", "tiny-miss", len(TINY), "miss"),
)
FILES = tuple(s for s in SCENARIOS if not s.cached)
CACHE_SCENARIOS = "tiny-hit,64k-hit,tiny-miss"
TARGETS = (
    "direct",
    "nginx",
    "nginx-cache",
    "aiohttp",
    "trio-floor",
    "actorproxy",
    "actorproxy-cache",
    "actorproxy2",
    *H2_TARGETS,
)
DEFAULT_TARGETS = "direct,nginx,aiohttp,actorproxy"
CACHE_TARGETS = "nginx,nginx-cache,actorproxy,actorproxy-cache"
#: Targets that cache: they run the cache scenarios only.
CACHING = ("nginx-cache", "actorproxy-cache")
REFERENCES = ("direct", "nginx", "aiohttp", "trio-floor")
#: (target, reference) pairs compared in the ratio table, besides actorproxy against each reference.
CACHE_PAIRS = (
    ("actorproxy-cache", "actorproxy"),
    ("actorproxy-cache", "nginx-cache"),
    ("nginx-cache", "nginx"),
    ("trio-floor", "aiohttp"),
)
LABELS = {
    "direct": "direct (nginx origin)",
    "nginx": "nginx proxy",
    "nginx-cache": "nginx proxy_cache",
    "aiohttp": "aiohttp + uvloop",
    "trio-floor": "bare trio + httptools (floor)",
    "actorproxy": "actorproxy",
    "actorproxy-cache": "actorproxy cache",
    "actorproxy2": "actorproxy, threads: 2",
    "nginx-h2": "nginx proxy, h2c",
    "actorproxy-h2": "actorproxy, h2c",
}

# Prints wrk's summary as one JSON line; latencies in microseconds.
WRK_LUA = r"""
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRKJSON {"requests": %.0f, "duration_us": %.0f, "bytes": %.0f, "connect": %.0f, "read": %.0f, ' ..
    '"write": %.0f, "status": %.0f, "timeout": %.0f, "p50": %.0f, "p90": %.0f, "p99": %.0f, ' ..
    '"p999": %.0f, "mean": %.1f, "max": %.0f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency:percentile(99.9),
    latency.mean, latency.max))
end
"""
# A new URL for every request (a cache miss each time); PREFIX is replaced with `/file?run=<id>&n=`.
WRK_MISS_LUA = r"""
local counter = 0
request = function()
  counter = counter + 1
  return wrk.format(nil, "PREFIX" .. counter)
end
"""


# -- the machine ---------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{read_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s:\n{read_tail(log)}")


def read_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def pinning() -> bool:
    return shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2


def pinned(core: int, command: list[str]) -> list[str]:
    return ["taskset", "-c", str(core), *command] if pinning() else command


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (nginx's master and worker)."""
    children: dict[int, list[int]] = collections.defaultdict(list)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children[ppid].append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds used so far by `pids`."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / ticks


def own_cpu_seconds() -> float:
    """CPU seconds of this script and of its reaped children (wrk, ss)."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def busy_seconds() -> float:
    """CPU seconds all cores have spent busy (not idle, not waiting for I/O) since boot."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/stat").read_text().splitlines():
            name, *values = line.split()
            if name == "cpu":
                ticks = [int(v) for v in values]
                return (sum(ticks[:8]) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def established_to(port: int, pids: set[int]) -> int:
    """ESTABLISHED TCP connections to `port` owned by one of `pids`."""
    try:
        done = subprocess.run(
            ["ss", "-Htnp", "state", "established", "dport", "=", f":{port}"],
            capture_output=True,
            text=True,
            check=True,
        )
    except (OSError, subprocess.CalledProcessError):
        return -1
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return sum(1 for line in lines if {int(p) for p in re.findall(r"pid=(\d+)", line)} & pids)


def first_response_seconds(port: int, path: str) -> float:
    """Connect, send one GET, read the whole response: the time a new client waits for its first answer."""
    began = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        received = bytearray()
        while chunk := sock.recv(1 << 20):
            received += chunk
    if not received.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"probe of port {port}: {bytes(received[:100])!r}")
    return time.perf_counter() - began


@dataclass
class _Probe:
    sent: bool = False
    data: bytearray = field(default_factory=bytearray)


def open_probes(
    port: int, count: int, selector: selectors.BaseSelector, sockets: list[socket.socket]
) -> None:
    """Start `count` non-blocking connects to `port`, each registered for writing with a `_Probe`."""
    for _ in range(count):
        sock = socket.socket()
        sockets.append(sock)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        selector.register(sock, selectors.EVENT_WRITE, _Probe())


def burst_first_responses(port: int, path: str, count: int) -> list[float]:
    """Open `count` connections at once, one GET on each: the seconds until each response has ended."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    began = time.perf_counter()
    times: list[float] = []
    sockets = []
    try:
        open_probes(port, count, selector, sockets)
        deadline = began + 60
        while len(times) < count and time.perf_counter() < deadline:
            for key, _ in selector.select(timeout=1):
                sock, probe = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                if not probe.sent:
                    sock.sendall(request)  # a few bytes into an empty buffer: never blocks
                    probe.sent = True
                    selector.modify(sock, selectors.EVENT_READ, probe)
                elif chunk := sock.recv(1 << 20):
                    probe.data += chunk
                else:
                    if not probe.data.startswith(b"HTTP/1.1 200"):
                        raise RuntimeError(f"burst probe of port {port}: {bytes(probe.data[:100])!r}")
                    times.append(time.perf_counter() - began)
                    selector.unregister(sock)
    finally:
        selector.close()
        for sock in sockets:
            sock.close()
    if len(times) < count:
        raise RuntimeError(f"burst probe of port {port}: {count - len(times)} of {count} got no response")
    return times


# -- the servers ---------------------------------------------------------------------------------------------


def nginx_origin_conf(work: Path, port: int, status_port: int) -> str:
    """The origin: static files, sendfile, no access log, and keep-alive that never ends on its own."""
    return f"""
daemon off;
worker_processes 1;
error_log stderr;
pid {work}/origin.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    sendfile on;
    tcp_nopush on;
    open_file_cache max=16;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    client_body_temp_path {work}/tmp/origin-body;
    proxy_temp_path {work}/tmp/origin-proxy;
    fastcgi_temp_path {work}/tmp/origin-fastcgi;
    uwsgi_temp_path {work}/tmp/origin-uwsgi;
    scgi_temp_path {work}/tmp/origin-scgi;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {work}/www;
        location = /tiny {{ }}
        location = /64k {{ }}
        location = /1m {{ }}
    }}
    server {{
        listen 127.0.0.1:{status_port};
        location = /status {{ stub_status; }}
    }}
}}
"""


def nginx_proxy_conf(
    work: Path, port: int, origin_port: int, *, cache: bool = False, http2: bool = False
) -> str:
    """The nginx reference: one worker, an upstream keep-alive pool, otherwise nginx's defaults; with `cache`,
    proxy_cache on disk keeping every 200 for an hour, with its lock on; with `http2`, its listener speaks
    HTTP/2 in cleartext (prior knowledge) and no HTTP/1.1."""
    name = "cache" if cache else "h2" if http2 else "proxy"
    cache_path = (
        f"proxy_cache_path {work}/cache levels=1:2 keys_zone=bench:64m max_size=4g inactive=1h"
        " use_temp_path=off;"
        if cache
        else ""
    )
    caching = (
        "proxy_cache bench; proxy_cache_valid 200 1h; proxy_cache_lock on;"
        " add_header X-Cache $upstream_cache_status;"
        if cache
        else ""
    )
    return f"""
daemon off;
worker_processes 1;
error_log stderr;
pid {work}/{name}.pid;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path {work}/tmp/{name}-body;
    proxy_temp_path {work}/tmp/{name}-proxy;
    fastcgi_temp_path {work}/tmp/{name}-fastcgi;
    uwsgi_temp_path {work}/tmp/{name}-uwsgi;
    scgi_temp_path {work}/tmp/{name}-scgi;
    {cache_path}
    upstream origin {{
        server 127.0.0.1:{origin_port};
        keepalive 64;
        keepalive_requests 10000000;
    }}
    server {{
        listen 127.0.0.1:{port} backlog=4096{" http2" if http2 else ""};
        http2_max_concurrent_streams 128;
        location / {{
            proxy_pass http://origin;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            {caching}
        }}
    }}
}}
"""


@dataclass
class Target:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path


class Fleet:
    """The origin and the three proxies, each a subprocess; all stopped, in reverse, on the way out."""

    def __init__(
        self,
        work: Path,
        targets: tuple[str, ...],
        actorproxy_options: tuple[str, ...] = (),
        cache_backend: str = "memory",
        redis: bool = False,
    ) -> None:
        self.work = work
        #: Start a redis-server for actorproxy's rate limit (`--redis-limit`).
        self.redis = redis
        self.wanted = targets
        #: Extra arguments for benchmarks/actorproxy_proxy.py (`--actorproxy-option`).
        self.actorproxy_options = actorproxy_options
        #: The store of actorproxy's cache: memory, or sqlite (a file in the work directory).
        self.cache_backend = cache_backend
        self.origin_port = free_port()
        self.status_port = free_port()
        self.targets: dict[str, Target] = {}
        self.processes: list[Target] = []
        self.stats_file = work / "actorproxy-stats.json"
        self.lua = work / "summary.lua"
        #: actorproxy's HTTP/1.1 codec, as it reports it.
        self.codec = "?"

    def start(self, name: str, command: list[str], port: int) -> Target:
        log = self.work / f"{name}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, cwd=self.work)
        target = Target(name, port, process, log)
        self.processes.append(target)
        wait_for_port(port, process, log)
        return target

    def write_files(self) -> None:
        www = self.work / "www"
        www.mkdir()
        (self.work / "tmp").mkdir()
        for scenario in FILES:
            (www / scenario.key).write_bytes(scenario.body())
        # nginx's cache is written by its worker, nobody when root starts it.
        (self.work / "cache").mkdir(mode=0o777)
        (self.work / "cache").chmod(0o777)
        # nginx workers run as nobody when root starts them: let them read the files.
        for path in (self.work, www, *www.iterdir()):
            path.chmod(0o755 if path.is_dir() else 0o644)
        self.lua.write_text(WRK_LUA)

    def up(self) -> None:
        self.write_files()
        nginx = shutil.which("nginx") or "/usr/sbin/nginx"
        conf = self.work / "origin.conf"
        conf.write_text(nginx_origin_conf(self.work, self.origin_port, self.status_port))
        self.targets["direct"] = self.start(
            "origin", pinned(LOAD_CORE, [nginx, "-c", str(conf)]), self.origin_port
        )
        upstream = f"127.0.0.1:{self.origin_port}"
        if self.redis:
            port = free_port()
            command = [shutil.which("redis-server") or "redis-server", "--port", str(port), "--save", ""]
            command += ["--appendonly", "no", "--dir", str(self.work)]
            self.start("redis", command, port)  # not pinned: in production it has a machine of its own
            limit = [f"--rate-limit={REDIS_LIMIT_RATE}", f"--redis=redis://127.0.0.1:{port}/0"]
            self.actorproxy_options = (*self.actorproxy_options, *limit)
        if "nginx" in self.wanted:
            port = free_port()
            conf = self.work / "proxy.conf"
            conf.write_text(nginx_proxy_conf(self.work, port, self.origin_port))
            self.targets["nginx"] = self.start("nginx", pinned(PROXY_CORE, [nginx, "-c", str(conf)]), port)
        if "nginx-cache" in self.wanted:
            port = free_port()
            conf = self.work / "cache.conf"
            conf.write_text(nginx_proxy_conf(self.work, port, self.origin_port, cache=True))
            command = pinned(PROXY_CORE, [nginx, "-c", str(conf)])
            self.targets["nginx-cache"] = self.start("nginx-cache", command, port)
        if "nginx-h2" in self.wanted:
            port = free_port()
            conf = self.work / "h2.conf"
            conf.write_text(nginx_proxy_conf(self.work, port, self.origin_port, http2=True))
            self.targets["nginx-h2"] = self.start(
                "nginx-h2", pinned(PROXY_CORE, [nginx, "-c", str(conf)]), port
            )
        if "actorproxy-h2" in self.wanted:
            extra = [*self.actorproxy_options, "--h2c"]
            self.targets["actorproxy-h2"] = self.start_actorproxy("actorproxy-h2", extra)
        for name, script in (("aiohttp", "aiohttp_proxy.py"), ("trio-floor", "trio_floor_proxy.py")):
            if name in self.wanted:  # the Python proxies we compare with, started alike
                port = free_port()
                command = [sys.executable, str(HERE / script), "--listen", f"127.0.0.1:{port}"]
                command += ["--upstream", upstream]
                self.targets[name] = self.start(name, pinned(PROXY_CORE, command), port)
        if "actorproxy" in self.wanted:
            self.targets["actorproxy"] = self.start_actorproxy("actorproxy", list(self.actorproxy_options))
        if "actorproxy-cache" in self.wanted:
            store = "memory" if self.cache_backend == "memory" else f"sqlite:{self.work / 'store.db'}"
            extra = [*self.actorproxy_options, "--cache", store]
            self.targets["actorproxy-cache"] = self.start_actorproxy("actorproxy-cache", extra)
        if "actorproxy2" in self.wanted:
            # Two workers on both cores, which wrk and the origin use too: not pinned.
            extra = [*self.actorproxy_options, "--threads", "2"]
            self.targets["actorproxy2"] = self.start_actorproxy("actorproxy2", extra, pin=False)

    def start_actorproxy(self, name: str, extra: list[str], *, pin: bool = True) -> Target:
        port = free_port()
        command = [sys.executable, str(HERE / "actorproxy_proxy.py"), "--listen", f"127.0.0.1:{port}"]
        command += ["--upstream", f"127.0.0.1:{self.origin_port}", "--stats-file", str(self.stats_file)]
        command += extra
        return self.start(name, pinned(PROXY_CORE, command) if pin else command, port)

    @staticmethod
    def stop(target: Target) -> None:
        process = target.process
        if process.poll() is not None:
            return
        # nginx stops gracefully on SIGQUIT; the Python proxies drain on SIGTERM.
        process.send_signal(
            signal.SIGQUIT
            if target.name in ("origin", "nginx", "nginx-cache", "nginx-h2")
            else signal.SIGTERM
        )
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def down(self) -> None:
        for target in reversed(self.processes):
            self.stop(target)

    def origin_status(self) -> tuple[int, int]:
        """The origin's (accepted connections, requests) so far, this query's own included."""
        url = f"http://127.0.0.1:{self.status_port}/status"
        with urllib.request.urlopen(url, timeout=5) as response:
            text = response.read().decode()
        accepts, _handled, requests = (int(n) for n in text.splitlines()[2].split())
        return accepts, requests

    def pool_stats(self, target: Target) -> dict[str, Any] | None:
        """actorproxy's upstream pool counters, which it writes to a file on SIGUSR2."""
        if target.process.poll() is not None:
            return None
        with contextlib.suppress(FileNotFoundError):
            self.stats_file.unlink()
        target.process.send_signal(signal.SIGUSR2)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            with contextlib.suppress(FileNotFoundError, ValueError):
                stats: dict[str, Any] = json.loads(self.stats_file.read_text())
                return stats
            time.sleep(0.02)
        return None


@contextlib.contextmanager
def fleet_running(
    targets: tuple[str, ...],
    keep: bool,
    actorproxy_options: tuple[str, ...] = (),
    cache_backend: str = "memory",
    redis: bool = False,
) -> Iterator[Fleet]:
    work = Path(tempfile.mkdtemp(prefix="actorproxy-bench-"))
    fleet = Fleet(work, targets, actorproxy_options, cache_backend, redis)
    try:
        fleet.up()
        yield fleet
    finally:
        fleet.down()
        if keep:
            print(f"kept {work} (configurations, server logs)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


# -- one measurement ----------------------------------------------------------------------------------------


@dataclass
class Result:
    scenario: str
    target: str
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    max_ms: float
    mib_per_s: float
    bytes_per_response: float
    errors: dict[str, int]
    #: Connections the origin accepted during the measured run (for "direct": wrk's own and the probes'),
    #: and during its second half only (after the probes: any is a connection the pool failed to reuse).
    origin_new_connections: int
    origin_new_second_half: int | None
    origin_requests: int
    #: ESTABLISHED connections from the target to the origin, sampled every 0.5 s during the run.
    established: list[int] = field(default_factory=list)
    #: Time to the first response on one new connection opened during the run, in ms.
    first_response_ms: float | None = None
    #: The same for each of a burst of `CONNECTIONS` new connections opened at once during the run, in ms.
    burst_ms: list[float] = field(default_factory=list)
    #: CPU of the target's process tree during the run (100 = one core).
    target_cpu_percent: float = 0.0
    #: CPU used during the run by anything but the target, the origin, wrk and this script (100 = one core).
    other_cpu_percent: float = 0.0
    #: actorproxy only: its pool's checkout hits and misses during the run.
    pool: dict[str, int] | None = None

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def cpu_us_per_request(self) -> float:
        """CPU microseconds of the target per request: steadier than req/s when others share the machine."""
        return self.target_cpu_percent / 100 / self.rps * 1e6 if self.rps else 0.0


def run_wrk(url: str, seconds: float, lua: Path, connections: int = CONNECTIONS) -> dict[str, float]:
    duration = f"-d{max(1, round(seconds))}s"  # wrk takes whole seconds
    command = ["wrk", "-t1", f"-c{connections}", duration, "--timeout", "10s", "--latency"]
    done = subprocess.run(
        [*pinned(LOAD_CORE, command), "-s", str(lua), url], capture_output=True, text=True, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("WRKJSON "):
            data: dict[str, float] = json.loads(line.removeprefix("WRKJSON "))
            return data
    raise RuntimeError(f"wrk gave no summary (exit {done.returncode}):\n{done.stdout}\n{done.stderr}")


class Watcher:
    """While a run lasts: counts connections to the origin every 0.5 s; times a few new connections."""

    def __init__(self, fleet: Fleet, port: int, path: str, pids: set[int] | None, seconds: float) -> None:
        self.fleet = fleet
        self.port = port
        self.origin_port = fleet.origin_port
        self.path = path
        self.pids = pids
        self.probes = [
            (PROBE_AT * seconds, self._probe),
            (BURST_AT * seconds, self._burst),
            (SECOND_HALF * seconds, self._origin_status),
        ]
        self.origin_accepts_mid: int | None = None
        self.established: list[int] = []
        self.first_response: float | None = None
        self.burst: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        began = time.monotonic()
        while not self._stop.wait(0.5):
            if self.pids is not None:  # None: the target is the origin itself
                self.established.append(established_to(self.origin_port, self.pids))
            if self.probes and time.monotonic() - began >= self.probes[0][0]:
                _, probe = self.probes.pop(0)
                try:
                    probe()
                except (OSError, RuntimeError) as exc:
                    self.errors.append(str(exc))

    def _probe(self) -> None:
        self.first_response = first_response_seconds(self.port, self.path) * 1000

    def _origin_status(self) -> None:
        self.origin_accepts_mid, _ = self.fleet.origin_status()

    def _burst(self) -> None:
        self.burst = sorted(t * 1000 for t in burst_first_responses(self.port, self.path, CONNECTIONS))

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join()


def miss_script(fleet: Fleet, scenario: Scenario) -> Path:
    """A wrk script asking for a URL no run asked for before (see WRK_MISS_LUA)."""
    run = uuid.uuid4().hex[:12]
    path = fleet.work / f"miss-{run}.lua"
    path.write_text(WRK_MISS_LUA.replace("PREFIX", f"{scenario.path}?run={run}&n=") + WRK_LUA)
    return path


def measure(fleet: Fleet, scenario: Scenario, name: str, seconds: float, warmup: float) -> Result:
    target = fleet.targets[name]
    url = f"http://127.0.0.1:{target.port}{scenario.path}"
    if warmup > 0:
        run_wrk(url, warmup, miss_script(fleet, scenario) if scenario.mode == "miss" else fleet.lua)
    lua = miss_script(fleet, scenario) if scenario.mode == "miss" else fleet.lua
    pids = process_tree(target.process.pid)
    origin_pids = process_tree(fleet.targets["direct"].process.pid)
    others = [] if name == "direct" else origin_pids
    accepts_before, requests_before = fleet.origin_status()
    ours = name.startswith("actorproxy")
    pool_before = fleet.pool_stats(target) if ours else None
    before = (cpu_seconds(pids), cpu_seconds(others), own_cpu_seconds(), busy_seconds(), time.monotonic())
    owners = None if name == "direct" else set(pids)
    with Watcher(fleet, target.port, scenario.path, owners, seconds) as watcher:
        data = run_wrk(url, seconds, lua)
    after = (cpu_seconds(pids), cpu_seconds(others), own_cpu_seconds(), busy_seconds(), time.monotonic())
    accepts_after, requests_after = fleet.origin_status()
    pool_after = fleet.pool_stats(target) if ours else None
    if pool_after is not None:
        fleet.codec = str(pool_after.get("codec", "?"))
    target_cpu, origin_cpu, own_cpu, busy, wall = (a - b for a, b in zip(after, before, strict=True))
    duration = data["duration_us"] / 1e6
    requests = int(data["requests"])
    pool = None
    if pool_before is not None and pool_after is not None:
        pool = {
            key: int(pool_after[key]) - int(pool_before[key])
            for key in ("hits", "misses", "dead", "evictions")
        }
    mid = watcher.origin_accepts_mid
    for error in watcher.errors:
        print(f"  probe failed: {error}", file=sys.stderr)
    return Result(
        scenario=scenario.name,
        target=name,
        seconds=round(duration, 2),
        requests=requests,
        rps=requests / duration,
        p50_ms=data["p50"] / 1000,
        p90_ms=data["p90"] / 1000,
        p99_ms=data["p99"] / 1000,
        p999_ms=data["p999"] / 1000,
        max_ms=data["max"] / 1000,
        mib_per_s=data["bytes"] / duration / 2**20,
        bytes_per_response=data["bytes"] / max(requests, 1),
        errors={key: int(data[key]) for key in ("connect", "read", "write", "timeout", "status")},
        # Less the status queries' own connections and requests ("before" and the one in the middle).
        origin_new_connections=accepts_after - accepts_before - (1 if mid is None else 2),
        origin_new_second_half=None if mid is None else accepts_after - mid - 1,
        origin_requests=requests_after - requests_before - (1 if mid is None else 2),
        established=watcher.established,
        first_response_ms=watcher.first_response,
        burst_ms=watcher.burst,
        target_cpu_percent=100 * target_cpu / wall,
        other_cpu_percent=max(0.0, 100 * (busy - target_cpu - origin_cpu - own_cpu) / wall),
        pool=pool,
    )


@dataclass
class H2Result:
    scenario: str
    target: str
    seconds: float
    requests: int
    rps: float
    mib_per_s: float
    mean_ms: float
    max_ms: float
    failed: int
    errored: int
    #: CPU of the target's process tree during the run (100 = one core).
    target_cpu_percent: float

    @property
    def cpu_us_per_request(self) -> float:
        return self.target_cpu_percent / 100 / self.rps * 1e6 if self.rps else 0.0


_H2LOAD_FINISHED = re.compile(r"finished in ([\d.]+)(m?s), ([\d.]+) req/s, ([\d.]+)([KMG]?B)/s")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored"
)
_H2LOAD_TIME = re.compile(r"time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)")
_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1000.0}
_UNIT_MIB = {"B": 2**-20, "KB": 2**-10, "MB": 1.0, "GB": 2**10}


def run_h2load(url: str, seconds: float) -> dict[str, float]:
    """h2load for `seconds` (h2c, prior knowledge): req/s, MiB/s, requests, failures, mean and max ms."""
    command = ["h2load", "-c", str(H2_CONNECTIONS), "-m", str(H2_STREAMS), "-D", str(max(1, round(seconds)))]
    done = subprocess.run([*pinned(LOAD_CORE, command), url], capture_output=True, text=True, check=False)
    out = done.stdout
    finished, counts, times = (
        pattern.search(out) for pattern in (_H2LOAD_FINISHED, _H2LOAD_REQUESTS, _H2LOAD_TIME)
    )
    if finished is None or counts is None or times is None:
        raise RuntimeError(f"h2load gave no summary (exit {done.returncode}):\n{out}\n{done.stderr}")
    wall = float(finished[1]) / (1000 if finished[2] == "ms" else 1)
    return {
        "seconds": wall,
        "rps": float(finished[3]),
        "mib_per_s": float(finished[4]) * _UNIT_MIB[finished[5]],
        "requests": float(counts[2]),
        "failed": float(counts[4]),
        "errored": float(counts[5]),
        "max_ms": float(times[3]) * _UNIT_MS[times[4]],
        "mean_ms": float(times[5]) * _UNIT_MS[times[6]],
    }


def measure_h2(fleet: Fleet, scenario: Scenario, name: str, seconds: float, warmup: float) -> H2Result:
    target = fleet.targets[name]
    url = f"http://127.0.0.1:{target.port}{scenario.path}"
    run_h2load(url, warmup)
    pids = process_tree(target.process.pid)
    before, began = cpu_seconds(pids), time.monotonic()
    data = run_h2load(url, seconds)
    cpu, wall = cpu_seconds(pids) - before, time.monotonic() - began
    return H2Result(
        scenario=scenario.name,
        target=name,
        seconds=round(data["seconds"], 2),
        requests=int(data["requests"]),
        rps=data["rps"],
        mib_per_s=data["mib_per_s"],
        mean_ms=data["mean_ms"],
        max_ms=data["max_ms"],
        failed=int(data["failed"]),
        errored=int(data["errored"]),
        target_cpu_percent=100 * cpu / wall,
    )


def h2_table(results: list[H2Result], markdown: bool = False) -> str:
    header = ("scenario", "target", "req/s", "MiB/s", "mean ms", "max ms", "failed", "CPU %", "CPU us/req")
    lines = [
        (
            r.scenario,
            LABELS[r.target],
            f"{r.rps:,.0f}",
            f"{r.mib_per_s:,.1f}",
            f"{r.mean_ms:.2f}",
            f"{r.max_ms:.1f}",
            f"{r.failed + r.errored}",
            f"{r.target_cpu_percent:.0f}",
            f"{r.cpu_us_per_request:.0f}",
        )
        for r in results
    ]
    return render(header, lines, markdown)


def run_h2(args: argparse.Namespace, seconds: float) -> list[H2Result]:
    """The HTTP/2 rows (`--h2`): h2load against each h2 target, scenarios tiny and 64k by default."""
    targets = tuple(t for t in H2_TARGETS if t in args.targets.split(","))
    scenarios = [s for s in FILES if s.key in args.scenarios.split(",")]
    results: list[H2Result] = []
    with fleet_running(targets, args.keep, tuple(args.actorproxy_option)) as fleet:
        for scenario in scenarios:
            for name in targets:
                progress(args.json, f"{scenario.name}: {LABELS[name]}, h2load, {seconds:g} s")
                results.append(measure_h2(fleet, scenario, name, seconds, 1.0))
    return results


def print_h2(args: argparse.Namespace, results: list[H2Result], meta: dict[str, Any], began: float) -> int:
    if args.json:
        print(json.dumps({"environment": meta, "h2": [asdict(r) for r in results]}, indent=2))
        return 0
    print(f"\nh2load: {H2_CONNECTIONS} connections x {H2_STREAMS} streams, h2c (prior knowledge)")
    print(h2_table(results, args.markdown))
    print(f"took {round(time.monotonic() - began, 1)} s")
    return 0


def rss_kib(pid: int) -> int:
    """VmRSS of process `pid`, in KiB (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


def hold_idle_connections(port: int, path: str, count: int) -> list[socket.socket]:
    """Open `count` keep-alive connections, one GET answered on each, and return them open and idle."""
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    selector = selectors.DefaultSelector()
    sockets: list[socket.socket] = []
    answered = 0
    try:
        open_probes(port, count, selector, sockets)
        deadline = time.monotonic() + 120
        while answered < count and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=1):
                sock, probe = key.fileobj, key.data
                assert isinstance(sock, socket.socket)
                if not probe.sent:
                    sock.sendall(request)
                    probe.sent = True
                    selector.modify(sock, selectors.EVENT_READ, probe)
                    continue
                chunk = sock.recv(1 << 16)
                if not chunk:
                    raise RuntimeError(f"idle connections to port {port}: one closed before its answer")
                probe.data += chunk
                if probe.data.endswith(TINY):  # the whole answer: the connection is idle now
                    answered += 1
                    selector.unregister(sock)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    finally:
        selector.close()
    if answered < count:
        for sock in sockets:
            sock.close()
        raise RuntimeError(f"idle connections to port {port}: {count - answered} of {count} got no answer")
    return sockets


def measure_idle(fleet: Fleet, count: int) -> dict[str, Any]:
    """A fresh actorproxy's RSS before and after `count` idle keep-alive client connections, and its actors.

    The proxy serves a warm-up first (its pool and codecs in use, as in the load runs); the connections each
    carry one tiny request, then stay open, idle, within the keep-alive timeout. Each RSS reading follows a
    full garbage collection in the proxy (its statistics request), so it counts what is alive.
    """
    target = fleet.start_actorproxy("actorproxy-idle", [])
    try:
        run_wrk(f"http://127.0.0.1:{target.port}{SCENARIOS[0].path}", 1.0, fleet.lua)
        time.sleep(0.5)  # wrk's connections close; their actors end
        before = fleet.pool_stats(target) or {}  # after a full garbage collection (actorproxy_proxy.py)
        rss_before = rss_kib(target.process.pid)
        sockets = hold_idle_connections(target.port, SCENARIOS[0].path, count)
        try:
            time.sleep(0.5)  # let the proxy settle into the idle wait on every connection
            after = fleet.pool_stats(target) or {}
            rss_after = rss_kib(target.process.pid)
        finally:
            for sock in sockets:
                sock.close()
    finally:
        fleet.stop(target)
    return {
        "connections": count,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "kib_per_connection": (rss_after - rss_before) / count,
        "actors_before": before.get("actors"),
        "actors_after": after.get("actors"),
    }


def measure_kernel(quick: bool) -> dict[str, Any]:
    """`benchmarks/kernel.py`'s ask round trip with the default timeout against a memory-channel ping-pong."""
    spec = importlib.util.spec_from_file_location("kernel_benchmark", HERE / "kernel.py")
    assert spec is not None and spec.loader is not None
    kernel = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = kernel  # its dataclasses look their module up there
    spec.loader.exec_module(kernel)
    row = kernel.measure_ask(kernel.QUICK if quick else kernel.FULL)[0]
    return {
        "ask_us": row.actorproxy,
        "reference_us": row.reference,
        "reference": row.reference_name,
        "ratio": row.ratio,
    }


# -- reporting ----------------------------------------------------------------------------------------------


def ratios(results: list[Result]) -> list[dict[str, Any]]:
    """actorproxy's req/s and p99 over each reference's, per scenario; and the caches' (`CACHE_PAIRS`)."""
    rows = []
    by_key = {(r.scenario, r.target): r for r in results}
    pairs = [("actorproxy", reference) for reference in REFERENCES] + list(CACHE_PAIRS)
    pairs.append(("actorproxy2", "actorproxy"))
    for scenario in dict.fromkeys(r.scenario for r in results):
        for target, reference in pairs:
            ours = by_key.get((scenario, target))
            theirs = by_key.get((scenario, reference))
            if ours is None or theirs is None or not theirs.rps or not theirs.p99_ms:
                continue
            rows.append(
                {
                    "scenario": scenario,
                    "target": target,
                    "reference": reference,
                    "rps_ratio": ours.rps / theirs.rps,
                    "p99_ratio": ours.p99_ms / theirs.p99_ms,
                    # Their CPU per request over ours: above 1.00x ours is cheaper (as for req/s).
                    "cpu_ratio": (
                        theirs.cpu_us_per_request / ours.cpu_us_per_request
                        if ours.cpu_us_per_request
                        else 0.0
                    ),
                }
            )
    return rows


def verdicts(
    results: list[Result], idle: dict[str, Any] | None, kernel: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """Each target of this run: what it asks, what was measured, and whether it is met."""
    checks: list[dict[str, Any]] = []

    def check(target: str, measured: str, met: bool) -> None:
        checks.append({"target": target, "measured": measured, "met": met})

    found = {(row["scenario"], row["target"], row["reference"]): row for row in ratios(results)}
    tiny = found.get((SCENARIOS[0].name, "actorproxy", "aiohttp"))
    if tiny is not None:
        check(
            f"tiny: req/s >= {TARGET_TINY_RPS_RATIO:g}x aiohttp + uvloop, p99 <= {TARGET_TINY_P99_RATIO:g}x",
            f"req/s {tiny['rps_ratio']:.2f}x, p99 {tiny['p99_ratio']:.2f}x",
            tiny["rps_ratio"] >= TARGET_TINY_RPS_RATIO and tiny["p99_ratio"] <= TARGET_TINY_P99_RATIO,
        )
    medium = found.get((SCENARIOS[1].name, "actorproxy", "aiohttp"))
    if medium is not None:
        check(
            f"64 KiB: req/s >= {TARGET_64K_RPS_RATIO:g}x aiohttp + uvloop",
            f"req/s {medium['rps_ratio']:.2f}x",
            medium["rps_ratio"] >= TARGET_64K_RPS_RATIO,
        )
    by_key = {(r.scenario, r.target): r for r in results}
    ours, nginx = by_key.get((SCENARIOS[2].name, "actorproxy")), by_key.get((SCENARIOS[2].name, "nginx"))
    if ours is not None and nginx is not None and nginx.mib_per_s:
        ratio = ours.mib_per_s / nginx.mib_per_s
        check(
            f"1 MiB: MiB/s >= {TARGET_1M_MIB_RATIO:g}x the nginx proxy's",
            f"MiB/s {ratio:.2f}x",
            ratio >= TARGET_1M_MIB_RATIO,
        )
    if idle is not None:
        check(
            f"{idle['connections']:,} idle keep-alive connections: <= {TARGET_IDLE_KIB:g} KiB of RSS each",
            f"{idle['kib_per_connection']:.1f} KiB each",
            idle["kib_per_connection"] <= TARGET_IDLE_KIB,
        )
    if kernel is not None:
        check(
            f"the kernel's ask with a timeout: <= {TARGET_ASK_RATIO:g}x a memory-channel ping-pong",
            f"{kernel['ratio']:.2f}x",
            kernel["ratio"] <= TARGET_ASK_RATIO,
        )
    return checks


def cache_verdicts(results: list[Result]) -> list[dict[str, Any]]:
    """The cache's targets: hits >= 2x our uncached proxying's req/s, misses >= 0.9x (at most 10% slower)."""
    modes = {s.name: s.mode for s in SCENARIOS}
    found = []
    for row in ratios(results):
        if (row["target"], row["reference"]) != ("actorproxy-cache", "actorproxy"):
            continue
        wanted = TARGET_HIT_RATIO if modes.get(row["scenario"]) == "hit" else TARGET_MISS_RATIO
        met = row["rps_ratio"] >= wanted
        found.append({**row, "target": f">= {wanted:g}x req/s of actorproxy uncached", "met": met})
    return found


def render(header: tuple[str, ...], lines: list[tuple[str, ...]], markdown: bool) -> str:
    if markdown:
        rows = [header, tuple("---" for _ in header), *lines]
        return "\n".join("| " + " | ".join(cells) + " |" for cells in rows)
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def row(cells: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([row(header), "-+-".join("-" * w for w in widths), *(row(line) for line in lines)])


def upstream_cell(result: Result) -> str:
    if result.target == "direct":
        return "-"
    most = max(result.established, default=-1)
    half = "?" if result.origin_new_second_half is None else result.origin_new_second_half
    text = f"{result.origin_new_connections} new ({half} in 2nd half), {most} open"
    if result.pool is not None:
        checkouts = result.pool["hits"] + result.pool["misses"]
        text += f"; pool misses {result.pool['misses']:,}/{checkouts:,}"
    return text


def errors_cell(result: Result) -> str:
    if not result.error_count:
        return "0"
    return f"{result.error_count} (" + ", ".join(f"{k} {v}" for k, v in result.errors.items() if v) + ")"


def results_table(results: list[Result], markdown: bool = False) -> str:
    header = ("scenario", "target", "req/s", "p50", "p99", "MiB/s", "errors", "CPU", "CPU/req", "other CPU")
    header += ("new conn", f"{CONNECTIONS} new conns", "upstream conns")
    lines = [
        (
            r.scenario,
            LABELS[r.target],
            f"{r.rps:,.0f}",
            f"{r.p50_ms:.2f} ms",
            f"{r.p99_ms:.2f} ms",
            f"{r.mib_per_s:,.1f}",
            errors_cell(r),
            f"{r.target_cpu_percent:.0f}%",
            f"{r.cpu_us_per_request:,.0f} µs",
            f"{r.other_cpu_percent:.0f}%",
            "-" if r.first_response_ms is None else f"{r.first_response_ms:.1f} ms",
            f"{statistics.median(r.burst_ms):.0f} / {r.burst_ms[-1]:.0f} ms" if r.burst_ms else "-",
            upstream_cell(r),
        )
        for r in results
    ]
    return render(header, lines, markdown)


def ratio_table(results: list[Result], markdown: bool = False) -> str:
    header = ("scenario", "target", "vs", "req/s ratio", "p99 ratio", "CPU/req ratio")
    lines = [
        (
            row["scenario"],
            LABELS[row["target"]],
            LABELS[row["reference"]],
            f"{row['rps_ratio']:.2f}x",
            f"{row['p99_ratio']:.2f}x",
            f"{row['cpu_ratio']:.2f}x",
        )
        for row in ratios(results)
    ]
    return render(header, lines, markdown)


def extra_table(idle: dict[str, Any] | None, kernel: dict[str, Any] | None, markdown: bool = False) -> str:
    """The rows beside the load runs: memory per idle connection, and the kernel's ask."""
    header = ("measurement", "actorproxy", "reference", "ratio")
    lines = []
    if idle is not None:
        lines.append(
            (
                f"RSS per idle keep-alive client connection ({idle['connections']:,} held open)",
                f"{idle['kib_per_connection']:.1f} KiB ({idle['rss_before_kib'] / 1024:,.1f} -> "
                f"{idle['rss_after_kib'] / 1024:,.1f} MiB; actors {idle['actors_before']} -> "
                f"{idle['actors_after']})",
                f"target <= {TARGET_IDLE_KIB:g} KiB",
                "-",
            )
        )
    if kernel is not None:
        lines.append(
            (
                "kernel: ask round trip, default timeout (benchmarks/kernel.py)",
                f"{kernel['ask_us']:.1f} µs",
                f"{kernel['reference_us']:.1f} µs ({kernel['reference']})",
                f"{kernel['ratio']:.2f}x",
            )
        )
    return render(header, lines, markdown) if lines else ""


LEGEND = f"""\
p50, p99: wrk's, which corrects for coordinated omission: a response that took k times the mean interval
between responses on a connection also counts k-1 synthetic samples in between. req/s ratio: the target's
req/s over the reference's (above 1.00x the target is faster); p99 ratio: the target's p99 over the
reference's (below 1.00x the target is better). CPU: the target's processes during the run (100% = one core;
for "direct", the origin); CPU/req: that CPU time per request, and its ratio the reference's over the
target's (above 1.00x the target spends less per request; steadier than req/s when other CPU is high).
other CPU: the machine's busy time that is not the target, the origin, wrk or this script: other processes,
i.e. noise. new conn: one new connection opened at {PROBE_AT:.0%} of the run, from
connect to the end of its first response. {CONNECTIONS} new conns: {CONNECTIONS} connections opened at once
at {BURST_AT:.0%} of the run, one request each: median / slowest time to the end of the response. upstream
conns: connections the origin accepted during the measured run (the first ones replace those the warm-up's
abrupt end broke, and the probes need their own) and in its second half, after the probes (any is a
connection the proxy failed to reuse); the most ESTABLISHED from the proxy to the origin at once (ss); for
actorproxy, its pool's checkout misses / checkouts."""


def environment(seconds: float, quick: bool) -> dict[str, Any]:
    def version(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, check=False)
        except OSError:
            return "missing"
        text = (done.stdout + done.stderr).strip().splitlines()
        return text[0] if text else "?"

    git = version(["git", "-C", str(HERE), "describe", "--always", "--dirty"])
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "trio": trio.__version__,
        "h11": h11.__version__,
        "actorproxy": actorproxy.__version__,
        "git": git,
        "aiohttp": _installed_version("aiohttp"),
        "uvloop": _installed_version("uvloop"),
        "nginx": version(["nginx", "-v"]).removeprefix("nginx version: "),
        "wrk": version(["wrk", "-v"]).split(" [")[0],
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "pinning": (
            f"proxy under test on core {PROXY_CORE}; wrk and the origin on core {LOAD_CORE} (taskset)"
            if pinning()
            else "none (taskset missing or a single core)"
        ),
        "connections": CONNECTIONS,
        "seconds_per_run": seconds,
        "mode": "quick" if quick else "full",
    }


# -- profiling ----------------------------------------------------------------------------------------------

# Where a sample's innermost frame is, by file: the first match wins.
MODULES = (
    ("h11: HTTP/1.1 parsing and serializing", ("/h11/",)),
    ("trio run loop: scheduling, epoll, cancel scopes", ("/trio/_core/",)),
    ("trio sockets and streams, with the send/recv syscalls", ("/trio/",)),
    ("our codecs and strict checks (actorproxy/http/h1/)", ("/actorproxy/http/h1/",)),
    (
        "our socket streams, with the send/recv syscalls (proxy/_sockets.py)",
        ("/actorproxy/proxy/_sockets.py",),
    ),
    ("our headers (actorproxy/http/_header.py)", ("/actorproxy/http/_header.py",)),
    (
        "our forwarding rules: hop-by-hop, Via (actorproxy/http/_forward.py)",
        ("/actorproxy/http/_forward.py",),
    ),
    (
        "our engine and exchange: phases, retries, relay (proxy/_engine.py, _exchange.py)",
        ("/actorproxy/proxy/_engine.py", "/actorproxy/proxy/_exchange.py"),
    ),
    ("our connection actor (proxy/_connection.py)", ("/actorproxy/proxy/_connection.py",)),
    ("our pool (proxy/_pool.py)", ("/actorproxy/proxy/_pool.py",)),
    (
        "our session, peer, phases, errors",
        (
            "/actorproxy/proxy/_session.py",
            "/actorproxy/proxy/_peer.py",
            "/actorproxy/proxy/_phases.py",
            "/actorproxy/http/",
        ),
    ),
    ("our actor kernel, supervisors, listener, the rest", ("/actorproxy/", "/supervisors/", "/actors/")),
    ("other (stdlib: contextlib, enum, ...; attrs)", ("",)),
)
# C calls made per request, counted exactly by cProfile.
C_CALLS = {
    "task steps (trio resuming a task: Context.run)": "<method 'run' of '_contextvars.Context' objects>",
    "socket send() syscalls": "<method 'send' of '_socket.socket' objects>",
    "socket recv() syscalls": "<method 'recv' of '_socket.socket' objects>",
    "epoll_wait() calls": "<method 'poll' of 'select.epoll' objects>",
    "poll() calls (pool liveness check)": "<method 'poll' of 'select.poll' objects>",
    "str.lower": "<method 'lower' of 'str' objects>",
    "isinstance": "<built-in method builtins.isinstance>",
}
PY_CALLS = {
    "h11 Connection.next_event": ("/h11/_connection.py", "next_event"),
    "h11 Connection.send_with_data_passthrough": ("/h11/_connection.py", "send_with_data_passthrough"),
    "h11 validate (regex match per header field)": ("/h11/_util.py", "validate"),
    "h11 normalize_and_validate (headers)": ("/h11/_headers.py", "normalize_and_validate"),
    "our Headers.remove": ("/actorproxy/http/_header.py", "remove"),
    "our Headers._names": ("/actorproxy/http/_header.py", "_names"),
}


def module_of(path: str) -> str:
    for name, needles in MODULES:
        if any(needle in path for needle in needles):
            return name
    return MODULES[-1][0]


def short(function: str, path: str) -> str:
    parts = Path(path).parts
    for anchor in ("site-packages", "main"):
        if anchor in parts:
            parts = parts[parts.index(anchor) + 1 :]
            break
    return f"{function} ({'/'.join(parts[-3:])})"


def analyse_speedscope(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive time shares from py-spy's speedscope output (samples are root first)."""
    data = json.loads(path.read_text())
    frames = [(frame["name"], frame.get("file") or "") for frame in data["shared"]["frames"]]
    names = [short(name, file) for name, file in frames]
    self_time: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    by_module: collections.Counter[str] = collections.Counter()
    total = epoll = 0.0
    for profile in data["profiles"]:
        for stack, weight in zip(profile["samples"], profile["weights"], strict=True):
            if not stack:
                continue
            total += weight
            leaf_name, leaf_file = frames[stack[-1]]
            if leaf_name.endswith("get_events") and "_io_epoll" in leaf_file:
                epoll += weight
            self_time[names[stack[-1]]] += weight
            by_module[module_of(leaf_file)] += weight
            for name in {names[index] for index in stack}:
                inclusive[name] += weight
    share = 100 / total if total else 0.0
    return {
        "samples": sum(len(profile["samples"]) for profile in data["profiles"]),
        "epoll_percent": epoll * share,
        "modules": [(name, weight * share) for name, weight in by_module.most_common()],
        "self": [(name, weight * share) for name, weight in self_time.most_common(top)],
        "inclusive": [(name, weight * share) for name, weight in inclusive.most_common(top + 10)],
    }


def analyse_cprofile(path: Path, requests: int) -> dict[str, Any]:
    """Calls per proxied request, from a cProfile dump of a run that proxied `requests` requests."""
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = pstats.Stats(str(path)).stats  # type: ignore[attr-defined]
    per = max(requests, 1)
    calls: dict[str, float] = {}
    for label, c_name in C_CALLS.items():
        calls[label] = (
            sum(v[1] for (file, _, func), v in entries.items() if file == "~" and func == c_name) / per
        )
    for label, (suffix, func_name) in PY_CALLS.items():
        calls[label] = (
            sum(v[1] for (file, _, func), v in entries.items() if file.endswith(suffix) and func == func_name)
            / per
        )
    python_calls = sum(v[1] for (file, _, _), v in entries.items() if file != "~")
    all_calls = sum(v[1] for v in entries.values())
    return {
        "requests": requests,
        "calls_per_request": all_calls / per,
        "python_calls_per_request": python_calls / per,
        "calls": calls,
    }


def profile(fleet: Fleet, scenario: Scenario, seconds: float, out: Path, quiet: bool) -> dict[str, Any]:
    """py-spy on the running actorproxy under the scenario's load; then a second one under cProfile."""
    out.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {"scenario": scenario.name}
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    target = fleet.targets["actorproxy"]
    url = f"http://127.0.0.1:{target.port}{scenario.path}"
    if Path(py_spy).exists():
        progress(
            quiet, f"profile: py-spy on actorproxy ({target.process.pid}), {scenario.name}, {seconds:g} s"
        )
        run_wrk(url, 1.0, fleet.lua)
        speedscope = out / f"actorproxy-{scenario.key}.speedscope.json"
        command = [py_spy, "record", "--pid", str(target.process.pid), "--duration", f"{seconds + 1:.0f}"]
        command += ["--rate", str(PYSPY_RATE), "--idle", "--format", "speedscope", "-o", str(speedscope)]
        spy = subprocess.Popen(pinned(LOAD_CORE, command), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        time.sleep(0.5)
        data = run_wrk(url, seconds, fleet.lua)
        _, err = spy.communicate(timeout=120)
        if spy.returncode:
            progress(quiet, f"py-spy failed: {err.decode(errors='replace').strip()}")
        report["pyspy_rps"] = data["requests"] / (data["duration_us"] / 1e6)
        if speedscope.exists():
            report["pyspy"] = analyse_speedscope(speedscope)
            report["pyspy_file"] = str(speedscope)
    else:
        progress(quiet, "profile: no py-spy (pip install py-spy): no sampling profile")

    progress(quiet, "profile: a second actorproxy under cProfile, for calls per request")
    dump = out / f"actorproxy-{scenario.key}.cprofile"
    profiled = fleet.start_actorproxy("actorproxy-cprofile", ["--cprofile", str(dump)])
    _, requests_before = fleet.origin_status()
    run_wrk(f"http://127.0.0.1:{profiled.port}{scenario.path}", min(seconds, 5.0), fleet.lua)
    time.sleep(0.5)  # let the requests in flight when wrk stopped reach the origin
    _, requests_after = fleet.origin_status()
    fleet.stop(profiled)
    if dump.exists():
        report["cprofile"] = analyse_cprofile(dump, requests_after - requests_before - 1)
        report["cprofile_file"] = str(dump)
    return report


def profile_report(report: dict[str, Any]) -> str:
    lines: list[str] = []
    spy = report.get("pyspy")
    if spy:
        lines += [
            f"py-spy on actorproxy, {report['scenario']}: {spy['samples']:,} samples at {PYSPY_RATE} Hz, "
            f"{report['pyspy_rps']:,.0f} req/s while sampled; in epoll_wait: {spy['epoll_percent']:.1f}%",
            "",
            "self time by module (the innermost Python frame; C calls count for the frame calling them):",
        ]
        lines += [f"  {share:5.1f}%  {name}" for name, share in spy["modules"]]
        lines += ["", "top functions, self time:"]
        lines += [f"  {share:5.1f}%  {name}" for name, share in spy["self"]]
        lines += ["", "top functions, inclusive time:"]
        lines += [f"  {share:5.1f}%  {name}" for name, share in spy["inclusive"]]
    calls = report.get("cprofile")
    if calls:
        lines += [
            "",
            f"cProfile ({calls['requests']:,} requests proxied): {calls['calls_per_request']:,.0f} calls per "
            f"request, {calls['python_calls_per_request']:,.0f} of them to Python functions; per request:",
        ]
        lines += [f"  {count:7.1f}  {label}" for label, count in calls["calls"].items()]
    return "\n".join(lines)


# -- main ---------------------------------------------------------------------------------------------------


def progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"  {text}", file=sys.stderr, flush=True)


def check_tools(h2: bool = False) -> list[str]:
    missing = [
        t
        for t in ("wrk", "nginx", "taskset", "ss", *(("h2load",) if h2 else ()))
        if not shutil.which(t) and not Path(f"/usr/sbin/{t}").exists()
    ]
    if not h2 and (importlib.util.find_spec("aiohttp") is None or importlib.util.find_spec("uvloop") is None):
        missing.append("aiohttp and uvloop (pip install -e '.[bench]')")
    return missing


def _installed_version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def server_logs(fleet: Fleet) -> dict[str, list[tuple[int, str]]]:
    """What each server wrote to stdout/stderr, as (count, line) with numbers masked, most frequent first.

    Indented lines (traceback bodies) and nginx's notices about starting and stopping are left out.
    """
    logs = {}
    for target in fleet.processes:
        try:
            text = target.log.read_text(errors="replace")
        except OSError:
            continue
        lines = collections.Counter(
            re.sub(r"\d+", "N", re.sub(r"request id \S+", "request id ID", line.strip()))
            for line in text.splitlines()
            if line.strip() and not line[0].isspace() and "[notice]" not in line
        )
        if lines:
            logs[target.name] = [(count, line) for line, count in lines.most_common(8)]
    return logs


@dataclass
class Run:
    """Everything one run of the script measured."""

    results: list[Result]
    profile: dict[str, Any]
    logs: dict[str, list[tuple[int, str]]]
    idle: dict[str, Any] | None = None
    kernel: dict[str, Any] | None = None


def run_all(args: argparse.Namespace, seconds: float, meta: dict[str, Any]) -> Run:
    warmup = 1.0
    kernel = None
    if args.kernel:
        progress(args.json, "kernel: ask round trip against a memory-channel ping-pong")
        kernel = measure_kernel(args.quick)
    targets = tuple(t for t in TARGETS if t in args.targets.split(","))
    if args.profile and "actorproxy" not in targets:
        targets += ("actorproxy",)
    scenarios = [s for s in SCENARIOS if s.key in args.scenarios.split(",")]
    results: list[Result] = []
    report: dict[str, Any] = {}
    options = tuple(args.actorproxy_option)
    with fleet_running(targets, args.keep, options, args.cache_backend, args.redis_limit) as fleet:
        for scenario in scenarios:
            for name in targets:
                if name in CACHING and not scenario.cached:
                    continue  # a cache in front of the plain scenarios measures nothing they are for
                progress(args.json, f"{scenario.name}: {LABELS[name]}, {seconds:g} s")
                results.append(measure(fleet, scenario, name, seconds, 0.0 if name == "direct" else warmup))
        idle = None
        if args.idle_connections and "actorproxy" in targets:
            progress(
                args.json, f"memory: {args.idle_connections:,} idle keep-alive connections to actorproxy"
            )
            idle = measure_idle(fleet, args.idle_connections)
        if args.profile:
            chosen = next(s for s in SCENARIOS if s.key == args.profile_scenario)
            report = profile(fleet, chosen, seconds, Path(args.profile), args.json)
        logs = server_logs(fleet)
        meta["actorproxy_codec"] = fleet.codec
    return Run(results, report, logs, idle, kernel)


def print_tables(run: Run, meta: dict[str, Any], markdown: bool) -> None:
    results = run.results
    print()
    print(results_table(results, markdown))
    print()
    print(ratio_table(results, markdown))
    extra = extra_table(run.idle, run.kernel, markdown)
    if extra:
        print()
        print(extra)
    print()
    print(LEGEND)
    checks = verdicts(results, run.idle, run.kernel)
    if checks:
        print("\ntargets:")
        for check in checks:
            print(f"  {check['target']}: {check['measured']}: {'met' if check['met'] else 'MISSED'}")
    for row in cache_verdicts(results):
        print(
            f"cache target, {row['scenario']} ({row['target']}): req/s {row['rps_ratio']:.2f}x"
            f" (CPU per request {row['cpu_ratio']:.2f}x): {'met' if row['met'] else 'MISSED'}"
        )
    print(
        f"actorproxy's codec: {meta.get('actorproxy_codec', '?')}; load average before "
        f"{meta['loadavg_before'][0]:.2f}, after {meta['loadavg_after'][0]:.2f}; took {meta['seconds']} s."
    )
    if run.logs:
        print(
            "\nserver output (stdout/stderr; numbers masked as N, request ids as ID; count, line; most"
            " frequent first):"
        )
        for name, lines in run.logs.items():
            print(f"  {name}:\n" + "\n".join(f"    {count:6,}  {line[:150]}" for count, line in lines))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"{QUICK_SECONDS:g} s per run, not {FULL_SECONDS:g}"
    )
    parser.add_argument("--duration", type=int, help="seconds per measured run (overrides --quick)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of tables")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    parser.add_argument(
        "--targets",
        help=f"a comma-separated subset of {','.join(TARGETS)} (default: {DEFAULT_TARGETS}; with --cache:"
        f" {CACHE_TARGETS})",
    )
    parser.add_argument(
        "--scenarios",
        help="a comma-separated subset of " + ",".join(s.key for s in SCENARIOS) + " (default: tiny,64k,1m;"
        f" with --cache: {CACHE_SCENARIOS})",
    )
    parser.add_argument(
        "--cache", action="store_true", help="the HTTP cache's scenarios and targets (see the module help)"
    )
    parser.add_argument(
        "--h2",
        action="store_true",
        help="HTTP/2 clients (h2load) to actorproxy and nginx (see the module help)",
    )
    parser.add_argument(
        "--cache-backend",
        choices=("memory", "sqlite"),
        default="memory",
        help="the store of actorproxy's cache",
    )
    parser.add_argument(
        "--profile", metavar="DIR", help="then profile actorproxy under load, into DIR (py-spy, cProfile)"
    )
    parser.add_argument(
        "--profile-scenario", default="tiny", choices=[s.key for s in FILES], help="the load to profile"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (configs, logs)")
    parser.add_argument("--codec", help="actorproxy's HTTP/1.1 codec (sets ACTORPROXY_CODEC; default: auto)")
    parser.add_argument(
        "--actorproxy-option",
        action="append",
        default=[],
        metavar="ARG",
        help="an argument for benchmarks/actorproxy_proxy.py (repeatable): --actorproxy-option=--metrics=A",
    )
    parser.add_argument(
        "--redis-limit",
        action="store_true",
        help=f"actorproxy with a rate limit ({REDIS_LIMIT_RATE}, never refusing) counted in a redis-server"
        " the run starts",
    )
    parser.add_argument("--json-out", metavar="FILE", help="also write the JSON results to FILE")
    parser.add_argument(
        "--idle-connections",
        type=int,
        default=IDLE_CONNECTIONS,
        help=f"idle keep-alive connections for the memory row (default {IDLE_CONNECTIONS:,}; 0 skips it)",
    )
    parser.add_argument(
        "--no-kernel", dest="kernel", action="store_false", help="skip the kernel's ask row (kernel.py)"
    )
    parser.add_argument(
        "--only-idle",
        action="store_true",
        help="only the memory row of idle connections: no load runs, no kernel row",
    )
    args = parser.parse_args(argv)
    args.targets = args.targets or (
        ",".join(H2_TARGETS) if args.h2 else CACHE_TARGETS if args.cache else DEFAULT_TARGETS
    )
    args.scenarios = args.scenarios or (
        "tiny,64k" if args.h2 else CACHE_SCENARIOS if args.cache else "tiny,64k,1m"
    )
    if args.only_idle:
        args.targets, args.scenarios, args.kernel = "actorproxy", "", False

    missing = check_tools(args.h2)
    if missing:
        print(f"missing: {', '.join(missing)}", file=sys.stderr)
        return 2
    seconds = args.duration or (QUICK_SECONDS if args.quick else FULL_SECONDS)
    meta = environment(seconds, args.quick)
    if not args.json:
        print(
            f"actorproxy proxy benchmark ({meta['mode']}, {meta['date']}, git {meta['git']}): {meta['wrk']}, "
            f"keep-alive, {CONNECTIONS} connections, {seconds:g} s per run; Python {meta['python']}, "
            f"nginx {meta['nginx']}, aiohttp {meta['aiohttp']}, uvloop {meta['uvloop']}, "
            f"{meta['cpus']} CPUs\npinning: {meta['pinning']}",
            flush=True,
        )
    began = time.monotonic()
    if args.codec:
        os.environ["ACTORPROXY_CODEC"] = args.codec  # inherited by the actorproxy process
    if args.h2:
        return print_h2(args, run_h2(args, seconds), meta, began)
    run = run_all(args, seconds, meta)
    meta["seconds"] = round(time.monotonic() - began, 1)
    meta["loadavg_after"] = os.getloadavg()
    out = {
        "environment": meta,
        "results": [{**asdict(r), "error_count": r.error_count} for r in run.results],
        "ratios": ratios(run.results),
        "idle_connections": run.idle,
        "kernel_ask": run.kernel,
        "targets": verdicts(run.results, run.idle, run.kernel),
        "cache_targets": cache_verdicts(run.results),
        "profile": run.profile,
        "server_logs": run.logs,
    }
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(out, indent=2) + "\n")
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print_tables(run, meta, args.markdown)
    if run.profile:
        print()
        print(profile_report(run.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
