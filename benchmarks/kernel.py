"""Micro-benchmarks of the actor kernel, each next to a bare-trio reference measured in the same run.

    python benchmarks/kernel.py            # full run (about 40 s on 2 cores)
    python benchmarks/kernel.py --quick    # short run (under 10 s), noisier
    python benchmarks/kernel.py --json     # the same measurements as JSON on stdout

What is measured (every timing is the best of several repetitions, each in a fresh `trio.run`):

1. tell throughput: `await ref.tell(x)` in a loop to a counting actor, closed by one ask so every message
   has been handled; and `tell_nowait` in batches of 512 (below the mailbox capacity), each closed by an ask.
   References: a `trio.open_memory_channel(1024)` sender/receiver pair moving the same number of items with
   `await send()`, and with `send_nowait()` in the same batches, each batch closed by a sync item.
2. ask round trip, with the default timeout and with `timeout=None`. Reference: the naive memory-channel
   ping-pong, two unbuffered channels (request, then response). Their difference, the cost of the timeout,
   is shown beside one bare `trio.CancelScope(deadline=...)` entered and left.
3. spawn cost: `await system.spawn(Idle)` 10,000 times in a row. References: `nursery.start_soon` of 10,000
   tasks waiting on an Event (until all are blocked), and `await nursery.start(...)` of the same tasks (the
   handshake `spawn` is built on), also both with the cyclic garbage collector disabled. The graceful
   shutdown of those actors is reported beside the join of the tasks.
4. memory per idle actor: VmRSS growth for 10,000 idle actors after `gc.collect()`, in a fresh subprocess
   (`--memory-only actors`) so the other measurements do not pollute it. Reference: 10,000 bare trio tasks
   waiting on an Event (`--memory-only tasks`).

This is a script, not a test: nothing here asserts speed.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import trio
import trio.testing

import actorproxy
from actors import DEFAULT_ASK_TIMEOUT, DEFAULT_MAILBOX_CAPACITY, Actor, open_actor_system

TELL_BATCH = 512
ASK_TARGET_US = 20.0
MEMORY_TARGET_MB = 40.0
MEMORY_COUNT = 10_000

assert TELL_BATCH < DEFAULT_MAILBOX_CAPACITY


@dataclass(frozen=True)
class Plan:
    """How much work one run does."""

    tells: int
    asks: int
    spawns: int
    repeats: int


FULL = Plan(tells=100_000, asks=20_000, spawns=10_000, repeats=5)
QUICK = Plan(tells=20_000, asks=5_000, spawns=2_000, repeats=2)


# -- actors --------------------------------------------------------------------------------------------------

SYNC: Any = object()


class Counter(Actor):
    """Counts what it is told; answers SYNC with the count."""

    def __init__(self) -> None:
        self.count = 0

    async def receive(self, message: Any) -> Any:
        if message is SYNC:
            return self.count
        self.count += 1
        return None


class Echo(Actor):
    async def receive(self, message: Any) -> Any:
        return message


class Idle(Actor):
    """Never sent anything: parks in its mailbox until the system shuts down."""


# -- one sample each: an async function run in a fresh trio.run, returning seconds ---------------------------


async def tell_await(n: int) -> float:
    async with open_actor_system() as system:
        ref = await system.spawn(Counter)
        start = time.perf_counter()
        for i in range(n):
            await ref.tell(i)
        count = await ref.ask(SYNC)
        elapsed = time.perf_counter() - start
        assert count == n, count
    return elapsed


async def tell_nowait(n: int) -> float:
    async with open_actor_system() as system:
        ref = await system.spawn(Counter)
        start = time.perf_counter()
        for _ in range(n // TELL_BATCH):
            for i in range(TELL_BATCH):
                ref.tell_nowait(i)
            await ref.ask(SYNC)
        elapsed = time.perf_counter() - start
        assert await ref.ask(SYNC) == n // TELL_BATCH * TELL_BATCH
    return elapsed


async def _consume(receive: trio.MemoryReceiveChannel[Any], done: trio.Event, counted: list[int]) -> None:
    count = 0
    async for item in receive:
        if type(item) is trio.Event:
            item.set()
        else:
            count += 1
    counted.append(count)
    done.set()


async def channel_send(n: int) -> float:
    send, receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_CAPACITY)
    done, counted = trio.Event(), list[int]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_consume, receive, done, counted)
        start = time.perf_counter()
        async with send:
            for i in range(n):
                await send.send(i)
        await done.wait()
        elapsed = time.perf_counter() - start
    assert counted == [n], counted
    return elapsed


async def channel_send_nowait(n: int) -> float:
    send, receive = trio.open_memory_channel[Any](DEFAULT_MAILBOX_CAPACITY)
    done, counted = trio.Event(), list[int]()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_consume, receive, done, counted)
        start = time.perf_counter()
        async with send:
            for _ in range(n // TELL_BATCH):
                for i in range(TELL_BATCH):
                    send.send_nowait(i)
                synced = trio.Event()
                send.send_nowait(synced)
                await synced.wait()
        await done.wait()
        elapsed = time.perf_counter() - start
    assert counted == [n // TELL_BATCH * TELL_BATCH], counted
    return elapsed


async def ask_default(n: int) -> float:
    async with open_actor_system() as system:
        ref = await system.spawn(Echo)
        start = time.perf_counter()
        for i in range(n):
            await ref.ask(i)
        return time.perf_counter() - start


async def ask_no_timeout(n: int) -> float:
    async with open_actor_system() as system:
        ref = await system.spawn(Echo)
        start = time.perf_counter()
        for i in range(n):
            await ref.ask(i, timeout=None)
        return time.perf_counter() - start


async def _pong(requests: trio.MemoryReceiveChannel[Any], responses: trio.MemorySendChannel[Any]) -> None:
    async for item in requests:
        await responses.send(item)


async def channel_ping_pong(n: int) -> float:
    request_send, request_receive = trio.open_memory_channel[Any](0)
    response_send, response_receive = trio.open_memory_channel[Any](0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_pong, request_receive, response_send)
        start = time.perf_counter()
        for i in range(n):
            await request_send.send(i)
            await response_receive.receive()
        elapsed = time.perf_counter() - start
        nursery.cancel_scope.cancel()
    return elapsed


async def cancel_scopes(n: int) -> float:
    """Enter and leave the cancel scope `ask` opens for its timeout, with nothing inside it."""
    start = time.perf_counter()
    for _ in range(n):
        with trio.CancelScope(deadline=trio.current_time() + DEFAULT_ASK_TIMEOUT):  # noqa: ASYNC100 (the point)
            pass
    return time.perf_counter() - start


@dataclass
class Lifecycle:
    """Seconds to start `n` actors or tasks, then to end them all."""

    start: float
    stop: float


async def spawn_actors(n: int) -> Lifecycle:
    async with open_actor_system() as system:
        start = time.perf_counter()
        for _ in range(n):
            await system.spawn(Idle)
        started = time.perf_counter()
    return Lifecycle(started - start, time.perf_counter() - started)


async def _idle_task(event: trio.Event) -> None:
    await event.wait()


async def _idle_task_started(event: trio.Event, *, task_status: trio.TaskStatus[None]) -> None:
    task_status.started()
    await event.wait()


async def start_soon_tasks(n: int) -> Lifecycle:
    event = trio.Event()
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        for _ in range(n):
            nursery.start_soon(_idle_task, event)
        await trio.testing.wait_all_tasks_blocked()
        started = time.perf_counter()
        event.set()
    return Lifecycle(started - start, time.perf_counter() - started)


async def start_tasks(n: int) -> Lifecycle:
    event = trio.Event()
    async with trio.open_nursery() as nursery:
        start = time.perf_counter()
        for _ in range(n):
            await nursery.start(_idle_task_started, event)
        started = time.perf_counter()
        event.set()
    return Lifecycle(started - start, time.perf_counter() - started)


# -- memory, in a subprocess ---------------------------------------------------------------------------------


def rss_kb() -> int:
    """This process's resident set size in KB (Linux)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


async def _memory_actors(n: int) -> dict[str, int]:
    with trio.CancelScope() as scope:
        async with open_actor_system() as system:
            await (await system.spawn(Idle)).stop()  # warm every code path once
            gc.collect()
            baseline = rss_kb()
            for _ in range(n):
                await system.spawn(Idle)
            gc.collect()
            after = rss_kb()
            scope.cancel()  # leave by cancellation: a fast shutdown, nothing left to measure
            await trio.lowlevel.checkpoint()
    return {"baseline_kb": baseline, "after_kb": after, "count": n}


async def _memory_tasks(n: int) -> dict[str, int]:
    event = trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_idle_task, event)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        baseline = rss_kb()
        for _ in range(n):
            nursery.start_soon(_idle_task, event)
        await trio.testing.wait_all_tasks_blocked()
        gc.collect()
        after = rss_kb()
        event.set()
    return {"baseline_kb": baseline, "after_kb": after, "count": n}


def memory_only(kind: str, n: int) -> dict[str, int]:
    return trio.run(_memory_actors if kind == "actors" else _memory_tasks, n)


def memory_in_subprocess(kind: str, n: int) -> dict[str, int]:
    command = [sys.executable, os.path.abspath(__file__), "--memory-only", kind, "--count", str(n)]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    result: dict[str, int] = json.loads(done.stdout)
    return result


# -- running and reporting -----------------------------------------------------------------------------------


@dataclass
class Row:
    """One line of the table: the kernel's figure beside its reference."""

    metric: str
    unit: str
    actorproxy: float
    reference: float
    reference_name: str
    higher_is_better: bool = False
    target: float | None = None
    samples: dict[str, list[float]] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        """The kernel's cost over the reference's: below 1 the kernel is cheaper."""
        if self.higher_is_better:
            return self.reference / self.actorproxy
        return self.actorproxy / self.reference

    @property
    def target_met(self) -> bool | None:
        if self.target is None:
            return None
        return self.actorproxy >= self.target if self.higher_is_better else self.actorproxy <= self.target


Sampler = Callable[[int], Awaitable[Any]]


@dataclass(frozen=True)
class Run:
    """One kind of sample: `fn(n)` in a fresh `trio.run`, with or without the cyclic garbage collector."""

    fn: Sampler
    n: int
    gc_enabled: bool = True

    def __call__(self) -> Any:
        gc.collect()
        if not self.gc_enabled:
            gc.disable()
        try:
            return trio.run(self.fn, self.n)
        finally:
            gc.enable()


def alternate(repeats: int, runs: dict[str, Run]) -> dict[str, list[Any]]:
    """Take `repeats` samples of each run, round-robin, so drift in the machine hits them all alike."""
    samples: dict[str, list[Any]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            samples[name].append(run())
    return samples


def progress(quiet: bool, text: str) -> None:
    if not quiet:
        print(f"  {text}", file=sys.stderr, flush=True)


def per_us(seconds: list[float], n: int) -> list[float]:
    return [s / n * 1e6 for s in seconds]


def per_second(seconds: list[float], n: int) -> list[float]:
    return [n / s for s in seconds]


def timed_row(
    metric: str, unit: str, ours: list[float], theirs: list[float], reference_name: str, **options: Any
) -> Row:
    """A row from timing samples: the best of each (the highest rate, the lowest time)."""
    best = max if options.get("higher_is_better") else min
    samples = {"actorproxy": ours, "reference": theirs}
    return Row(metric, unit, best(ours), best(theirs), reference_name, samples=samples, **options)


def measure_tell(plan: Plan) -> list[Row]:
    n, batched = plan.tells, plan.tells // TELL_BATCH * TELL_BATCH
    runs = alternate(
        plan.repeats,
        {
            "tell": Run(tell_await, n),
            "send": Run(channel_send, n),
            "tell_nowait": Run(tell_nowait, n),
            "send_nowait": Run(channel_send_nowait, n),
        },
    )
    return [
        timed_row(
            "tell throughput, await tell()",
            "msg/s",
            per_second(runs["tell"], n),
            per_second(runs["send"], n),
            "memory channel(1024) await send()",
            higher_is_better=True,
        ),
        timed_row(
            f"tell throughput, tell_nowait() x{TELL_BATCH} + ask",
            "msg/s",
            per_second(runs["tell_nowait"], batched),
            per_second(runs["send_nowait"], batched),
            f"memory channel(1024) send_nowait() x{TELL_BATCH} + sync",
            higher_is_better=True,
        ),
    ]


def measure_ask(plan: Plan) -> list[Row]:
    n = plan.asks
    runs = alternate(
        plan.repeats,
        {
            "default": Run(ask_default, n),
            "ping_pong": Run(channel_ping_pong, n),
            "none": Run(ask_no_timeout, n),
            "scope": Run(cancel_scopes, n),
        },
    )
    ping_pong = per_us(runs["ping_pong"], n)
    default, none = per_us(runs["default"], n), per_us(runs["none"], n)
    scopes = per_us(runs["scope"], n)
    reference = "memory channel ping-pong (2 unbuffered)"
    return [
        timed_row(
            "ask round trip, default timeout", "us", default, ping_pong, reference, target=ASK_TARGET_US
        ),
        timed_row("ask round trip, timeout=None", "us", none, ping_pong, reference, target=ASK_TARGET_US),
        # Where the timeout goes: the best default ask less the best ask without one, beside the cost of
        # the cancel scope that implements the timeout, alone.
        Row(
            "ask timeout cost (default - None)",
            "us",
            min(default) - min(none),
            min(scopes),
            "CancelScope(deadline=...) enter + exit",
            samples={"reference": scopes},
        ),
    ]


def measure_spawn(plan: Plan) -> list[Row]:
    n = plan.spawns
    runs = alternate(
        plan.repeats,
        {
            "spawn": Run(spawn_actors, n),
            "start_soon": Run(start_soon_tasks, n),
            "start": Run(start_tasks, n),
            "spawn_no_gc": Run(spawn_actors, n, gc_enabled=False),
            "start_no_gc": Run(start_tasks, n, gc_enabled=False),
        },
    )

    def starting(name: str) -> list[float]:
        return per_us([run.start for run in runs[name]], n)

    def stopping(name: str) -> list[float]:
        return per_us([run.stop for run in runs[name]], n)

    return [
        timed_row(
            "spawn, per actor",
            "us",
            starting("spawn"),
            starting("start_soon"),
            f"nursery.start_soon, until all {n:,} blocked",
        ),
        timed_row(
            "spawn, per actor", "us", starting("spawn"), starting("start"), "await nursery.start + started()"
        ),
        timed_row(
            "spawn, per actor, gc disabled",
            "us",
            starting("spawn_no_gc"),
            starting("start_no_gc"),
            "await nursery.start + started(), gc disabled",
        ),
        timed_row(
            "graceful shutdown, per actor",
            "us",
            stopping("spawn"),
            stopping("start_soon"),
            "Event.set() + nursery join",
        ),
    ]


def measure_memory() -> list[Row]:
    actors = memory_in_subprocess("actors", MEMORY_COUNT)
    tasks = memory_in_subprocess("tasks", MEMORY_COUNT)
    actors_kb = actors["after_kb"] - actors["baseline_kb"]
    tasks_kb = tasks["after_kb"] - tasks["baseline_kb"]
    return [
        Row(
            f"RSS growth, {MEMORY_COUNT:,} idle actors",
            "MB",
            actors_kb / 1024,
            tasks_kb / 1024,
            f"{MEMORY_COUNT:,} trio tasks on an Event",
            target=MEMORY_TARGET_MB,
        ),
        Row(
            "RSS per idle actor",
            "KB",
            actors_kb / MEMORY_COUNT,
            tasks_kb / MEMORY_COUNT,
            "per trio task on an Event",
        ),
        Row(
            "process RSS before spawning",
            "MB",
            actors["baseline_kb"] / 1024,
            tasks["baseline_kb"] / 1024,
            "same script, bare trio",
        ),
    ]


def measure(plan: Plan, quiet: bool) -> list[Row]:
    # Warm up imports, code objects and the allocator before anything is timed.
    warm_ups: list[Sampler] = [tell_await, tell_nowait, channel_send, channel_send_nowait, ask_default]
    warm_ups += [
        ask_no_timeout,
        channel_ping_pong,
        cancel_scopes,
        spawn_actors,
        start_soon_tasks,
        start_tasks,
    ]
    for fn in warm_ups:
        Run(fn, 2 * TELL_BATCH)()
    progress(quiet, f"tell: {plan.tells:,} messages x {plan.repeats}")
    rows = measure_tell(plan)
    progress(quiet, f"ask: {plan.asks:,} round trips x {plan.repeats}")
    rows += measure_ask(plan)
    progress(quiet, f"spawn: {plan.spawns:,} actors x {plan.repeats}, with and without gc")
    rows += measure_spawn(plan)
    progress(quiet, f"memory: {MEMORY_COUNT:,} idle actors / tasks, each in a fresh subprocess")
    rows += measure_memory()
    return rows


def format_value(value: float, unit: str) -> str:
    if unit == "msg/s":
        return f"{value:,.0f} msg/s"
    if unit == "us":
        return f"{value:.1f} µs"
    return f"{value:.2f} {unit}" if unit == "KB" else f"{value:.1f} {unit}"


def format_target(row: Row) -> str:
    if row.target is None:
        return ""
    relation = ">=" if row.higher_is_better else "<="
    verdict = "met" if row.target_met else "MISSED"
    return f"{relation} {format_value(row.target, row.unit)} ({verdict})"


def table(rows: list[Row]) -> str:
    header = ("metric", "actorproxy", "reference", "ratio", "target")
    lines = [
        (
            row.metric,
            format_value(row.actorproxy, row.unit),
            f"{format_value(row.reference, row.unit)}  {row.reference_name}",
            f"{row.ratio:.2f}x",
            format_target(row),
        )
        for row in rows
    ]
    widths = [max(len(line[i]) for line in [header, *lines]) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        return " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()

    rule = "-+-".join("-" * width for width in widths)
    return "\n".join([render(header), rule, *(render(line) for line in lines)])


def environment(plan: Plan, quick: bool) -> dict[str, Any]:
    return {
        "date": datetime.date.today().isoformat(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "trio": trio.__version__,
        "actorproxy": actorproxy.__version__,
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "mode": "quick" if quick else "full",
        "plan": asdict(plan),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages and repetitions (under 10 s)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument(
        "--memory-only",
        choices=("actors", "tasks"),
        help="internal: measure RSS growth of idle actors or tasks, print JSON and exit",
    )
    parser.add_argument("--count", type=int, default=MEMORY_COUNT, help="how many, with --memory-only")
    args = parser.parse_args(argv)

    if args.memory_only:
        print(json.dumps(memory_only(args.memory_only, args.count)))
        return 0

    plan = QUICK if args.quick else FULL
    meta = environment(plan, args.quick)
    if not args.json:
        print(
            f"actorproxy kernel benchmarks ({meta['mode']}, {meta['date']}): Python {meta['python']}, "
            f"trio {meta['trio']}, {meta['cpus']} CPUs, {meta['platform']}",
            flush=True,
        )
    began = time.perf_counter()
    rows = measure(plan, quiet=args.json)
    meta["seconds"] = round(time.perf_counter() - began, 1)

    if args.json:
        results = [
            {
                **asdict(row),
                "ratio": row.ratio,
                "target_met": row.target_met,
                "medians": {name: statistics.median(values) for name, values in row.samples.items()},
            }
            for row in rows
        ]
        print(json.dumps({"environment": meta, "results": results}, indent=2))
    else:
        print()
        print(table(rows))
        print()
        print("ratio = actorproxy's cost / the reference's (time or memory per item; for throughput, the")
        print(
            f"inverse), so below 1.00x actorproxy is cheaper. Timings: best of {plan.repeats}. "
            f"Took {meta['seconds']} s."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
