"""The proxy declared in the configuration file: routes, clusters and services with no Python code.

    server = Server.from_args()                 # -c proxy.yaml
    handle = build_proxy(server)                # a load balancer per cluster, a proxy per service
    server.bootstrap()
    server.run_forever()                        # SIGHUP (or `await server.reload()`) reloads the file

`RouteTable` is the pure router (first matching route wins: host, path prefix, headers); `DeclaredProxy` the
`ProxyHttp` app that reads its routes from an immutable snapshot; `build_proxy` adds everything to a
`actorproxy.Server` and returns the `DeclaredProxyHandle`, whose `reload(conf)` swaps routes and clusters
without dropping a connection. See docs/configuration.md, "The declared proxy at work".
"""

from ._app import (
    HASHING_ALGORITHMS,
    NO_ROUTE_BODY,
    DeclaredProxy,
    DeclaredRequest,
    HeaderEdits,
    RoutePlan,
    Routing,
    respond_text,
)
from ._clusters import SELECTION, build_load_balancer
from ._handle import Cluster, DeclaredProxyHandle, DeclaredService, ReloadReport, applies_live, build_proxy
from ._router import RouteRule, RouteTable, normalize_host, request_host

__all__ = [
    "HASHING_ALGORITHMS",
    "NO_ROUTE_BODY",
    "SELECTION",
    "Cluster",
    "DeclaredProxy",
    "DeclaredProxyHandle",
    "DeclaredRequest",
    "DeclaredService",
    "HeaderEdits",
    "ReloadReport",
    "RoutePlan",
    "RouteRule",
    "RouteTable",
    "Routing",
    "applies_live",
    "build_load_balancer",
    "build_proxy",
    "normalize_host",
    "request_host",
    "respond_text",
]
