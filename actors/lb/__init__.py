"""Load balancing: backends and the pure algorithms that choose between them (Pingora's load balancing)."""

from ._backend import Backend
from ._backends import BackendHealth, Backends
from ._discovery import FileDiscovery, ServiceDiscovery, Static
from ._health import (
    DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT,
    DEFAULT_HEALTH_CHECK_READ_TIMEOUT,
    HealthCheck,
    HealthTracker,
    HttpHealthCheck,
    TcpHealthCheck,
    run_checks,
)
from ._ketama import POINT_MULTIPLE, Consistent, ketama_points
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
    "DEFAULT_HEALTH_CHECK_CONNECT_TIMEOUT",
    "DEFAULT_HEALTH_CHECK_READ_TIMEOUT",
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "POINT_MULTIPLE",
    "Backend",
    "BackendHealth",
    "BackendSelection",
    "Backends",
    "Consistent",
    "FNVHash",
    "FileDiscovery",
    "HealthCheck",
    "HealthTracker",
    "HttpHealthCheck",
    "LeastConnections",
    "PowerOfTwoChoices",
    "Random",
    "RoundRobin",
    "SelectionAlgorithm",
    "ServiceDiscovery",
    "Static",
    "TcpHealthCheck",
    "UniqueIterator",
    "Weighted",
    "ketama_points",
    "run_checks",
    "select",
    "sorted_backends",
]
