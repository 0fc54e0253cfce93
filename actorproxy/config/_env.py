"""Environment overrides: `ACTORPROXY__THREADS=4` sets `threads` after the file is read, before validation.

Rules:
- A variable is `ENV_PREFIX` followed by the key path's parts joined with `__`; parts are lower-cased, so
  `ACTORPROXY__MY_APP__TOKEN` sets `my_app.token` (an existing key is matched in any case).
- Where the path meets a list, the part picks an item by position (`ACTORPROXY__SERVICES__0__NAME`) or by
  its `name` (`ACTORPROXY__UPSTREAMS__WEB__ALGORITHM`); an override never adds an item to a list.
- The value is read as YAML: `4` is an int, `true` a bool, an empty value null, `[a, b]` a list; text that
  is not valid YAML stays text.
- Variables apply in sorted order. A problem, here or in validation later, names the variable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NoReturn

import attrs

from ._error import ConfigError, Problem
from ._yaml import parse_scalar

__all__ = [
    "ENV_PREFIX",
    "ENV_SEPARATOR",
    "Override",
    "apply_overrides",
    "key_for_variable",
    "override_of",
    "overrides_from",
    "variable_for_key",
]

#: Environment variables that start with this override configuration keys.
ENV_PREFIX = "ACTORPROXY__"
#: What separates the parts of a key path in a variable's name.
ENV_SEPARATOR = "__"


@attrs.frozen
class Override:
    """One environment variable's override: the key path it sets, and the value."""

    variable: str
    parts: tuple[str, ...]
    value: Any


def overrides_from(env: Mapping[str, str], prefix: str = ENV_PREFIX) -> list[Override]:
    """The overrides among `env`'s variables, sorted by variable name.

    Raises:
        ConfigError: a variable names an empty key part (`ACTORPROXY__A____B`).
    """
    return [
        override_of(variable, env[variable], prefix=prefix)
        for variable in sorted(name for name in env if name.startswith(prefix))
    ]


def override_of(variable: str, text: str, *, origin: str | None = None, prefix: str = ENV_PREFIX) -> Override:
    """The override a variable named `variable` (starting with `prefix`) with the value `text` makes.

    Args:
        origin: how messages name the variable (default: its name).

    Raises:
        ConfigError: the name has an empty key path part.
    """
    parts = tuple(part.lower() for part in variable[len(prefix) :].split(ENV_SEPARATOR))
    if not all(parts):
        raise ConfigError([Problem("", f"{origin or variable}: a key path part is empty")])
    return Override(origin or variable, parts, parse_scalar(text))


def variable_for_key(key: str) -> str:
    """The variable that overrides the dot path `key`: `services.0.name` -> `ACTORPROXY__SERVICES__0__NAME`.

    Raises:
        ValueError: `key` has an empty part, or a part that cannot be in a variable name.
    """
    parts = key.split(".")
    if not all(part and part.replace("_", "").replace("-", "").isalnum() for part in parts):
        raise ValueError(f"{key!r} is not a dot path of key names (letters, digits, '_')")
    if any("-" in part for part in parts):
        raise ValueError(f"{key!r}: a variable name cannot hold '-'; name the list item by its position")
    return ENV_PREFIX + ENV_SEPARATOR.join(part.upper() for part in parts)


def key_for_variable(variable: str) -> str | None:
    """The dot path an `ACTORPROXY__...` variable overrides (lower case); None for any other variable."""
    if not variable.startswith(ENV_PREFIX):
        return None
    return ".".join(part.lower() for part in variable[len(ENV_PREFIX) :].split(ENV_SEPARATOR))


def apply_overrides(data: dict[Any, Any], overrides: list[Override]) -> dict[str, str]:
    """Apply `overrides` to `data` (plain dicts and lists, changed in place).

    Returns:
        Which variable set each key path (`"services[0].name"`), for error messages.

    Raises:
        ConfigError: paths that run into a value that is neither a mapping nor a list, or into a list
            without such an item (every one; each names its variable).
    """
    origins = {}
    problems: list[Problem] = []
    for override in overrides:
        try:
            origins[_apply(data, override)] = override.variable
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)
    return origins


def _apply(data: dict[Any, Any], override: Override) -> str:
    node: Any = data
    path = ""
    for depth, part in enumerate(override.parts):
        last = depth == len(override.parts) - 1
        if isinstance(node, dict):
            key = next((key for key in node if str(key).lower() == part), part)
            path = f"{path}.{key}" if path else str(key)
            if last:
                node[key] = override.value
            elif node.get(key) is None:
                node[key] = node = {}
            else:
                node = node[key]
        elif isinstance(node, list):
            index = _pick(node, part)
            if index is None:
                _fail(
                    override,
                    path,
                    f"no item {part!r} in this list of {len(node)} (an override cannot add one)",
                )
            path = f"{path}[{index}]"
            if last:
                node[index] = override.value
            else:
                node = node[index]
        else:
            _fail(override, path, f"is {node!r}, not a mapping or a list, so it has no key {part!r}")
    return path


def _pick(items: list[Any], part: str) -> int | None:
    if part.isdigit():
        return int(part) if int(part) < len(items) else None
    for index, item in enumerate(items):
        if isinstance(item, dict) and str(item.get("name", "")).lower() == part:
            return index
    return None


def _fail(override: Override, path: str, reason: str) -> NoReturn:
    raise ConfigError([Problem(path, f"{reason} (from {override.variable})")])
