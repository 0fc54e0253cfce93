"""Deep-frozen plain data: what the user-defined part of a configuration is stored as.

A frozen record should not hand out a dict its readers can change under each other, so mappings become
read-only `MappingProxyType`s and lists become tuples; `thaw` turns them back for dumping.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from typing import Any

__all__ = ["EMPTY", "freeze", "freeze_mapping", "thaw"]

#: The empty read-only mapping, shared as a default.
EMPTY: Mapping[Any, Any] = types.MappingProxyType({})


def freeze(value: Any) -> Any:
    """A read-only deep copy of plain data (mappings, lists, scalars)."""
    if isinstance(value, Mapping):
        return types.MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


def freeze_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    """`freeze` for a mapping field (an attrs converter, so direct construction stores a frozen copy too)."""
    frozen: Mapping[str, Any] = freeze(value)
    return frozen


def thaw(value: Any) -> Any:
    """A mutable deep copy (dicts and lists) of frozen or plain data."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value
