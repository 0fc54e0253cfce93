"""The admin service: a JSON API and a live supervision-tree page on one listener.

`Server.add_admin_service()` (or `admin:` in the YAML) serves the tree of actors with their state, uptime,
restarts and mailboxes, the upstream clusters with each backend's health, the services' counters and rates,
the effective configuration (redacted), and two write actions: enable or disable a backend, and reload. The
page at `/` follows the tree over a WebSocket. See docs/observability.md.
"""

from ._app import TOKEN_HEADER, AdminApp, ApiError, load_static
from ._history import HISTORY_LENGTH, SAMPLE_INTERVAL, History, ServiceSample
from ._latency import LATENCY_FIELD, QUANTILES, DurationHistogram, LatencySample, latency_between
from ._monitor import MAX_EVENTS, WATCHED_EVENTS, AdminMonitorActor, AdminState, TakeSample
from ._service import AdminService
from ._target import AdminTarget, ReloadResult
from ._views import (
    MAX_CHILDREN,
    backend_view,
    clusters_view,
    config_view,
    counters_view,
    event_view,
    find_backend,
    node_view,
    tree_view,
)
from ._websocket import ReplayStream, is_websocket_request, request_head, serve_websocket

__all__ = [
    "HISTORY_LENGTH",
    "LATENCY_FIELD",
    "MAX_CHILDREN",
    "MAX_EVENTS",
    "QUANTILES",
    "SAMPLE_INTERVAL",
    "TOKEN_HEADER",
    "WATCHED_EVENTS",
    "AdminApp",
    "AdminMonitorActor",
    "AdminService",
    "AdminState",
    "AdminTarget",
    "ApiError",
    "DurationHistogram",
    "History",
    "LatencySample",
    "ReloadResult",
    "ReplayStream",
    "ServiceSample",
    "TakeSample",
    "backend_view",
    "clusters_view",
    "config_view",
    "counters_view",
    "event_view",
    "find_backend",
    "is_websocket_request",
    "latency_between",
    "load_static",
    "node_view",
    "request_head",
    "serve_websocket",
    "tree_view",
]
