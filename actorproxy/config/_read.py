"""Reading a configuration: a file's text, then plain data into a record with the environment's overrides.

The order is Pingora's file, then `ACTORPROXY__...` variables, then validation, so a bad value from either
source is reported the same way, with its key path (and, for a variable, the variable's name).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Collection, Mapping
from typing import Any, TypeVar

import attrs

from ._checks import did_you_mean
from ._converter import structure
from ._env import apply_overrides, overrides_from
from ._error import ConfigError, ConfigWarning, Problem
from ._frozen import thaw

__all__ = ["read_text", "record_from_mapping"]

T = TypeVar("T")


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of a configuration file.

    Raises:
        ConfigError: it cannot be read, or is not UTF-8.
    """
    try:
        with open(path, encoding="utf-8") as file:
            return file.read()
    except OSError as exc:
        raise ConfigError(
            [Problem("", f"cannot read the file: {exc.strerror or exc}")], os.fspath(path)
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError(
            [Problem("", f"not UTF-8 text ({exc.reason} at byte {exc.start})")], os.fspath(path)
        ) from exc


def record_from_mapping(
    data: object,
    cl: type[T],
    *,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
    not_typos: Collection[str] = (),
) -> T:
    """Build a `cl` record from the parsed file (None: an empty file), with `env`'s overrides applied.

    An unknown key close to a known one is warned about (`ConfigWarning`) unless it is in `not_typos`.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problem = Problem("", f"expected a mapping of settings at the top level, got {type(data).__name__}")
        raise ConfigError([problem], source)
    settings: dict[Any, Any] = thaw(data)
    origins: dict[str, str] = {}
    if env is not None:
        try:
            origins = apply_overrides(settings, overrides_from(env))
        except ConfigError as exc:
            raise ConfigError(exc.problems, source) from None
    _warn_about_near_misses(settings, cl, origins, source, not_typos)
    try:
        return structure(settings, cl)
    except ConfigError as exc:
        raise ConfigError([_with_origin(problem, origins) for problem in exc.problems], source) from None


def _warn_about_near_misses(
    settings: Mapping[Any, Any],
    cl: type[Any],
    origins: Mapping[str, str],
    source: str | None,
    not_typos: Collection[str],
) -> None:
    extra = getattr(cl, "__extra__", None)
    known = [field.name for field in attrs.fields(cl) if field.name != extra]
    for key in settings:
        if key in known or key in not_typos:
            continue
        guess = did_you_mean(key, known)
        if guess is not None:
            where = f"{source}: " if source else ""
            variable = f" (from {origins[str(key)]})" if str(key) in origins else ""
            message = f"{where}unknown key {key!r} (did you mean {guess!r}?){variable}; it is kept in extra"
            warnings.warn(message, ConfigWarning, stacklevel=4)


def _with_origin(problem: Problem, origins: Mapping[str, str]) -> Problem:
    # The longest path an override set that holds the problem's path (an override may set a whole list).
    for path in sorted(origins, key=len, reverse=True):
        if problem.path == path or problem.path.startswith((f"{path}.", f"{path}[")):
            return Problem(problem.path, f"{problem.reason} (from {origins[path]})")
    return problem
