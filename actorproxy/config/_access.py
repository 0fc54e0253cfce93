"""Dot-notation reads: `conf.get("services.0.listeners.0.address")`.

Rules:
- Parts are separated by dots. On a record a part is a field; on the record that keeps unknown keys, a part
  that is not a field is looked up among them (so `my_app.token` reads a user-defined setting).
- On a list a part is a position (`0`, `-1`) or the `name` of an item (`upstreams.web`).
- Keys of user-defined mappings are matched as written, then as an int (`ports.0` finds `{0: ...}`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

__all__ = ["MISSING", "lookup"]

#: The default of `lookup` (and `ServerConf.get`) that means "raise KeyError".
MISSING: Any = object()


def lookup(root: object, path: str, default: Any = MISSING) -> Any:
    """The value at `path` under `root`, or `default`.

    Raises:
        KeyError: nothing is at `path` and no default was given; the message names the path and the
            first part that was not found.
    """
    node = root
    parts = path.split(".") if path else []
    for depth, part in enumerate(parts):
        try:
            node = _step(node, part)
        except LookupError:
            if default is not MISSING:
                return default
            found = ".".join(parts[:depth])
            where = f" (nothing at {part!r} under {found!r})" if found else ""
            raise KeyError(f"no configuration value at {path!r}{where}") from None
    return node


def _step(node: object, part: str) -> Any:
    cls = type(node)
    if attrs.has(cls):
        extra: str | None = getattr(cls, "__extra__", None)
        if part in attrs.fields_dict(cls) and part != extra:
            return getattr(node, part)
        if extra is not None:
            return _step(getattr(node, extra), part)
        raise KeyError(part)
    if isinstance(node, Mapping):
        if part in node:
            return node[part]
        if _is_int(part) and int(part) in node:
            return node[int(part)]
        raise KeyError(part)
    if isinstance(node, (tuple, list)):
        if _is_int(part):
            return node[int(part)]
        for item in node:
            name = item.get("name") if isinstance(item, Mapping) else getattr(item, "name", None)
            if name == part:
                return item
        raise KeyError(part)
    raise KeyError(part)


def _is_int(part: str) -> bool:
    return part.removeprefix("-").isdigit()
