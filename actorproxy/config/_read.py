"""Reading a configuration: a file's text, then plain data into a record with its settings and overrides.

The order is Pingora's file, then the settings file's `ACTORPROXY__...` entries, then the environment's
`ACTORPROXY__...` variables, then `${secret:...}` and `${env:...}` references are resolved, then validation;
so a bad value from any source is reported the same way, with its key path (and, for an override, the
variable's name). The settings section itself (where the settings file and key are) comes from the file and
the environment only.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Collection, Mapping
from typing import Any, Generic, TypeVar

import attrs

from actorproxy.settings import SettingsError, SettingsFile

from ._checks import did_you_mean
from ._converter import structure
from ._env import ENV_PREFIX, Override, apply_overrides, override_of, overrides_from
from ._error import ConfigError, ConfigWarning, Problem
from ._frozen import thaw
from ._references import Reference, ValueSource, resolve_references
from ._settings import SettingsPlace, settings_place

__all__ = ["Loaded", "read_record", "read_text", "record_from_mapping"]

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


@attrs.frozen(eq=False)
class Loaded(Generic[T]):
    """A record and where each of its values came from (what `actorproxy settings tree` shows)."""

    record: T
    #: The file's own data, before overrides and references.
    file_data: Mapping[str, Any]
    #: Key paths set by an override, and the override (`ACTORPROXY__X in the settings file ...`).
    settings_origins: Mapping[str, str]
    env_origins: Mapping[str, str]
    #: Key paths whose value holds references, and the references.
    references: Mapping[str, list[Reference]]
    #: Where the settings file and key are.
    place: SettingsPlace | None


def record_from_mapping(
    data: object,
    cl: type[T],
    *,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
    not_typos: Collection[str] = (),
    settings_section: str | None = None,
) -> T:
    """Build a `cl` record from the parsed file (None: an empty file); see `read_record`."""
    return read_record(
        data, cl, env=env, source=source, not_typos=not_typos, settings_section=settings_section
    ).record


def read_record(
    data: object,
    cl: type[T],
    *,
    env: Mapping[str, str] | None = None,
    source: str | None = None,
    not_typos: Collection[str] = (),
    settings_section: str | None = None,
    settings_file: SettingsFile | None = None,
) -> Loaded[T]:
    """Build a `cl` record from the parsed file (None: an empty file), with the settings and overrides applied
    and references resolved (see the module's order).

    Args:
        env: the environment's overrides (None: none); references read `env`, or the process's environment
            when it is None.
        source: the file the data came from (names it in errors; the settings file is found beside it).
        not_typos: unknown top-level keys not to warn about as near misses of known ones.
        settings_section: the top-level key of the settings section (`settings`); None: no settings file.
        settings_file: the settings file's content, instead of the file the section names (to check a
            change before it is written).

    An unknown key close to a known one is warned about (`ConfigWarning`) unless it is in `not_typos`.
    """
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        problem = Problem("", f"expected a mapping of settings at the top level, got {type(data).__name__}")
        raise ConfigError([problem], source)
    settings: dict[Any, Any] = thaw(data)
    file_data = thaw(data)
    env_overrides = overrides_from(env) if env is not None else []
    conf_file = source if source is not None and os.path.isfile(source) else None
    place = None
    values = None
    if settings_section is not None:
        section = _section(settings, settings_section, env_overrides)
        place = settings_place(section, conf_file)
        try:
            values = ValueSource(os.environ if env is None else env, place, settings_file)
        except SettingsError as exc:
            raise ConfigError([Problem(settings_section, str(exc))], source) from None
    try:
        settings_origins = (
            apply_overrides(settings, _settings_overrides(values, settings_section))
            if values is not None and settings_section is not None
            else {}
        )
        env_origins = apply_overrides(settings, env_overrides)
        if values is None:
            values = ValueSource(os.environ if env is None else env, SettingsPlace(None, None))
        references = resolve_references(settings, values)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source) from None
    origins = {**settings_origins, **env_origins}
    _warn_about_near_misses(settings, cl, origins, source, not_typos)
    try:
        record = structure(settings, cl)
    except ConfigError as exc:
        raise ConfigError([_with_origin(problem, origins) for problem in exc.problems], source) from None
    return Loaded(record, file_data, settings_origins, env_origins, references, place)


def _section(data: Mapping[Any, Any], key: str, overrides: list[Override]) -> object:
    """The section `key` of `data` with the environment's overrides of it applied (to a copy)."""
    copied = {key: copy.deepcopy(data.get(key))}
    # A bad override is reported when the overrides are applied to the whole configuration.
    with contextlib.suppress(ConfigError):
        apply_overrides(copied, [o for o in overrides if o.parts[0] == key])
    return copied[key]


def _settings_overrides(values: ValueSource, section: str) -> list[Override]:
    """The settings file's `ACTORPROXY__...` entries, decrypted, as overrides (sorted by name)."""
    settings = values.settings
    if settings is None:
        return []
    overrides = []
    problems = []
    for name in sorted(name for name in settings.values() if name.startswith(ENV_PREFIX)):
        origin = f"{name} in {settings.path}"
        try:
            found = values.from_settings(name)
            assert found is not None  # the name was just listed
            origin += ", encrypted" if found[1] else ""
            override = override_of(name, found[0], origin=origin)
        except SettingsError as exc:
            problems.append(Problem("", f"{origin}: {exc}"))
            continue
        if override.parts[0] == section:
            problems.append(Problem(section, f"{origin}: the settings file cannot change where it is"))
            continue
        overrides.append(override)
    if problems:
        raise ConfigError(problems)
    return overrides


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
            warnings.warn(message, ConfigWarning, stacklevel=5)


def _with_origin(problem: Problem, origins: Mapping[str, str]) -> Problem:
    # The longest path an override set that holds the problem's path (an override may set a whole list).
    for path in sorted(origins, key=len, reverse=True):
        if problem.path == path or problem.path.startswith((f"{path}.", f"{path}[")):
            return Problem(problem.path, f"{problem.reason} (from {origins[path]})")
    return problem
