"""What a running server is, as Prometheus metric families, read at scrape time.

Rules:
- Nothing here runs on the request path: the request path counts in plain attributes of its service
  (`ProxyCounters`, the pool's statistics, the load balancer's table, the kernel's statistics), in the one
  trio thread, and a scrape turns what they hold into families. No lock is shared with the scrape.
- Names start with `actorproxy_`; counters end in `_total` (prometheus-client adds it where needed), times
  are in seconds, sizes in bytes. Label sets are bounded: services, routes, clusters, actor kinds and
  supervisor paths are configuration, status codes are grouped by class.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Iterator, Mapping
from typing import Protocol, runtime_checkable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric

from actorproxy.lb import LoadBalancer
from actorproxy.limits import LimitStatistics
from actorproxy.proxy import HttpProxyService, ProxyCounters
from actors import ActorSystem, TreeNode

__all__ = [
    "MAX_AGGREGATED",
    "ClusterSource",
    "cluster_families",
    "kernel_families",
    "service_families",
]

#: Gauges that every worker reports for the whole server (each worker checks the same backends): with
#: several workers a scrape shows the largest value, not the sum.
MAX_AGGREGATED = frozenset({"actorproxy_backends", "actorproxy_mailbox_peak_messages"})


@runtime_checkable
class LimitedApp(Protocol):
    """An application with rate-limited routes (the declared proxy)."""

    def limit_statistics(self) -> list[LimitStatistics]: ...


class ClusterSource(Protocol):
    """Something that knows the upstream clusters by name (the server, a declared proxy)."""

    def __call__(self) -> Mapping[str, LoadBalancer]: ...


def _status_class(key: int) -> str:
    return f"{key}xx"


def service_families(services: Iterable[HttpProxyService]) -> Iterator[Metric]:
    """Requests, errors, retries, rejections, connections, bytes and the pool of each proxy service."""
    services = list(services)
    per_service = {
        name: CounterMetricFamily(f"actorproxy_{name}", help, labels=["service"])
        for name, help in (
            ("retries", "Upstream retries."),
            ("rejected_requests", "Request heads refused before any phase (answered 4xx/5xx, closed)."),
            ("connection_crashes", "Connection actors that crashed (a bug answered 500)."),
            ("connections", "Client connections accepted."),
            ("received_bytes", "Bytes read from clients, heads and framing included."),
            ("sent_bytes", "Bytes written to clients, heads and framing included."),
            ("pool_reused", "Upstream connections taken from the pool."),
            ("pool_opened", "Checkouts that found no idle connection (a new one is opened)."),
        )
    }
    gauges = {
        name: GaugeMetricFamily(f"actorproxy_{name}", help, labels=["service"])
        for name, help in (
            ("open_connections", "Client connections open now."),
            ("pool_idle_connections", "Idle upstream connections in the pool."),
            ("pool_in_use_connections", "Upstream connections carrying a request now."),
        )
    }
    requests = CounterMetricFamily(
        "actorproxy_requests",
        "Requests that ended, by route, method and status class (code 0xx: no response was sent).",
        labels=["service", "route", "method", "code"],
    )
    errors = _labelled("actorproxy_request_errors", "Requests that ended in an error, by error type.", "type")
    reasons = _labelled("actorproxy_retry_reasons", "Retries by the error that caused them.", "type")
    connects = _labelled("actorproxy_upstream_connect_errors", "Failed upstream connects, by error.", "type")
    refused = _labelled(
        "actorproxy_rejected_by_status", "Requests refused before any phase, by the status answered.", "code"
    )
    pool_closed = _labelled(
        "actorproxy_pool_closed",
        "Idle upstream connections the pool closed, by why: reaped (idle too long), dead, evicted.",
        "reason",
    )
    for service in services:
        name = service.name
        counters: ProxyCounters = service.counters
        pool = service.pool.statistics()
        for family, value in (
            ("retries", counters.retries),
            ("rejected_requests", counters.rejected),
            ("connection_crashes", counters.connection_crashes),
            ("connections", counters.connections),
            ("received_bytes", counters.bytes_received),
            ("sent_bytes", counters.bytes_sent),
            ("pool_reused", pool.hits),
            ("pool_opened", pool.misses),
        ):
            per_service[family].add_metric([name], value)
        for family, value in (
            ("open_connections", counters.connections_open),
            ("pool_idle_connections", pool.idle),
            ("pool_in_use_connections", counters.upstream_in_use),
        ):
            gauges[family].add_metric([name], value)
        for (route, method, status_class), count in sorted(counters.finished.items()):
            requests.add_metric([name, route, method, _status_class(status_class)], count)
        for by_type, table in (
            (errors, counters.errors),
            (reasons, counters.retry_reasons),
            (connects, counters.connect_errors),
        ):
            for key, count in sorted(table.items()):
                by_type.add_metric([name, key], count)
        for status, count in sorted(counters.rejected_by_status.items()):
            refused.add_metric([name, str(status)], count)
        for reason, count in (("reaped", pool.reaped), ("dead", pool.dead), ("evicted", pool.evictions)):
            pool_closed.add_metric([name, reason], count)
    logged = CounterMetricFamily(
        "actorproxy_access_log_lines", "Access log lines written.", labels=["service"]
    )
    dropped = CounterMetricFamily(
        "actorproxy_access_log_dropped",
        "Access log lines dropped: the buffer was full (a slow disk) or the write failed.",
        labels=["service"],
    )
    for service in services:
        if service.access_log is not None:
            logged.add_metric([service.name], service.access_log.written)
            dropped.add_metric([service.name], service.access_log.dropped)
    yield requests
    yield _cache_outcomes(services)
    yield _limit_decisions(services)
    yield from per_service.values()
    yield from gauges.values()
    yield from (errors, reasons, connects, refused, pool_closed, logged, dropped)
    yield from _histograms(services)


def _cache_outcomes(services: list[HttpProxyService]) -> Metric:
    outcomes = CounterMetricFamily(
        "actorproxy_cache_requests",
        "Requests of cached routes by what the HTTP cache did: HIT, MISS, STALE, REVALIDATED, BYPASS.",
        labels=["service", "route", "outcome"],
    )
    for service in services:
        for (route, outcome), count in sorted(service.counters.cache_outcomes.items()):
            outcomes.add_metric([service.name, route, outcome], count)
    return outcomes


def _limit_decisions(services: list[HttpProxyService]) -> Metric:
    decisions = CounterMetricFamily(
        "actorproxy_rate_limit_decisions",
        "What the routes' rate limits decided: allowed, limited (by the rate), limited_inflight, and"
        " redis_allowed / redis_denied while Redis failed. A reload that changes a limit starts it over.",
        labels=["service", "route", "decision"],
    )
    for service in services:
        app = service.app
        if not isinstance(app, LimitedApp):
            continue
        for stats in app.limit_statistics():
            for decision in ("allowed", "limited", "limited_inflight", "redis_allowed", "redis_denied"):
                decisions.add_metric([service.name, stats.label, decision], getattr(stats, decision))
    return decisions


def _labelled(name: str, help: str, label: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, help, labels=["service", label])


def _histograms(services: list[HttpProxyService]) -> Iterator[Metric]:
    duration = HistogramMetricFamily(
        "actorproxy_request_duration_seconds",
        "Time from a request's head to the end of its response.",
        labels=["service"],
    )
    ttfb = HistogramMetricFamily(
        "actorproxy_upstream_ttfb_seconds",
        "Time from sending a request upstream to its response head.",
        labels=["service"],
    )
    for service in services:
        counters = service.counters
        duration.add_metric(
            [service.name], counters.request_duration.buckets(), counters.request_duration.sum
        )
        ttfb.add_metric([service.name], counters.upstream_ttfb.buckets(), counters.upstream_ttfb.sum)
    yield duration
    yield ttfb


def cluster_families(clusters: Mapping[str, LoadBalancer]) -> Iterator[Metric]:
    """Backends per health state and ejections, per upstream cluster."""
    backends = GaugeMetricFamily(
        "actorproxy_backends",
        "Backends of an upstream cluster, by state: ready, unhealthy, disabled, ejected.",
        labels=["upstream", "state"],
    )
    ejections = CounterMetricFamily(
        "actorproxy_backend_ejections",
        "Times passive health took a backend of the cluster out.",
        labels=["upstream"],
    )
    for name, lb in sorted(clusters.items()):
        table = lb.backends()
        states: Tally[str] = Tally(dict.fromkeys(("ready", "unhealthy", "disabled", "ejected"), 0))
        total_ejections = 0
        for backend in table.backends():
            health = table.health(backend)
            total_ejections += table.ejections(backend)
            if health is None or health.ready:
                states["ready"] += 1
            elif not health.enabled:
                states["disabled"] += 1
            elif health.ejected:
                states["ejected"] += 1
            else:
                states["unhealthy"] += 1
        for state, count in states.items():
            backends.add_metric([name, state], count)
        ejections.add_metric([name], total_ejections)
    yield from (backends, ejections)


def kernel_families(system: ActorSystem | None) -> Iterator[Metric]:
    """Actors alive per kind, restarts per supervisor, mailbox high-water marks, dead letters."""
    actors = GaugeMetricFamily("actorproxy_actors", "Actors alive, by kind.", labels=["kind"])
    restarts = CounterMetricFamily(
        "actorproxy_supervisor_restarts", "Children restarted, by supervisor.", labels=["supervisor"]
    )
    peaks = GaugeMetricFamily(
        "actorproxy_mailbox_peak_messages",
        "The deepest any mailbox of an actor kind has been.",
        labels=["kind"],
    )
    dead_letters = CounterMetricFamily("actorproxy_dead_letters", "Messages no actor could take.")
    if system is not None:
        alive: Tally[str] = Tally()
        peak: dict[str, int] = {}
        restarted: dict[str, int] = {}
        for node in _walk(system.tree()):
            statistics = node.statistics
            kind = statistics.actor_type
            alive[kind] += 1
            peak[kind] = max(peak.get(kind, 0), statistics.mailbox_peak)
            if node.children:
                restarted[statistics.path] = sum(child.statistics.restarts for child in node.children)
        for kind, count in sorted(alive.items()):
            actors.add_metric([kind], count)
            peaks.add_metric([kind], peak[kind])
        for path, count in sorted(restarted.items()):
            restarts.add_metric([path], count)
        dead_letters.add_metric([], system.dead_letters.total)
    yield from (actors, restarts, peaks, dead_letters)


def _walk(nodes: Iterable[TreeNode]) -> Iterator[TreeNode]:
    stack = list(nodes)
    while stack:
        node = stack.pop()
        yield node
        stack.extend(node.children)
