"""Load balancing: backends and the pure algorithms that choose between them (Pingora's load balancing)."""

from ._backend import Backend
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
    "FNV_OFFSET_BASIS",
    "FNV_PRIME",
    "POINT_MULTIPLE",
    "Backend",
    "BackendSelection",
    "Consistent",
    "FNVHash",
    "LeastConnections",
    "PowerOfTwoChoices",
    "Random",
    "RoundRobin",
    "SelectionAlgorithm",
    "UniqueIterator",
    "Weighted",
    "ketama_points",
    "select",
    "sorted_backends",
]
