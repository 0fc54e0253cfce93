"""Micro-benchmark of backend selection: µs per `select(selector, key, max_iterations)` call.

    python benchmarks/selection.py            # 10 and 1,000 backends, every algorithm
    python benchmarks/selection.py --quick    # fewer calls, noisier

What is measured, first: one `select` with `max_iterations=8` (the first candidate is accepted, so this is the
cost of the first pick plus the iterator and `UniqueIterator` set-up) with a fresh 16-byte key per call, best
of 5 repetitions. Selectors are built once, outside the timing; the build time is printed too. Least
connections and two choices read an in-flight map with a random count per backend.

Then what a request pays on top through a `LoadBalancer` (round robin, outlier detection on), against the
bare `select` of the same run: `LoadBalancer.select` (snapshot read, readiness check, the note the engine
claims), and the engine's bookkeeping of one attempt (claim: in-flight +1; finish: in-flight -1 and a passive
health report).

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable

import trio

from actorproxy.lb import (
    Backend,
    Backends,
    BackendSelection,
    Consistent,
    FNVHash,
    LeastConnections,
    LoadBalancer,
    Outcome,
    OutlierDetection,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    Weighted,
    select,
)
from actorproxy.proxy import _feedback

SIZES = (10, 1_000)
REPEATS = 5
MAX_ITERATIONS = 8


def make_backends(count: int) -> list[Backend]:
    return [
        Backend((f"10.{i // 65_536}.{i // 256 % 256}.{i % 256}", 8080), weight=1 + i % 3)
        for i in range(count)
    ]


def builders(inflight: dict[Backend, int]) -> dict[str, Callable[[list[Backend]], BackendSelection]]:
    return {
        "round robin": lambda b: Weighted(b, RoundRobin()),
        "random": lambda b: Weighted(b, Random()),
        "fnv hash": lambda b: Weighted(b, FNVHash()),
        "consistent (ketama)": Consistent,
        "least connections": lambda b: LeastConnections(b, inflight),
        "power of two choices": lambda b: PowerOfTwoChoices(b, inflight),
    }


def time_select(selector: BackendSelection, calls: int) -> float:
    rng = random.Random(0)
    keys = [rng.randbytes(16) for _ in range(calls)]
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for key in keys:
            select(selector, key, MAX_ITERATIONS)
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def best_of(calls: int, body: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        for _ in range(calls):
            body()
        best = min(best, time.perf_counter() - start)
    return best / calls * 1e6


def balancer_row(size: int, calls: int) -> tuple[float, float, float]:
    backends = make_backends(size)
    lb = LoadBalancer(Backends(backends))
    lb.set_outlier_detection(OutlierDetection())
    bare = Weighted(backends, RoundRobin())

    def attempt() -> None:
        backend = lb.select(b"", MAX_ITERATIONS)
        assert backend is not None
        # What the engine does around one attempt: claim the pick for the peer's address, report its end.
        _feedback.claim(backend.addr).finish(Outcome.SUCCESS)

    reference = best_of(calls, lambda: select(bare, b"", MAX_ITERATIONS))
    picked = best_of(calls, lambda: lb.select(b"", MAX_ITERATIONS))
    return reference, picked, best_of(calls, attempt)


async def balancer_rows(calls: int) -> None:
    print()
    print("| through a LoadBalancer (round robin) | backends | µs per call | bare select (µs) |")
    print("| --- | --- | --- | --- |")
    for size in SIZES:
        reference, picked, attempt = balancer_row(size, calls)
        print(f"| `lb.select` | {size:,} | {picked:.2f} | {reference:.2f} |")
        print(f"| `lb.select` + claim + finish | {size:,} | {attempt:.2f} | {reference:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer calls per repetition")
    args = parser.parse_args()
    print(f"# Python {platform.python_version()} on {platform.machine()} {sys.platform}")
    print("| algorithm | backends | select (µs) | build (ms) |")
    print("| --- | --- | --- | --- |")
    for size in SIZES:
        backends = make_backends(size)
        rng = random.Random(1)
        inflight = {backend: rng.randrange(50) for backend in backends}
        calls = 2_000 if args.quick or size > 100 else 20_000
        for name, build in builders(inflight).items():
            start = time.perf_counter()
            selector = build(backends)
            build_ms = (time.perf_counter() - start) * 1e3
            print(f"| {name} | {size:,} | {time_select(selector, calls):.2f} | {build_ms:.1f} |")
    trio.run(balancer_rows, 2_000 if args.quick else 20_000)


if __name__ == "__main__":
    main()
