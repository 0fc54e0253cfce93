"""Counts summed over a server's processes: counters and histograms of every process that ever wrote,
gauges of the living ones, dead processes folded into one retired total, and no counter going back."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from actorproxy.metrics import SnapshotDirectory, merge, metric_from_data, metric_to_data
from actorproxy.proxy import Histogram


def families(requests: float, connections: float, backends: float = 3.0) -> list[Metric]:
    counter = CounterMetricFamily("actorproxy_requests", "Requests.", labels=["service"])
    counter.add_metric(["edge"], requests)
    gauge = GaugeMetricFamily("actorproxy_connections", "Open.", labels=["service"])
    gauge.add_metric(["edge"], connections)
    most = GaugeMetricFamily("actorproxy_backends", "Backends.", labels=["upstream", "state"])
    most.add_metric(["web", "ready"], backends)
    histogram = HistogramMetricFamily("actorproxy_request_duration_seconds", "Time.", labels=["service"])
    histogram.add_metric(["edge"], [("0.1", requests), ("+Inf", requests)], requests / 10)
    return [counter, gauge, most, histogram]


def value(metrics: list[Metric], sample: str, **labels: str) -> float:
    for metric in metrics:
        for s in metric.samples:
            if s.name == sample and s.labels == labels:
                return s.value
    raise KeyError((sample, labels))


def data(metrics: list[Metric]) -> list[dict[str, object]]:
    return [metric_to_data(metric) for metric in metrics]


def test_a_family_survives_the_trip_through_plain_data() -> None:
    for metric in families(5, 2):
        again = metric_from_data(metric_to_data(metric))
        assert (again.name, again.type, again.documentation, again.samples) == (
            metric.name,
            metric.type,
            metric.documentation,
            metric.samples,
        )


def test_counters_and_histograms_add_up_over_every_process_gauges_over_the_living() -> None:
    merged = merge(
        [(True, data(families(5, 2))), (True, data(families(7, 4))), (False, data(families(11, 9)))]
    )
    assert value(merged, "actorproxy_requests_total", service="edge") == 23
    assert value(merged, "actorproxy_request_duration_seconds_count", service="edge") == 23
    assert value(merged, "actorproxy_request_duration_seconds_bucket", service="edge", le="0.1") == 23
    assert value(merged, "actorproxy_connections", service="edge") == 6  # the dead process's 9 are gone
    # Every worker reports the same backends: the largest count, not the sum.
    assert value(merged, "actorproxy_backends", upstream="web", state="ready") == 3


def test_a_scrape_sums_the_snapshots_and_folds_the_dead_into_the_retired_total(tmp_path: Path) -> None:
    directory = SnapshotDirectory(tmp_path / "metrics")
    directory.clear()
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], check=True, capture_output=True, text=True
    )
    dead_pid = int(dead.stdout)
    directory.write(families(11, 9), pid=dead_pid)
    directory.write(families(5, 2))
    merged = directory.read()
    assert value(merged, "actorproxy_requests_total", service="edge") == 16
    assert value(merged, "actorproxy_connections", service="edge") == 2
    names = sorted(entry.name for entry in (tmp_path / "metrics").glob("*.json"))
    assert names == sorted([f"{os.getpid()}.json", "retired.json"])  # the dead process was folded
    # Our process counts on; the retired total stays in the sum.
    directory.write(families(8, 1))
    assert value(directory.read(), "actorproxy_requests_total", service="edge") == 19


def test_a_fresh_start_forgets_earlier_counts(tmp_path: Path) -> None:
    directory = SnapshotDirectory(tmp_path)
    directory.write(families(5, 2), pid=999_999_999)
    directory.clear()
    directory.write(families(1, 1))
    assert value(directory.read(), "actorproxy_requests_total", service="edge") == 1


def test_a_torn_or_foreign_file_is_skipped(tmp_path: Path) -> None:
    directory = SnapshotDirectory(tmp_path)
    directory.write(families(5, 2))
    (tmp_path / "12345.json").write_text("{not json")
    assert value(directory.read(), "actorproxy_requests_total", service="edge") == 5


def test_the_histogram_counts_into_buckets_and_estimates_quantiles() -> None:
    histogram = Histogram((0.01, 0.1, 1.0))
    for seconds in (0.005, 0.01, 0.05, 0.5, 5.0):
        histogram.observe(seconds)
    assert histogram.counts == [2, 1, 1, 1]  # le 0.01 includes 0.01 itself, as Prometheus's buckets do
    assert histogram.buckets() == [("0.01", 2.0), ("0.1", 3.0), ("1.0", 4.0), ("+Inf", 5.0)]
    assert histogram.count == 5 and round(histogram.sum, 3) == 5.565
    median = histogram.quantile(0.5)
    assert median is not None and 0.01 < median <= 0.1
    assert Histogram().quantile(0.5) is None
