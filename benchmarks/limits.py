"""Micro-benchmark of rate limiting: µs per check, for each place a limit can be counted.

    python benchmarks/limits.py            # every measurement, a Redis round trip if redis-server is here
    python benchmarks/limits.py --quick    # fewer calls, noisier

What is measured (best of 5 repetitions, a fresh key every 64 calls, so both new and known keys are seen):

- `gcra()`: the algorithm alone, on one float of state;
- `GcraTable` in memory: hashing the key (BLAKE2b) and reading and writing its bucket;
- `GcraTable` in a file: the same, plus the two `fcntl.lockf` calls that lock the bucket: what a check costs
  with `threads: N` (and with one worker too: the table is always the file);
- `Rate.observe`: Pingora's windowed count-min sketch (4 rows);
- `Inflight.incr` + `release`: Pingora's in-flight guard, and `InflightTable` with 4 workers (an estimate
  sums every worker's counters);
- `KeyFunction`: building a `client_ip` + header key;
- `RedisRateLimiter.check`: one Lua script round trip to a local redis-server (loopback), started here on a
  free port in a temporary directory, under `trio.run`: one caller after another (µs per check, wall
  time), then 50 callers at once, as a busy proxy makes them (µs of this process's CPU per check: their
  checks travel in batches).

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import trio

from actorproxy.config import RedisConf
from actorproxy.http import RequestHeader
from actorproxy.limits import (
    GcraTable,
    Inflight,
    InflightTable,
    KeyFunction,
    Quota,
    Rate,
    RedisRateLimiter,
    gcra,
)
from supervisors import ServiceReadyNotifier, ShutdownWatch

REPEATS = 5
CONCURRENT_CALLERS = 50  # as wrk's connections in benchmarks/proxy.py
QUOTA = Quota.parse("1000/s", burst=100)


def best_us(call: Callable[[int], object], calls: int) -> float:
    """Best of `REPEATS` runs of `calls` calls, in µs per call."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for n in range(calls):
            call(n)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def keys(count: int) -> list[str]:
    return [f"route\x1f192.0.2.{n % 256}\x1f{n // 64}" for n in range(count)]


def local_measurements(calls: int, directory: Path) -> dict[str, float]:
    names = keys(calls)
    memory = GcraTable.in_memory(65536)
    shared = GcraTable.open(str(directory / "limits"), 65536)
    rate = Rate(1.0)
    inflight = Inflight()
    table = InflightTable(4)
    key = KeyFunction(["client_ip", "header:x-api-key"], "edge.routes[0]", trusted_proxies=["10.0.0.0/8"])
    request = RequestHeader.build("GET", "/", [("Host", "x"), ("X-Api-Key", "k1")])
    now = time.monotonic

    def inflight_cycle(n: int) -> None:
        inflight.incr(names[n]).release()

    def table_cycle(n: int) -> None:
        table.incr(names[n]).release()

    results = {
        "gcra() alone": best_us(lambda n: gcra(QUOTA, None, 1000.0 + n * 1e-3), calls),
        "GcraTable.check, in memory": best_us(lambda n: memory.check(names[n], QUOTA, now()), calls),
        "GcraTable.check, shared file + lockf": best_us(
            lambda n: shared.check(names[n], QUOTA, now()), calls
        ),
        "Rate.observe": best_us(lambda n: rate.observe(names[n], 1), calls),
        "Inflight.incr + release": best_us(inflight_cycle, calls),
        "InflightTable (4 workers) incr + release": best_us(table_cycle, calls),
        "KeyFunction (client_ip + header)": best_us(lambda n: key(("192.0.2.1", 1234), request), calls),
    }
    shared.close()
    return results


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def redis_round_trip(port: int, calls: int) -> tuple[float, float]:
    limiter = RedisRateLimiter(RedisConf(url=f"redis://127.0.0.1:{port}/0", timeout=1.0))
    stop = trio.Event()
    ready = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(
            limiter.start_with_ready_notifier, ShutdownWatch(stop), ServiceReadyNotifier(ready.set)
        )
        await ready.wait()
        names = keys(calls)
        best = float("inf")
        for _ in range(REPEATS):
            start = time.perf_counter()
            for n in range(calls):
                if await limiter.check(names[n], QUOTA) is None:
                    raise RuntimeError("redis did not answer")
            best = min(best, time.perf_counter() - start)
        concurrent = float("inf")
        for _ in range(REPEATS):
            start = time.process_time()
            async with trio.open_nursery() as callers:
                for first in range(CONCURRENT_CALLERS):
                    callers.start_soon(_redis_caller, limiter, names[first::CONCURRENT_CALLERS])
            concurrent = min(concurrent, time.process_time() - start)
        stop.set()
    return best / calls * 1e6, concurrent / calls * 1e6


async def _redis_caller(limiter: RedisRateLimiter, names: list[str]) -> None:
    for name in names:
        if await limiter.check(name, QUOTA) is None:
            raise RuntimeError("redis did not answer")


def redis_measurement(calls: int, directory: Path) -> tuple[float, float] | None:
    binary = shutil.which("redis-server")
    if binary is None:
        return None
    port = free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=directory,
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return trio.run(redis_round_trip, port, max(100, calls // 50))
    finally:
        server.terminate()
        server.wait(10)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls, noisier")
    args = parser.parse_args(argv)
    calls = 5_000 if args.quick else 50_000
    print(f"Python {platform.python_version()} on {platform.machine()}, {calls} calls, best of {REPEATS}")
    with tempfile.TemporaryDirectory() as directory:
        results = local_measurements(calls, Path(directory))
        redis = redis_measurement(calls, Path(directory))
    width = max(map(len, results)) + 2
    for name, micros in results.items():
        print(f"{name:<{width}}{micros:8.2f} µs")
    label = "RedisRateLimiter.check (loopback)"
    if redis is None:
        print(f"{label:<{width}}    (no redis-server)")
        return
    print(f"{label:<{width}}{redis[0]:8.2f} µs")
    label = f"  with {CONCURRENT_CALLERS} callers at once, CPU"
    print(f"{label:<{width}}{redis[1]:8.2f} µs")


if __name__ == "__main__":
    sys.exit(main())
