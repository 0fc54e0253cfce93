"""Reading YAML: Pingora's file format, with the mistakes PyYAML lets pass turned into errors.

Rules:
- A syntax error names the source, the line and the column (1-based).
- A key given twice in one mapping is an error (PyYAML would keep the last silently).
- Dates stay strings: no setting is a date, and `2024-01-01` as a user name should not change type.
"""

from __future__ import annotations

from typing import Any

import yaml

from ._error import ConfigError, Problem

__all__ = ["parse_scalar", "parse_yaml"]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate keys and reads dates as strings."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != _TIMESTAMP]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, yaml.Node] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: let SafeLoader report it
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (first at line {first.start_mark.line + 1})",
                    key_node.start_mark,
                )
            seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def parse_yaml(text: str, source: str | None = None) -> Any:
    """Parse one YAML document.

    Raises:
        ConfigError: a syntax error or a duplicate key, with its line and column.
    """
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
        what = " ".join(part for part in (exc.context, exc.problem) if part) or "not valid YAML"
        raise ConfigError([Problem("", f"{where}{what}")], source) from None
    except yaml.YAMLError as exc:
        raise ConfigError([Problem("", f"not valid YAML: {exc}")], source) from None


def parse_scalar(text: str) -> Any:
    """Read an environment value as YAML: `4` an int, `true` a bool, `[a, b]` a list, anything else text."""
    try:
        value = yaml.load(text, Loader=_Loader)  # a SafeLoader subclass
    except yaml.YAMLError:
        return text
    if isinstance(value, (dict, list)) and not text.lstrip().startswith(("[", "{")):
        # `a: b` or `- a` in a variable is more likely text with a colon or dash than a block collection.
        return text
    return value
