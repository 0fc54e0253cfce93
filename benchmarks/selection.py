"""Micro-benchmark of backend selection: µs per `select(selector, key, max_iterations)` call.

    python benchmarks/selection.py            # 10 and 1,000 backends, every algorithm
    python benchmarks/selection.py --quick    # fewer calls, noisier

What is measured: one `select` with `max_iterations=8` (the first candidate is accepted, so this is the
cost of the first pick plus the iterator and `UniqueIterator` set-up) with a fresh 16-byte key per call, best
of 5 repetitions. Selectors are built once, outside the timing; the build time is printed too. Least
connections and two choices read an in-flight map with a random count per backend.

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import platform
import random
import sys
import time
from collections.abc import Callable

from actors.lb import (
    Backend,
    BackendSelection,
    Consistent,
    FNVHash,
    LeastConnections,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    Weighted,
    select,
)

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


if __name__ == "__main__":
    main()
