"""`benchmarks/soak.py` without running a soak: its options, its kill schedule and its summary.

The soak itself starts processes and runs for minutes; these tests only keep the script importable and its
arithmetic and report honest, so that it does not rot between runs.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import asdict
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "soak.py"


def load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("soak", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


soak = load()


def test_the_defaults_are_the_issues_soak_and_quick_is_a_short_one() -> None:
    full = soak.parse_args([])
    assert (full.duration, full.kill_interval, full.down_time, full.warmup) == (600, 30, 5, 10)
    quick = soak.parse_args(["--quick"])
    assert (quick.duration, quick.kill_interval) == (60, 10)
    assert quick.down_time < quick.kill_interval
    # An option given wins over --quick's default.
    assert soak.parse_args(["--quick", "--duration", "90", "--clients", "4"]).duration == 90


@pytest.mark.parametrize(
    "argv",
    [["--down-time", "30"], ["--kill-interval", "0"], ["--clients", "0"], ["--warmup", "700"]],
)
def test_impossible_options_are_refused(argv: list[str]) -> None:
    with pytest.raises(SystemExit):
        soak.parse_args(argv)


def test_the_upstreams_are_killed_in_turn_and_back_before_the_end() -> None:
    plan = soak.kill_schedule(600, 30, 5)
    assert len(plan) == 19
    assert plan[0] == (30, 35, 0)
    assert [index for _, _, index in plan[:4]] == [0, 1, 2, 0]
    assert all(restart <= 599 for _, restart, _ in plan)
    assert soak.kill_schedule(60, 10, 3) == [(10 * n, 10 * n + 3, (n - 1) % 3) for n in range(1, 6)]


def kill(upstream: str, at: float) -> Any:
    return soak.Kill(upstream, killed_at=at, restart_at=at + 5, listening_at=at + 5.5)


def test_a_failure_is_placed_relative_to_the_last_kill() -> None:
    kills = [kill("up0", 30), kill("up1", 60)]
    assert soak.when(soak.Failure(12.0, "x"), kills) == (None, "before any kill", 12.0)
    assert soak.when(soak.Failure(30.25, "x"), kills) == (0, "down", 0.25)
    index, phase, offset = soak.when(soak.Failure(36.5, "x"), kills)
    assert (index, phase) == (0, "restarted") and offset == pytest.approx(1.0)
    assert soak.when(soak.Failure(61.0, "x"), kills)[:2] == (1, "down")


def result(failures: list[Any], rss: list[int]) -> Any:
    load = soak.LoadReport(
        clients=4,
        seconds=60.0,
        requests=1000,
        ok=1000 - len(failures),
        statuses={200: 1000 - len(failures)},
        failures=failures,
        ok_per_second={s: 16 for s in range(60)},
        latency={-100: 990, -90: 10},
        upstreams={"up0": 300, "up1": 300, "up2": 400 - len(failures)},
        connections=6,
    )
    samples = [soak.Sample(at=10.0 * n, rss_kib=kib, fds=20, cpu_seconds=n) for n, kib in enumerate(rss)]
    settings = {"duration": 60, "kill_interval": 30, "down_time": 5, "warmup": 10, "sample_interval": 10}
    settings |= {"clients": 4, "pad": 0}
    return soak.SoakResult(settings, {}, load, [kill("up0", 30)], samples, [(3, "ERROR actorproxy.proxy: x")])


def test_the_summary_counts_the_errors_by_kind_and_by_kill() -> None:
    failures = [
        soak.Failure(30.1, "connection closed (reading the response, reused connection)"),
        soak.Failure(30.2, "connection closed (reading the response, reused connection)"),
        soak.Failure(40.0, "HTTP 502"),
    ]
    text = soak.summary_markdown(result(failures, [1000, 1024, 1100, 1050, 1080, 1100, 1100]))
    assert "| 1,000 | 17 | 997 | 3 |" in text
    assert "| connection closed (reading the response, reused connection) | 2 | 2 | 0 | 0 |" in text
    assert "| HTTP 502 | 1 | 0 | 1 | 0 |" in text
    assert "| 1 | up0 | 30.0 s | 35.5 s | 2 (+0.100 .. +0.200 s) | 1 (+4.500 .. +4.500 s) |" in text
    # Start is the first sample after the 10 s warm-up (1024 KiB), end the last (1100 KiB).
    assert "| 1.0 MiB | 1.1 MiB | 1.1 MiB | +7.4% (target < 10%: met) |" in text
    assert "ERROR actorproxy.proxy: x" in text


def test_the_summary_says_when_nothing_failed_and_when_memory_grew_too_much() -> None:
    text = soak.summary_markdown(result([], [1000, 1000, 1200]))
    assert "No client saw an error" in text
    assert "+20.0% (target < 10%: MISSED)" in text


def test_the_load_report_survives_its_trip_through_json() -> None:
    report = result([soak.Failure(30.1, "timeout")], [1000]).load
    data = json.loads(json.dumps(asdict(report)))
    data["failures"] = [[f["at"], f["kind"]] for f in data["failures"]]  # as the load generator writes them
    assert soak.LoadReport.from_json(data) == report


def test_latency_percentiles_come_from_the_histogram() -> None:
    histogram = {0: 50, 10: 49, 20: 1}  # 1 s, 1.05**10 s, 1.05**20 s
    assert soak.latency_percentile(histogram, 0.5) == pytest.approx(1.0)
    assert soak.latency_percentile(histogram, 0.99) == pytest.approx(1.05**10)
    assert soak.latency_percentile(histogram, 1.0) == pytest.approx(1.05**20)
    assert soak.latency_percentile({}, 0.5) is None
