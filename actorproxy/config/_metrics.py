"""`MetricsConf`: where the Prometheus page is served (Pingora's `add_prometheus_service_http`)."""

from __future__ import annotations

import attrs

from ._checks import doc, parsed_by
from ._rules import LISTEN_ADDRESS, PATH, POSITIVE

__all__ = ["DEFAULT_METRICS_PATH", "MetricsConf"]

#: Prometheus's convention for the scrape path.
DEFAULT_METRICS_PATH = "/metrics"
#: Seconds between two snapshots a worker writes of its counts (how stale another worker's numbers can be).
DEFAULT_SNAPSHOT_INTERVAL = 1.0


def _url_path(value: str) -> None:
    if not value.startswith("/") or any(char in value for char in "?# "):
        raise ValueError(f"expected a path starting with '/' (no query), got {value!r}")


@attrs.frozen(kw_only=True)
class MetricsConf:
    """The Prometheus scrape page: every worker's counts, summed."""

    listen: str = attrs.field(
        validator=LISTEN_ADDRESS, metadata=doc("host:port the page listens on (127.0.0.1:6192, say).")
    )
    path: str = attrs.field(
        default=DEFAULT_METRICS_PATH,
        validator=parsed_by(_url_path, "a path", pattern="^/"),
        metadata=doc("The page's path."),
    )
    snapshot_directory: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc(
            "Where the server's processes share their counts; null: beside upgrade_sock (<upgrade_sock>"
            ".metrics), which a graceful upgrade keeps, so totals carry on across it."
        ),
    )
    snapshot_interval: float = attrs.field(
        default=DEFAULT_SNAPSHOT_INTERVAL,
        validator=POSITIVE,
        metadata=doc("Seconds between two snapshots of a worker's counts."),
    )


attrs.resolve_types(MetricsConf)
