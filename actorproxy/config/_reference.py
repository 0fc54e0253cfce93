"""The key reference of `docs/configuration.md`, written from the record classes (a test keeps it current)."""

from __future__ import annotations

import json
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._checks import DOC, Check
from ._schema import default_of
from ._server import ServerConf

__all__ = ["reference_markdown"]


def reference_markdown() -> str:
    """One Markdown table per section (key, type, default, meaning), each after the section holding it."""
    sections: dict[type[Any], list[str]] = {}
    _collect(ServerConf, "", sections)
    return "\n".join(_table(cl, paths) for cl, paths in sections.items())


def _collect(cl: type[Any], path: str, sections: dict[type[Any], list[str]]) -> None:
    """Record `cl` as found at `path`, then the sections inside it, depth first."""
    if cl in sections:
        sections[cl].append(path)
        return
    sections[cl] = [path]
    for field in attrs.fields(cl):
        for inner, suffix in _records_in(field.type):
            _collect(inner, f"{path}.{field.name}{suffix}" if path else f"{field.name}{suffix}", sections)


def _records_in(tp: Any) -> list[tuple[type[Any], str]]:
    if attrs.has(tp):
        return [(tp, "")]
    args = typing.get_args(tp)
    if typing.get_origin(tp) is tuple:
        return [(inner, f"[]{suffix}") for inner, suffix in _records_in(args[0])]
    return [found for arg in args for found in _records_in(arg)] if _is_union(tp) else []


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def _table(cl: type[Any], paths: list[str]) -> str:
    summary = (cl.__doc__ or "").strip().splitlines()[0]
    title = ", ".join(f"`{path}`" if path else "Top level" for path in paths)
    lines = [
        f"### {title}",
        "",
        summary,
        "",
        "| key | type | default | meaning |",
        "| --- | --- | --- | --- |",
    ]
    extra: str | None = getattr(cl, "__extra__", None)
    for field in attrs.fields(cl):
        if field.name == extra:
            continue
        check = field.validator if isinstance(field.validator, Check) else None
        default = "required" if field.default is attrs.NOTHING else f"`{json.dumps(default_of(field))}`"
        lines.append(f"| `{field.name}` | {_words(field.type, check)} | {default} | {field.metadata[DOC]} |")
    options: tuple[str, ...] = getattr(cl, "__one_of__", ())
    if options:
        lines += ["", "Exactly one of " + ", ".join(f"`{name}`" for name in options) + " is given."]
    shorthand: str | None = getattr(cl, "__shorthand__", None)
    if shorthand:
        lines += ["", f"A bare string stands for `{{{shorthand}: <string>}}`."]
    return "\n".join(lines) + "\n"


def _words(tp: Any, check: Check | None) -> str:
    qualifier = f" {check.qualifier}" if check is not None and check.qualifier else ""
    args = typing.get_args(tp)
    if _is_union(tp):
        (inner,) = [arg for arg in args if arg is not type(None)]
        return f"{_words(inner, check)} or null"
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(f"`{arg}`" for arg in args)
    if origin is tuple:
        return f"list of {_words(args[0], None).replace(' or ', '/')}"
    if origin is not None and issubclass(origin, Mapping):
        return f"mapping of {_words(args[0], None)} to {_words(args[1], None)}"
    if attrs.has(tp):
        return "string or mapping" if getattr(tp, "__shorthand__", None) else "mapping"
    if tp is str and qualifier:
        return f"string ({qualifier.strip()})"
    return {bool: "bool", int: "int", float: "number", str: "string"}[tp] + qualifier
