"""Where each value of the effective configuration came from, and which values differ between two.

`explain_conf` is what `actorproxy settings tree` prints: every leaf of the effective configuration
(redacted), marked `default`, `file`, `settings file (NAME)` or `environment (NAME)`, with the references it
was resolved from. `changed_paths` compares two configurations value by value (secrets included, never
printed), for the command that changes a setting to say what changed. `effective_config` is the redacted
plain data an admin endpoint may serve.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from actorproxy.settings import REDACTED, SettingsFile

from ._converter import unstructure
from ._dump import to_mapping
from ._env import apply_overrides, overrides_from
from ._frozen import thaw
from ._read import Loaded, read_record, read_text
from ._references import Reference
from ._server import PINGORA_RUNTIME_KEYS, ServerConf
from ._settings import SettingsPlace, settings_place
from ._yaml import parse_yaml

__all__ = [
    "Leaf",
    "changed_paths",
    "effective_config",
    "explain_conf",
    "find_settings",
    "format_path",
    "load_explained",
]

Part = str | int


@attrs.frozen
class Leaf:
    """One value of the effective configuration and where it came from."""

    #: The key path as errors write it: `services[0].listeners[0].address`.
    path: str
    #: The parts of the path: field names and list positions.
    parts: tuple[Part, ...]
    #: The value, redacted.
    value: Any
    #: `default`, `file`, `settings file (ACTORPROXY__X in PATH)` or `environment (ACTORPROXY__X)`.
    origin: str
    #: The `${...}` references the value was resolved from.
    references: tuple[Reference, ...] = ()

    @property
    def secret(self) -> bool:
        """Whether the value holds a secret (it is shown redacted)."""
        redacted = isinstance(self.value, str) and REDACTED in self.value
        return redacted or any(reference.secret for reference in self.references)


def effective_config(conf: ServerConf) -> dict[str, Any]:
    """The effective configuration as plain data, every default included and every secret written `••••`."""
    return to_mapping(conf)


def load_explained(
    path: str | os.PathLike[str],
    *,
    env: Mapping[str, str] = os.environ,
    settings_file: SettingsFile | None = None,
) -> Loaded[ServerConf]:
    """`load_conf` that also says where each value came from.

    Args:
        settings_file: the settings file's content to use instead of the file on disk (to check a change
            before it is written).

    Raises:
        ConfigError: as `load_conf`.
    """
    source = os.fspath(path)
    return read_record(
        parse_yaml(read_text(source), source),
        ServerConf,
        env=env,
        source=source,
        not_typos=PINGORA_RUNTIME_KEYS,
        settings_section="settings",
        settings_file=settings_file,
    )


def find_settings(path: str | os.PathLike[str], *, env: Mapping[str, str] = os.environ) -> SettingsPlace:
    """Where the settings file and key of the configuration file at `path` are (its `settings` section, with
    the environment's overrides), without resolving anything else.

    Raises:
        ConfigError: the file cannot be read or is not valid YAML.
    """
    source = os.fspath(path)
    data = parse_yaml(read_text(source), source)
    section = data.get("settings") if isinstance(data, Mapping) else None
    copied = {"settings": thaw(section)}
    overrides = [override for override in overrides_from(env) if override.parts[0] == "settings"]
    apply_overrides(copied, overrides)
    return settings_place(copied["settings"], source)


def explain_conf(loaded: Loaded[ServerConf]) -> list[Leaf]:
    """Every leaf of the effective configuration of `loaded`, in the fields' order, with its origin."""
    leaves = []
    for parts, value in _leaves(to_mapping(loaded.record), ()):
        path = format_path(parts)
        leaves.append(
            Leaf(path, parts, value, _origin(loaded, path, parts), tuple(loaded.references.get(path, ())))
        )
    return leaves


def changed_paths(old: ServerConf, new: ServerConf) -> list[str]:
    """The key paths whose values differ between `old` and `new` (a list whose length changed is one path)."""
    return [format_path(parts) for parts in _differences(unstructure(old), unstructure(new), ())]


def format_path(parts: tuple[Part, ...]) -> str:
    """`services[0].name` for `("services", 0, "name")`."""
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _leaves(node: Any, parts: tuple[Part, ...]) -> Iterator[tuple[tuple[Part, ...], Any]]:
    if isinstance(node, dict) and node:
        for key, value in node.items():
            yield from _leaves(value, (*parts, str(key)))
    elif isinstance(node, list) and node:
        for index, value in enumerate(node):
            yield from _leaves(value, (*parts, index))
    else:
        yield parts, node


def _differences(old: Any, new: Any, parts: tuple[Part, ...]) -> Iterator[tuple[Part, ...]]:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(key for key in new if key not in old)]:
            yield from _differences(old.get(key), new.get(key), (*parts, str(key)))
    elif isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for index, (before, after) in enumerate(zip(old, new, strict=True)):
            yield from _differences(before, after, (*parts, index))
    elif old != new:
        yield parts


def _origin(loaded: Loaded[ServerConf], path: str, parts: tuple[Part, ...]) -> str:
    for origins, label in ((loaded.env_origins, "environment"), (loaded.settings_origins, "settings file")):
        for set_path in sorted(origins, key=len, reverse=True):
            if path == set_path or path.startswith((f"{set_path}.", f"{set_path}[")):
                return f"{label} ({origins[set_path]})"
    return "file" if _in_file(loaded.file_data, parts) else "default"


def _in_file(data: Any, parts: tuple[Part, ...]) -> bool:
    node = data
    for part in parts:
        if isinstance(node, Mapping) and part in node:  # noqa: SIM114 - apart, mypy narrows each index
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and part < len(node):
            node = node[part]
        else:
            # A scalar where the record has a section is a shorthand the file wrote (`- "host:port"`).
            return node is not None and not isinstance(node, (Mapping, list))
    return True
