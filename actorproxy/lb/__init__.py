"""Load balancing (Pingora's): backends, the pure algorithms that choose between them, and the
`LoadBalancer` that publishes selection snapshots, run by a `LoadBalancerActor` (see
`actorproxy.server.background_service`)."""

from actorproxy.proxy import Outcome

from ._backend import Backend
from ._backends import BackendHealth, Backends
from ._background import (
    LoadBalancerActor,
    LoadBalancerService,
    RunHealthCheck,
    SelectBackend,
    SetEnable,
    SweepEjections,
    UpdateBackends,
)
from ._balancer import LoadBalancer, SelectionFactory, Snapshot, selection_factory
from ._discovery import FileDiscovery, ServiceDiscovery, Static
from ._dns import (
    DnsDiscovery,
    DnsDiscoveryError,
)
from ._health import (
    HealthCheck,
    HealthTracker,
    HttpHealthCheck,
    TcpHealthCheck,
    run_checks,
)
from ._ketama import POINT_MULTIPLE, Consistent, ketama_points
from ._outlier import OutlierDetection, OutlierTracker
from ._selection import (
    FNV_OFFSET_BASIS,
    FNV_PRIME,
    BackendSelection,
    FNVHash,
    LeastConnections,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    SelectionAlgorithm,
    UniqueIterator,
    Weighted,
    select,
    sorted_backends,
)

__all__ = [
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "POINT_MULTIPLE",
    "Backend",
    "BackendHealth",
    "BackendSelection",
    "Backends",
    "Consistent",
    "DnsDiscovery",
    "DnsDiscoveryError",
    "FNVHash",
    "FileDiscovery",
    "HealthCheck",
    "HealthTracker",
    "HttpHealthCheck",
    "LeastConnections",
    "LoadBalancer",
    "LoadBalancerActor",
    "LoadBalancerService",
    "Outcome",
    "OutlierDetection",
    "OutlierTracker",
    "PowerOfTwoChoices",
    "Random",
    "RoundRobin",
    "RunHealthCheck",
    "SelectBackend",
    "SelectionAlgorithm",
    "SelectionFactory",
    "ServiceDiscovery",
    "SetEnable",
    "Snapshot",
    "Static",
    "SweepEjections",
    "TcpHealthCheck",
    "UniqueIterator",
    "UpdateBackends",
    "Weighted",
    "ketama_points",
    "run_checks",
    "select",
    "selection_factory",
    "sorted_backends",
]
