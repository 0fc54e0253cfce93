"""Soak: keep-alive GETs through the load balancer while one of its three upstreams is killed and restarted.

    python benchmarks/soak.py                     # 10 minutes, an upstream SIGKILLed every 30 s, down 5 s
    python benchmarks/soak.py --quick             # 60 s, an upstream killed every 10 s: a smoke run
    python benchmarks/soak.py --duration 300 --kill-interval 20 --down-time 3 --clients 16
    python benchmarks/soak.py --json-out soak.json --keep    # also the raw data; keep the logs
    python benchmarks/soak.py --quick --pad 4000000 --clients 8   # 4 MB bodies: some kills cut one short

Every process is real and on 127.0.0.1:
1. three demo upstreams (`actorproxy.demo.serve_demo_upstream`), each its own process. Every `--kill-interval`
   seconds one of them, in turn, is killed with SIGKILL (its sockets die with it, as in a crash), and a new
   process is started on the same port `--down-time` seconds later;
2. the proxy, `python -m actorproxy.cli -c soak.yaml` (what `actorproxy -c` runs) with a YAML file written to
   a temporary directory: the declared proxy, round robin over the three, a TCP health check every second,
   passive health (outlier detection), connect failures retried on another backend and idempotent requests
   retried on a fresh connection (the declared proxy sets `retry_idempotent_on_fresh_connection`);
3. a load generator (this script with `_load`, its own process): `--clients` concurrent clients, each on one
   persistent connection, sending GETs back to back through h11. It counts every response that is not 2xx
   by status and every transport failure by exception type and by the phase it happened in (connecting,
   sending, waiting for the response, reading it), on a new or a reused connection.

Every `--sample-interval` seconds the script reads the proxy's resident memory (VmRSS in /proc/PID/status),
its open file descriptors and the CPU time it used. At the end it prints a Markdown summary: requests, req/s,
errors by kind and when they happened relative to the kills, and RSS after the warm-up, at its highest, at
the end, and its growth. It stops every process it started, also on Ctrl-C (its children run in their own
sessions, so the terminal's SIGINT reaches only this script, which stops them by pid) and on SIGTERM.

This is a script, not a test: nothing here asserts speed or memory. Linux only (/proc).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import datetime
import importlib.metadata
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import h11
import trio

from actorproxy.demo import serve_demo_upstream
from actorproxy.http import select_codec

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent

# The soak: 10 minutes, one upstream killed every 30 s.
FULL = {"duration": 600.0, "kill_interval": 30.0, "down_time": 5.0, "warmup": 10.0}
# A smoke run: a kill every 10 s for a minute.
QUICK = {"duration": 60.0, "kill_interval": 10.0, "down_time": 3.0, "warmup": 5.0}
DEFAULT_CLIENTS = 16
DEFAULT_SAMPLE_INTERVAL = 5.0
UPSTREAM_NAMES = ("up0", "up1", "up2")
# The memory target: RSS growth under 10% over the run.
TARGET_RSS_GROWTH_PERCENT = 10.0
# A request that takes this long is counted as a failure ("timeout"); a healthy one takes milliseconds.
REQUEST_TIMEOUT = 30.0
# Seconds a started process (upstream or proxy) gets to listen before the run is abandoned.
START_TIMEOUT = 20.0
# Seconds between a client's attempts to connect after a failed connect (the proxy itself is never killed,
# so this only keeps a client from spinning if it were).
RECONNECT_DELAY = 0.05
# Latencies are kept as a histogram with buckets 5% wide: percentiles to within 5%, in constant memory.
LATENCY_BUCKET = math.log(1.05)
# The demo upstreams answer any path; `?pad=N` adds N bytes to the body.
PATH = "/soak"

PROXY_YAML = """\
# The soak's proxy: round robin over three upstreams, active and passive health, retries (written by soak.py).
version: 1
threads: 1
grace_period_seconds: 2
graceful_shutdown_timeout_seconds: 2
services:
  - name: soak
    listeners:
      - address: 127.0.0.1:{port}
    routes:
      - path_prefix: /
        upstream: soak
        connect_timeout: 1.0
        read_timeout: 10.0
        write_timeout: 10.0
upstreams:
  - name: soak
    discovery:
      static: [{backends}]
    algorithm: round_robin
    health_check:
      tcp:
        connect_timeout: 0.5
      frequency: 1.0
    # Two failed requests in a row take a backend out for about as long as a killed upstream stays down;
    # one backend of the three at most.
    passive_health:
      consecutive_failures: 2
      base_ejection_time: 5.0
      max_ejection_percent: 34
"""


# -- the plan and its results (plain data: the summary is built from these alone) --------------------------


@dataclass(frozen=True)
class Kill:
    """One upstream killed and restarted; times are seconds since the load started."""

    upstream: str
    killed_at: float
    #: When the new process was started, and when its port accepted a connection (None: it never did).
    restart_at: float
    listening_at: float | None


@dataclass(frozen=True)
class Failure:
    """One request a client saw fail: when (seconds since the load started) and how."""

    at: float
    kind: str


@dataclass
class LoadReport:
    """What the load generator saw."""

    clients: int
    seconds: float
    requests: int
    ok: int
    statuses: dict[int, int]
    failures: list[Failure]
    #: Requests answered 2xx in each whole second since the load started.
    ok_per_second: dict[int, int]
    #: Latency histogram: bucket -> count, bucket b holding latencies around 1.05**b seconds.
    latency: dict[int, int]
    #: Responses per upstream, from the demo upstreams' `x-upstream` header.
    upstreams: dict[str, int]
    connections: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadReport:
        return cls(
            clients=data["clients"],
            seconds=data["seconds"],
            requests=data["requests"],
            ok=data["ok"],
            statuses={int(k): v for k, v in data["statuses"].items()},
            failures=[Failure(at, kind) for at, kind in data["failures"]],
            ok_per_second={int(k): v for k, v in data["ok_per_second"].items()},
            latency={int(k): v for k, v in data["latency"].items()},
            upstreams=dict(data["upstreams"]),
            connections=data["connections"],
        )


@dataclass(frozen=True)
class Sample:
    """The proxy at `at` seconds since the load started: resident memory (KiB), open file descriptors and
    CPU seconds used so far."""

    at: float
    rss_kib: int
    fds: int
    cpu_seconds: float = 0.0


@dataclass
class SoakResult:
    settings: dict[str, Any]
    environment: dict[str, Any]
    load: LoadReport
    kills: list[Kill]
    samples: list[Sample]
    #: The proxy's log lines at WARNING and above, numbers masked as N: (count, line), most frequent first.
    proxy_log: list[tuple[int, str]] = field(default_factory=list)


# -- options -------------------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The soak's options; `--quick` changes the defaults of the ones not given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--quick", action="store_true", help="a 60 s smoke run, an upstream killed every 10 s"
    )
    parser.add_argument("--duration", type=float, help=f"seconds of load (default {FULL['duration']:g})")
    parser.add_argument(
        "--kill-interval", type=float, help=f"seconds between kills (default {FULL['kill_interval']:g})"
    )
    parser.add_argument(
        "--down-time",
        type=float,
        help=f"seconds a killed upstream stays down (default {FULL['down_time']:g})",
    )
    parser.add_argument(
        "--warmup", type=float, help=f"seconds before the RSS baseline is taken (default {FULL['warmup']:g})"
    )
    parser.add_argument(
        "--sample-interval",
        type=float,
        default=DEFAULT_SAMPLE_INTERVAL,
        help=f"seconds between RSS samples (default {DEFAULT_SAMPLE_INTERVAL:g})",
    )
    parser.add_argument(
        "--clients",
        type=int,
        default=DEFAULT_CLIENTS,
        help=f"concurrent keep-alive clients (default {DEFAULT_CLIENTS})",
    )
    parser.add_argument(
        "--pad",
        type=int,
        default=0,
        help="bytes of padding in each response body (default 0: bodies of about 80 bytes)",
    )
    parser.add_argument("--json-out", metavar="FILE", help="also write every measurement to FILE as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory (YAML, logs)")
    args = parser.parse_args(argv)
    defaults = QUICK if args.quick else FULL
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.duration <= 0 or args.kill_interval <= 0 or args.sample_interval <= 0 or args.clients < 1:
        parser.error("--duration, --kill-interval, --sample-interval and --clients must be positive")
    if not 0 < args.down_time < args.kill_interval:
        parser.error("--down-time must be positive and shorter than --kill-interval")
    if not 0 <= args.warmup < args.duration:
        parser.error("--warmup must be shorter than --duration")
    return args


def kill_schedule(
    duration: float, kill_interval: float, down_time: float, upstreams: int = len(UPSTREAM_NAMES)
) -> list[tuple[float, float, int]]:
    """(kill at, restart at, upstream index) for each kill: every `kill_interval` s, the upstreams in turn,
    each restart at least a second before the load ends."""
    plan = []
    number = 1
    while number * kill_interval + down_time <= duration - 1.0:
        at = number * kill_interval
        plan.append((at, at + down_time, (number - 1) % upstreams))
        number += 1
    return plan


# -- the summary ---------------------------------------------------------------------------------------------


def when(failure: Failure, kills: Sequence[Kill]) -> tuple[int | None, str, float]:
    """Where `failure` falls: (index of the last kill before it or None, "down" / "restarted" / "before any
    kill", seconds since that kill or restart)."""
    last = None
    for index, kill in enumerate(kills):
        if kill.killed_at <= failure.at:
            last = index
    if last is None:
        return None, "before any kill", failure.at
    kill = kills[last]
    back = kill.listening_at if kill.listening_at is not None else kill.restart_at
    if failure.at < back:
        return last, "down", failure.at - kill.killed_at
    return last, "restarted", failure.at - back


def latency_percentile(histogram: dict[int, int], fraction: float) -> float | None:
    """The latency (seconds) below which `fraction` of the requests fell, from the 5% histogram."""
    total = sum(histogram.values())
    if not total:
        return None
    wanted = fraction * total
    seen = 0
    for bucket in sorted(histogram):
        seen += histogram[bucket]
        if seen >= wanted:
            return math.exp(bucket * LATENCY_BUCKET)
    return math.exp(max(histogram) * LATENCY_BUCKET)


def rss_figures(samples: Sequence[Sample], warmup: float) -> dict[str, float] | None:
    """RSS at start (the first sample after the warm-up), max and end (KiB), growth from start to end (%)."""
    after = [s for s in samples if s.at >= warmup]
    if not after:
        return None
    start, end = after[0].rss_kib, after[-1].rss_kib
    return {
        "start": start,
        "max": max(s.rss_kib for s in after),
        "end": end,
        "growth_percent": 100.0 * (end - start) / start if start else 0.0,
        "max_growth_percent": 100.0 * (max(s.rss_kib for s in after) - start) / start if start else 0.0,
    }


def _mib(kib: float) -> str:
    return f"{kib / 1024:.1f} MiB"


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f} ms"


def _table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return lines


def summary_markdown(result: SoakResult) -> str:
    """The run as Markdown: load, errors by kind and by kill, memory over time, the proxy's log."""
    settings, kills = result.settings, result.kills
    lines = [
        f"soak: {settings['duration']:g} s of keep-alive GETs from {settings['clients']} clients through the "
        f"proxy to {len(UPSTREAM_NAMES)} upstreams; one SIGKILLed every {settings['kill_interval']:g} s "
        f"(in turn), restarted on the same port {settings['down_time']:g} s later ({len(kills)} kills)"
        + (f"; bodies padded by {settings['pad']:,} bytes" if settings.get("pad") else ""),
        "",
    ]
    for section in (_load_section, _errors_section, _kills_section, _memory_section, _log_section):
        part = section(result)
        if part:
            lines += [*part, ""]
    return "\n".join(lines).rstrip() + "\n"


def _load_section(result: SoakResult) -> list[str]:
    load, kills = result.load, result.kills
    # Whole seconds only: the last one is cut short by the end of the load.
    per_second = [load.ok_per_second.get(s, 0) for s in range(int(load.seconds))]
    down = {s for k in kills for s in range(int(k.killed_at), int(k.restart_at) + 1) if s < len(per_second)}
    rate = load.requests / load.seconds if load.seconds else 0.0
    header = ["requests", "req/s", "2xx", "errors", "p50", "p99", "max", "median 2xx/s"]
    header.append("lowest 2xx/s, an upstream down")
    row = [
        f"{load.requests:,}",
        f"{rate:,.0f}",
        f"{load.ok:,}",
        f"{len(load.failures):,}",
        _ms(latency_percentile(load.latency, 0.5)),
        _ms(latency_percentile(load.latency, 0.99)),
        _ms(latency_percentile(load.latency, 1.0)),
        f"{statistics.median(per_second):,.0f}" if per_second else "-",
        f"{min(per_second[s] for s in down):,}" if down else "-",
    ]
    lines = _table(header, [row])
    if load.upstreams:
        shares = ", ".join(f"{name} {count:,}" for name, count in sorted(load.upstreams.items()))
        lines += ["", f"Responses per upstream: {shares}; client connections opened: {load.connections:,}."]
    return lines


def _errors_section(result: SoakResult) -> list[str]:
    if not result.load.failures:
        return ["No client saw an error: every request was answered 2xx."]
    kinds: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for failure in result.load.failures:
        kinds[failure.kind][when(failure, result.kills)[1]] += 1
    rows = [
        [kind, sum(c.values()), c["down"], c["restarted"], c["before any kill"]]
        for kind, c in sorted(kinds.items(), key=lambda item: -sum(item[1].values()))
    ]
    header = [
        "kind (phase, client connection)",
        "count",
        "an upstream down",
        "after its restart",
        "before any kill",
    ]
    return ["Errors seen by the clients, by kind and by when they happened:", "", *_table(header, rows)]


def _kills_section(result: SoakResult) -> list[str]:
    kills = result.kills
    if not kills:
        return []
    by_kill: dict[int | None, list[tuple[str, float]]] = collections.defaultdict(list)
    for failure in result.load.failures:
        index, phase, offset = when(failure, kills)
        by_kill[index].append((phase, offset))

    def errors(offsets: list[float]) -> str:
        return f"{len(offsets)} (+{offsets[0]:.3f} .. +{offsets[-1]:.3f} s)" if offsets else "0"

    rows = []
    for index, kill in enumerate(kills):
        seen = by_kill.get(index, [])
        back = "never" if kill.listening_at is None else f"{kill.listening_at:.1f} s"
        rows.append(
            [
                index + 1,
                kill.upstream,
                f"{kill.killed_at:.1f} s",
                back,
                errors(sorted(offset for phase, offset in seen if phase == "down")),
                errors(sorted(offset for phase, offset in seen if phase == "restarted")),
            ]
        )
    header = [
        "kill",
        "upstream",
        "killed at",
        "listening again at",
        "errors while down",
        "errors after restart",
    ]
    return [
        "Each kill, and the errors after it (offsets from the kill, or from the restart):",
        "",
        *_table(header, rows),
    ]


def _memory_section(result: SoakResult) -> list[str]:
    settings = result.settings
    figures = rss_figures(result.samples, settings["warmup"])
    if figures is None:
        return []
    target = "met" if figures["growth_percent"] < TARGET_RSS_GROWTH_PERCENT else "MISSED"
    fds = [s.fds for s in result.samples if s.at >= settings["warmup"]]
    header = [
        "RSS start",
        "max",
        "end",
        "growth (end vs start)",
        "max vs start",
        "open fds start / max / end",
        "proxy CPU",
    ]
    first, last = result.samples[0], result.samples[-1]
    cpu = 100 * (last.cpu_seconds - first.cpu_seconds) / (last.at - first.at) if last.at > first.at else 0.0
    row = [
        _mib(figures["start"]),
        _mib(figures["max"]),
        _mib(figures["end"]),
        f"{figures['growth_percent']:+.1f}% (target < {TARGET_RSS_GROWTH_PERCENT:g}%: {target})",
        f"{figures['max_growth_percent']:+.1f}%",
        f"{fds[0]} / {max(fds)} / {fds[-1]}",
        f"{cpu:.0f}% of a core",
    ]
    return [
        f"The proxy's resident memory (VmRSS), sampled every {settings['sample_interval']:g} s; start is the "
        f"first sample after the {settings['warmup']:g} s warm-up:",
        "",
        *_table(header, [row]),
        "",
        "RSS over time: " + rss_timeline(result.samples, settings["duration"]),
    ]


def _log_section(result: SoakResult) -> list[str]:
    if not result.proxy_log:
        return []
    return [
        "The proxy's log, WARNING and above (numbers masked as N; count, line):",
        "",
        *(f"    {count:6,}  {line[:160]}" for count, line in result.proxy_log),
    ]


def rss_timeline(samples: Sequence[Sample], duration: float, points: int = 11) -> str:
    """About `points` samples spread evenly over the run, as "<t> s <MiB>" pairs."""
    if not samples:
        return "-"
    step = max(duration / (points - 1), 1e-9)
    chosen: list[Sample] = []
    for n in range(points):
        wanted = n * step
        best = min(samples, key=lambda s: abs(s.at - wanted))
        if best not in chosen:
            chosen.append(best)
    return ", ".join(f"{s.at:.0f} s {s.rss_kib / 1024:.1f}" for s in chosen) + " (MiB)"


# -- the processes -------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def wait_for_port(
    port: int, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args!r} exited with {process.returncode}:\n{read_tail(log)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.02)
    raise RuntimeError(f"nothing listens on port {port} after {timeout:g} s:\n{read_tail(log)}")


def proc_status(pid: int) -> tuple[int, int, float] | None:
    """(VmRSS in KiB, open file descriptors, CPU seconds so far) of `pid`; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        return None
    # utime and stime, fields 14 and 15 of proc(5), in clock ticks.
    cpu = (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return int(match.group(1)), fds, cpu


class Fleet:
    """The processes of one soak: upstreams, proxy, load generator; `stop_all` stops those still running."""

    def __init__(self, work: Path) -> None:
        self.work = work
        self.processes: list[subprocess.Popen[bytes]] = []
        self.upstream_ports = [free_port() for _ in UPSTREAM_NAMES]
        self.upstreams: list[subprocess.Popen[bytes] | None] = [None] * len(UPSTREAM_NAMES)
        self.proxy_port = free_port()
        self.proxy: subprocess.Popen[bytes] | None = None
        self.proxy_log = work / "proxy.log"

    def spawn(self, command: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            # Its own session: the terminal's Ctrl-C reaches this script only, which then stops it by pid.
            process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True
            )
        self.processes.append(process)
        return process

    def start_upstream(self, index: int) -> None:
        name = UPSTREAM_NAMES[index]
        command = [
            sys.executable,
            str(Path(__file__).resolve()),
            "_upstream",
            name,
            str(self.upstream_ports[index]),
        ]
        log = self.work / f"{name}.log"
        process = self.spawn(command, log)
        self.upstreams[index] = process
        wait_for_port(self.upstream_ports[index], process, log)

    def kill_upstream(self, index: int) -> None:
        process = self.upstreams[index]
        if process is None:
            return
        process.kill()  # SIGKILL: no cleanup, its sockets closed by the kernel, as in a crash
        process.wait()
        self.upstreams[index] = None

    def start_proxy(self) -> subprocess.Popen[bytes]:
        backends = ", ".join(f"127.0.0.1:{port}" for port in self.upstream_ports)
        conf = self.work / "soak.yaml"
        conf.write_text(PROXY_YAML.format(port=self.proxy_port, backends=backends))
        self.proxy = self.spawn([sys.executable, "-m", "actorproxy.cli", "-c", str(conf)], self.proxy_log)
        wait_for_port(self.proxy_port, self.proxy, self.proxy_log)
        return self.proxy

    def start_load(
        self, clients: int, target: str, t0: float, until: float, out: Path
    ) -> subprocess.Popen[bytes]:
        command = [sys.executable, str(Path(__file__).resolve()), "_load", "--port", str(self.proxy_port)]
        command += ["--target", target]
        command += ["--clients", str(clients), "--t0", repr(t0), "--until", repr(until), "--out", str(out)]
        return self.spawn(command, self.work / "load.log")

    def stop_proxy(self) -> None:
        if self.proxy is not None:
            self.stop(self.proxy, signal.SIGTERM)

    @staticmethod
    def stop(process: subprocess.Popen[bytes], how: signal.Signals) -> None:
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(how)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def stop_all(self) -> None:
        """Stop every process this soak started that still runs: the proxy drains (SIGTERM), the rest die."""
        for process in reversed(self.processes):
            self.stop(process, signal.SIGTERM if process is self.proxy else signal.SIGKILL)


def proxy_log_lines(path: Path, top: int = 12) -> list[tuple[int, str]]:
    """The proxy's WARNING-and-above lines, numbers masked, with their counts: most frequent first."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return []
    counted = collections.Counter(
        re.sub(r"\d+", "N", line.split(" ", 2)[-1].strip())
        for line in text.splitlines()
        if re.search(r" (WARNING|ERROR|CRITICAL) ", line)
    )
    return [(count, line) for line, count in counted.most_common(top)]


def environment() -> dict[str, Any]:
    def run(command: list[str]) -> str:
        try:
            done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return "?"
        return done.stdout.strip()

    model = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    try:
        codec = select_codec().name
    except ValueError:  # $ACTORPROXY_CODEC names a codec that is not installed
        codec = "?"
    dirty = bool(run(["git", "status", "--porcelain", "--untracked-files=no"]))
    return {
        "date": datetime.date.today().isoformat(),
        "git": run(["git", "rev-parse", "--short", "HEAD"]) + (" (with local changes)" if dirty else ""),
        "python": platform.python_version(),
        "trio": trio.__version__,
        "h11": importlib.metadata.version("h11"),
        "codec": codec,
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "cpu": model,
        "loadavg_before": os.getloadavg(),
    }


# -- the run -------------------------------------------------------------------------------------------------


def progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def fleet_running(keep: bool) -> Iterator[Fleet]:
    work = Path(tempfile.mkdtemp(prefix="actorproxy-soak-"))
    fleet = Fleet(work)
    try:
        yield fleet
    finally:
        fleet.stop_all()
        if keep:
            print(f"kept {work} (soak.yaml, logs)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)


class Conductor:
    """Kills and restarts the upstreams on schedule and samples the proxy until the load generator is done."""

    def __init__(
        self, fleet: Fleet, schedule: list[tuple[float, float, int]], t0: float, args: argparse.Namespace
    ) -> None:
        self.fleet = fleet
        self.t0 = t0
        self.duration: float = args.duration
        self.sample_interval: float = args.sample_interval
        self.actions = collections.deque(
            sorted([(at, "kill", i) for at, _, i in schedule] + [(at, "restart", i) for _, at, i in schedule])
        )
        self.killed: dict[int, float] = {}
        self.kills: list[Kill] = []
        self.samples: list[Sample] = []
        self.next_sample = 0.0

    def elapsed(self) -> float:
        return time.monotonic() - self.t0

    def sample(self, pid: int) -> None:
        status = proc_status(pid)
        if status is not None:
            self.samples.append(Sample(round(self.elapsed(), 2), *status))

    def act(self, what: str, index: int) -> None:
        name = UPSTREAM_NAMES[index]
        if what == "kill":
            self.fleet.kill_upstream(index)
            self.killed[index] = self.elapsed()
            progress(f"{self.killed[index]:6.1f} s: killed {name}")
            return
        restart_at = self.elapsed()
        listening_at: float | None = None
        try:
            self.fleet.start_upstream(index)
            listening_at = self.elapsed()
        except RuntimeError as exc:
            progress(f"{restart_at:6.1f} s: {name} did not come back: {exc}")
        self.kills.append(Kill(name, self.killed.pop(index), restart_at, listening_at))

    def run(self, proxy: subprocess.Popen[bytes], loader: subprocess.Popen[bytes]) -> None:
        """Until `loader` exits: sample `proxy` every interval, kill and restart upstreams when due.

        Raises:
            RuntimeError: the proxy or the load generator exited before its time.
        """
        while True:
            now = self.elapsed()
            if now >= self.next_sample and self.next_sample <= self.duration:
                self.sample(proxy.pid)
                self.next_sample += self.sample_interval
            while self.actions and self.actions[0][0] <= now:
                _, what, index = self.actions.popleft()
                self.act(what, index)
            if proxy.poll() is not None:
                log = read_tail(self.fleet.proxy_log)
                raise RuntimeError(f"the proxy exited with {proxy.returncode}:\n{log}")
            if loader.poll() is not None:
                if loader.returncode != 0:
                    log = read_tail(self.fleet.work / "load.log")
                    raise RuntimeError(f"the load generator exited with {loader.returncode}:\n{log}")
                break
            upcoming = [self.next_sample] + ([self.actions[0][0]] if self.actions else [])
            time.sleep(min(max(min(upcoming) - self.elapsed(), 0.0), 0.25))
        self.sample(proxy.pid)  # the end


def run_soak(args: argparse.Namespace) -> SoakResult:
    settings = {
        "duration": args.duration,
        "kill_interval": args.kill_interval,
        "down_time": args.down_time,
        "warmup": args.warmup,
        "sample_interval": args.sample_interval,
        "clients": args.clients,
        "pad": args.pad,
    }
    env = environment()
    schedule = kill_schedule(args.duration, args.kill_interval, args.down_time)
    with fleet_running(args.keep) as fleet:
        for index in range(len(UPSTREAM_NAMES)):
            fleet.start_upstream(index)
        proxy = fleet.start_proxy()
        progress(
            f"upstreams on ports {', '.join(map(str, fleet.upstream_ports))}; proxy {proxy.pid} on "
            f"{fleet.proxy_port}; {args.clients} clients for {args.duration:g} s, {len(schedule)} kills"
        )
        out = fleet.work / "load.json"
        t0 = time.monotonic()
        target = f"{PATH}?pad={args.pad}" if args.pad else PATH
        loader = fleet.start_load(args.clients, target, t0, t0 + args.duration, out)
        conductor = Conductor(fleet, schedule, t0, args)
        conductor.run(proxy, loader)
        load = LoadReport.from_json(json.loads(out.read_text()))
        fleet.stop_proxy()
        log = proxy_log_lines(fleet.proxy_log)
    env["loadavg_after"] = os.getloadavg()
    return SoakResult(settings, env, load, conductor.kills, conductor.samples, log)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["_upstream"]:
        return upstream_main(argv[1:])
    if argv[:1] == ["_load"]:
        return load_main(argv[1:])
    args = parse_args(argv)
    if not Path("/proc/self/status").exists():
        print("soak.py reads /proc: Linux only", file=sys.stderr)
        return 2

    def interrupted(signum: int, frame: object) -> None:
        raise KeyboardInterrupt  # so that the processes are stopped on the way out

    signal.signal(signal.SIGTERM, interrupted)
    # Even when started with SIGINT ignored (a background job of a shell without job control).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    began = time.monotonic()
    try:
        result = run_soak(args)
    except KeyboardInterrupt:
        print("interrupted; every process it started is stopped", file=sys.stderr)
        return 130
    env = result.environment
    print(
        f"\nactorproxy soak ({env['date']}, git {env['git']}): Python {env['python']}, trio {env['trio']}, "
        f"codec {env['codec']}, {env['cpus']} CPUs ({env['cpu']}), Linux {env['kernel']}; load average "
        f"before {env['loadavg_before'][0]:.2f}, after {env['loadavg_after'][0]:.2f}; took "
        f"{time.monotonic() - began:.0f} s\n"
    )
    print(summary_markdown(result))
    if args.json_out:
        data = asdict(result)
        Path(args.json_out).write_text(json.dumps(data, indent=1) + "\n")
    return 0


# -- an upstream process -------------------------------------------------------------------------------------


def upstream_main(argv: Sequence[str]) -> int:
    """`soak.py _upstream NAME PORT`: one demo upstream on 127.0.0.1:PORT until killed."""
    name, port = argv[0], int(argv[1])
    trio.run(partial(serve_demo_upstream, name, port=port))
    return 0


# -- the load generator process ------------------------------------------------------------------------------


class ClosedByPeer(Exception):
    """The server closed the connection (EOF) before the response was complete."""


class LoadStats:
    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.requests = 0
        self.ok = 0
        self.statuses: collections.Counter[int] = collections.Counter()
        self.failures: list[tuple[float, str]] = []
        self.ok_per_second: collections.Counter[int] = collections.Counter()
        self.latency: collections.Counter[int] = collections.Counter()
        self.upstreams: collections.Counter[str] = collections.Counter()
        self.connections = 0

    def fail(self, kind: str) -> None:
        self.failures.append((round(time.monotonic() - self.t0, 4), kind))


def transport_kind(exc: BaseException) -> str:
    """The name a transport failure is counted under: the OS error behind trio's wrapper, if any."""
    if isinstance(exc, trio.TooSlowError):
        return "timeout"
    if isinstance(exc, ClosedByPeer):
        return "connection closed"
    cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) and exc.__cause__ else exc
    return type(cause).__name__


class LoadClient:
    """One client: GETs back to back on one persistent connection, a new one after any failure."""

    def __init__(self, stats: LoadStats, port: int, target: str, until: float) -> None:
        self.stats = stats
        self.port = port
        self.target = target
        self.until = until
        self.stream: trio.SocketStream | None = None
        self.conn = h11.Connection(h11.CLIENT)
        self.served = 0
        self.phase = "connecting"

    async def run(self) -> None:
        request = h11.Request(method="GET", target=self.target, headers=[("Host", "soak.internal")])
        while time.monotonic() < self.until:
            began = time.monotonic()
            reused = self.served > 0
            self.phase = "connecting"
            try:
                with trio.fail_after(REQUEST_TIMEOUT):
                    if self.stream is None:
                        self.stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                        self.conn = h11.Connection(h11.CLIENT)
                        self.served = 0
                        self.stats.connections += 1
                    self.phase = "sending"
                    data = (self.conn.send(request) or b"") + (self.conn.send(h11.EndOfMessage()) or b"")
                    await self.stream.send_all(data)
                    self.phase = "waiting for the response"
                    status, upstream = await self.read_response(self.stream)
            except (
                OSError,
                trio.BrokenResourceError,
                trio.TooSlowError,
                h11.ProtocolError,
                ClosedByPeer,
            ) as exc:
                self.stats.requests += 1
                where = (
                    self.phase
                    if self.phase == "connecting"
                    else f"{self.phase}, {'reused' if reused else 'new'} connection"
                )
                self.stats.fail(f"{transport_kind(exc)} ({where})")
                await self.close()
                if self.phase == "connecting":
                    await trio.sleep(RECONNECT_DELAY)
                continue
            self.served += 1
            stats = self.stats
            stats.requests += 1
            stats.statuses[status] += 1
            if 200 <= status < 300:
                done = time.monotonic()
                stats.ok += 1
                stats.ok_per_second[int(done - stats.t0)] += 1
                stats.latency[round(math.log(max(done - began, 1e-6)) / LATENCY_BUCKET)] += 1
                stats.upstreams[upstream] += 1
            else:
                stats.fail(f"HTTP {status}")
            if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
                self.conn.start_next_cycle()
            else:
                await self.close()  # `Connection: close` from the proxy: a new connection, not a failure
        await self.close()

    async def read_response(self, stream: trio.SocketStream) -> tuple[int, str]:
        status, upstream = 0, ""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(65536)
                if not data:
                    raise ClosedByPeer
                self.phase = "reading the response"
                self.conn.receive_data(data)
            elif isinstance(event, h11.Response):
                status = event.status_code
                upstream = next((v.decode() for k, v in event.headers if k == b"x-upstream"), "")
            elif isinstance(event, h11.EndOfMessage):
                return status, upstream

    async def close(self) -> None:
        if self.stream is not None:
            await trio.aclose_forcefully(self.stream)
            self.stream = None


async def generate_load(port: int, target: str, clients: int, t0: float, until: float) -> LoadStats:
    stats = LoadStats(t0)
    async with trio.open_nursery() as nursery:
        for _ in range(clients):
            nursery.start_soon(LoadClient(stats, port, target, until).run)
    return stats


def load_main(argv: Sequence[str]) -> int:
    """`soak.py _load --port P --target T --clients N --t0 T0 --until U --out FILE`: the load, then its
    counts as JSON."""
    parser = argparse.ArgumentParser(prog="soak.py _load")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", default=PATH, help="the request target")
    parser.add_argument("--clients", type=int, required=True)
    parser.add_argument("--t0", type=float, required=True, help="time.monotonic() the run started at")
    parser.add_argument("--until", type=float, required=True, help="time.monotonic() to stop at")
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    stats = trio.run(generate_load, args.port, args.target, args.clients, args.t0, args.until)
    report = {
        "clients": args.clients,
        "seconds": round(time.monotonic() - args.t0, 3),
        "requests": stats.requests,
        "ok": stats.ok,
        "statuses": stats.statuses,
        "failures": stats.failures,
        "ok_per_second": stats.ok_per_second,
        "latency": stats.latency,
        "upstreams": stats.upstreams,
        "connections": stats.connections,
    }
    temporary = f"{args.out}.tmp"
    Path(temporary).write_text(json.dumps(report))
    os.replace(temporary, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
