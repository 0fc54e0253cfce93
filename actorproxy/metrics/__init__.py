"""Metrics: what a running server counts, as Prometheus families, served on a scrape page.

    server.add_prometheus_service("127.0.0.1:6192")          # or `metrics: {listen: ...}` in YAML
    curl http://127.0.0.1:6192/metrics

Counts live where they happen (services, pools, load balancers, the kernel) and are read at scrape time;
with `threads: N`, every worker writes snapshots and any worker answers a scrape with their sum.
"""

from ._aggregate import SnapshotDirectory, merge, metric_from_data, metric_to_data
from ._families import MAX_AGGREGATED, ClusterSource, cluster_families, kernel_families, service_families
from ._service import (
    DEFAULT_SNAPSHOT_INTERVAL,
    MetricsApp,
    MetricsSource,
    PrometheusService,
    SnapshotActor,
    collect,
)

__all__ = [
    "DEFAULT_SNAPSHOT_INTERVAL",
    "MAX_AGGREGATED",
    "ClusterSource",
    "MetricsApp",
    "MetricsSource",
    "PrometheusService",
    "SnapshotActor",
    "SnapshotDirectory",
    "cluster_families",
    "collect",
    "kernel_families",
    "merge",
    "metric_from_data",
    "metric_to_data",
    "service_families",
]
