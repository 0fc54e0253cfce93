"""`PrometheusService`: the page Prometheus scrapes (Pingora's `add_prometheus_service_http`).

Rules:
- It is a proxy service whose application answers every request itself: GET or HEAD on `path` gets the
  exposition of prometheus-client (the text format, or OpenMetrics when `Accept` asks for it); another path
  is 404, another method 405. Being a proxy service, it listens, drains, upgrades and runs in every worker
  as the proxy does.
- What it shows: the server's services, upstream clusters and actor tree (`_families.py`) and every metric
  of prometheus-client's default registry, where users' own `Counter`, `Gauge`, `Histogram` objects land.
- Every process writes its counts to the snapshot directory (`_aggregate.py`) every `snapshot_interval`
  seconds and when it stops (`SnapshotActor`); a scrape, answered by whichever worker accepted it, shows
  the sum over the workers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Mapping
from typing import Any, Protocol

import trio
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from actorproxy.http import ResponseHeader
from actorproxy.lb import LoadBalancer
from actorproxy.proxy import HttpPeer, HttpProxyService, ProxyHttp, Session
from actors import Actor, ActorSystem, ExitReason
from supervisors import ChildSpec, Restart

from ._aggregate import SnapshotDirectory
from ._families import cluster_families, kernel_families, service_families

__all__ = [
    "DEFAULT_SNAPSHOT_INTERVAL",
    "MetricsApp",
    "MetricsSource",
    "PrometheusService",
    "SnapshotActor",
    "collect",
]

logger = logging.getLogger("actorproxy.metrics")

#: Seconds between two snapshots of a process's counts: how stale another worker's numbers may be on a page.
DEFAULT_SNAPSHOT_INTERVAL = 1.0


class MetricsSource(Protocol):
    """What the page reads: the server's services, its actor system, its clusters."""

    @property
    def services(self) -> list[Any]: ...

    @property
    def system(self) -> ActorSystem | None: ...

    def clusters(self) -> Mapping[str, LoadBalancer]: ...


class _Page:
    """The registry prometheus-client's encoders read: the server's families, then the default registry."""

    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def collect(source: MetricsSource) -> list[Metric]:
    """Everything this process counts, now: its services, clusters and actors, and the default registry."""
    services = [
        s for s in source.services if isinstance(s, HttpProxyService) and not isinstance(s, PrometheusService)
    ]
    families = list(service_families(services))
    families += cluster_families(source.clusters())
    families += kernel_families(source.system)
    families += REGISTRY.collect()
    return families


class MetricsApp(ProxyHttp):
    """Answers the scrape (see the module rules).

    Args:
        source: the server whose state is shown.
        path: the page's path.
        snapshots: the directory the server's processes share; None: this process alone.
    """

    def __init__(self, source: MetricsSource, path: str, snapshots: SnapshotDirectory | None) -> None:
        self.source = source
        self.path = path
        self.snapshots = snapshots

    def _merged(self, families: list[Metric]) -> list[Metric]:
        assert self.snapshots is not None
        self.snapshots.write(families)
        return self.snapshots.read()

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        request = session.req_header
        if request.path != self.path:
            await _answer(session, 404, b"not found; metrics are at " + self.path.encode() + b"\n")
            return True
        if request.method not in ("GET", "HEAD"):
            await _answer(session, 405, b"GET or HEAD\n", allow="GET, HEAD")
            return True
        encoder, content_type = choose_encoder(request.headers.get("accept") or "")
        # Read in the trio thread (the counters change there); files are written and read in a worker thread.
        families = collect(self.source)
        if self.snapshots is not None:
            families = await trio.to_thread.run_sync(self._merged, families)
        body = encoder(_Page(families))
        await _answer(session, 200, body, content_type=content_type)
        return True

    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        raise AssertionError("the metrics page never goes upstream")


async def _answer(
    session: Session,
    status: int,
    body: bytes,
    *,
    content_type: str = "text/plain; charset=utf-8",
    allow: str | None = None,
) -> None:
    header = ResponseHeader.build(status)
    header.insert_header("Content-Type", content_type)
    header.insert_header("Content-Length", str(len(body)))
    header.insert_header("Cache-Control", "no-store")
    if allow is not None:
        header.insert_header("Allow", allow)
    head_only = session.req_header.method == "HEAD"
    await session.write_response_header(header, end_of_stream=head_only)
    if not head_only:
        await session.write_response_body(body, end_of_stream=True)


class SnapshotActor(Actor):
    """Writes this process's counts to the snapshot directory on a period, and once more when it stops."""

    def __init__(self, source: MetricsSource, snapshots: SnapshotDirectory, interval: float) -> None:
        self.source = source
        self.snapshots = snapshots
        self.interval = interval

    async def run(self) -> None:
        with self.context.cancel_on_stop():
            while True:
                with trio.CancelScope(shield=True):
                    await self._write()
                await trio.sleep(self.interval)

    async def _write(self) -> None:
        families = collect(self.source)
        await trio.to_thread.run_sync(self.snapshots.write, families)

    async def on_stop(self, reason: ExitReason) -> None:
        try:
            self.snapshots.write(collect(self.source))
        except OSError as exc:
            logger.warning("metrics: the last snapshot of pid %d could not be written: %s", os.getpid(), exc)


class PrometheusService(HttpProxyService):
    """A proxy service serving the metrics page, plus the snapshot writer of this process.

    Args:
        source: the server.
        listen: "host:port" to listen on.
        path: the page's path.
        snapshot_directory: where the processes of the server share their counts.
        snapshot_interval: seconds between two snapshots.
        name: the service's name.
    """

    def __init__(
        self,
        source: MetricsSource,
        listen: str,
        *,
        path: str = "/metrics",
        snapshot_directory: str | os.PathLike[str],
        snapshot_interval: float = DEFAULT_SNAPSHOT_INTERVAL,
        name: str = "metrics",
    ) -> None:
        self.snapshots = SnapshotDirectory(snapshot_directory)
        super().__init__(MetricsApp(source, path, self.snapshots), name=name)
        self.source = source
        self.path = path
        self.snapshot_interval = snapshot_interval
        self.add_tcp(listen)

    def extra_children(self) -> list[ChildSpec]:
        return [
            *super().extra_children(),
            ChildSpec(
                id="snapshots",
                start=lambda: SnapshotActor(self.source, self.snapshots, self.snapshot_interval),
                restart=Restart.PERMANENT,
            ),
        ]

    def reset_counts(self) -> None:
        """Forget every count the server's earlier processes left (a fresh start, not an upgrade)."""
        self.snapshots.clear()
