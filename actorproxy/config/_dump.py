"""Writing a configuration back: plain data, YAML (what `-t` prints) and TOML.

Every dump is redacted: the value of a secret (`${secret:...}`, an encrypted setting) is written `••••`, so
the effective configuration can be printed, logged or served without giving a secret away.
"""

from __future__ import annotations

from typing import Any

import tomli_w
import yaml

from actorproxy.settings import redact_data

from ._converter import unstructure

__all__ = ["to_mapping", "to_toml", "to_yaml"]


def to_mapping(record: object) -> dict[str, Any]:
    """Plain data for a record: dicts, lists and scalars, every default included, secrets redacted."""
    data: dict[str, Any] = redact_data(unstructure(record))
    return data


def to_yaml(record: object) -> str:
    """YAML for a record, in the fields' order."""
    return yaml.safe_dump(to_mapping(record), sort_keys=False, allow_unicode=True)


def to_toml(record: object) -> str:
    """TOML for a record; null values are left out, as TOML has no null."""
    return tomli_w.dumps(_without_nulls(to_mapping(record)))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _without_nulls(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_without_nulls(item) for item in value if item is not None]
    return value
