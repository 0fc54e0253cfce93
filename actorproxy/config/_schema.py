"""The JSON Schema of the configuration file, derived from the record classes.

Types, defaults, meanings, ranges and patterns come from the fields and their `Check`s, so the schema follows
the classes. Rules that relate several values (unique names, a route's upstream existing, a DNS port that
depends on the record type) are enforced by the loader only.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Mapping
from typing import Any, Literal

import attrs

from ._checks import DOC, Check
from ._converter import unstructure
from ._frozen import thaw
from ._server import ServerConf

__all__ = ["SCHEMA_DIALECT", "default_of", "json_schema"]

#: The JSON Schema version the generated schema is written in.
SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

_SCALARS = {bool: "boolean", int: "integer", float: "number", str: "string"}


def json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a configuration file, as a JSON-ready dict."""
    definitions: dict[str, Any] = {}
    root = _record(ServerConf, definitions)
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "actorproxy configuration",
        **root,
        "$defs": dict(sorted(definitions.items())),
    }


def _record(cl: type[Any], definitions: dict[str, Any]) -> dict[str, Any]:
    extra: str | None = getattr(cl, "__extra__", None)
    properties: dict[str, Any] = {}
    required = []
    for field in attrs.fields(cl):
        if field.name == extra:
            continue
        check = field.validator if isinstance(field.validator, Check) else None
        schema = {"description": field.metadata[DOC], **_type(field.type, check, definitions)}
        if field.default is attrs.NOTHING:
            required.append(field.name)
        else:
            schema["default"] = default_of(field)
        properties[field.name] = schema
    summary = (cl.__doc__ or "").strip().splitlines()[0]
    if extra is not None:
        summary += " Keys not listed here are kept as user-defined settings."
    record: dict[str, Any] = {"type": "object", "description": summary, "properties": properties}
    if required:
        record["required"] = required
    options: tuple[str, ...] = getattr(cl, "__one_of__", ())
    if options:
        record["oneOf"] = [_option(cl, name, options) for name in options]
    record["additionalProperties"] = extra is not None
    return record


def _option(cl: type[Any], name: str, options: tuple[str, ...]) -> dict[str, Any]:
    """The branch of `oneOf` where `name` is the option given: the others are absent or null."""
    others: dict[str, Any] = {other: {"type": "null"} for other in options if other != name}
    if not any(map(attrs.has, typing.get_args(attrs.fields_dict(cl)[name].type))):
        # Only a record option given alone may be null (it then takes its defaults).
        others = {name: {"not": {"type": "null"}}, **others}
    return {"required": [name], "properties": others}


def _type(tp: Any, check: Check | None, definitions: dict[str, Any]) -> dict[str, Any]:
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in args if arg is not type(None)]
        return {"anyOf": [_type(inner, check, definitions), {"type": "null"}]}
    keywords = dict(check.schema) if check is not None else {}
    items = dict(check.item_schema) if check is not None else {}
    origin = typing.get_origin(tp)
    if origin is Literal:
        schema: dict[str, Any] = {"enum": list(args)}
    elif origin is tuple:
        schema = {"type": "array", "items": {**_type(args[0], None, definitions), **items}, **keywords}
    elif origin is not None and issubclass(origin, Mapping):
        schema = {
            "type": "object",
            "additionalProperties": {**_type(args[1], None, definitions), **items},
            **keywords,
        }
    elif attrs.has(tp):
        schema = _reference(tp, definitions)
    else:
        schema = {"type": _SCALARS[tp], **keywords}
    if check is not None and check.alternative_schema is not None:
        schema = {"anyOf": [schema, dict(check.alternative_schema)]}
    return schema


def _reference(cl: type[Any], definitions: dict[str, Any]) -> dict[str, Any]:
    if cl.__name__ not in definitions:
        definitions[cl.__name__] = {}  # claimed first: a record may (one day) hold itself
        definitions[cl.__name__] = _record(cl, definitions)
    reference = {"$ref": f"#/$defs/{cl.__name__}"}
    shorthand: str | None = getattr(cl, "__shorthand__", None)
    if shorthand is None:
        return reference
    field = attrs.fields_dict(cl)[shorthand]
    check = field.validator if isinstance(field.validator, Check) else None
    return {"anyOf": [_type(field.type, check, definitions), reference]}


def default_of(field: attrs.Attribute[Any]) -> Any:
    """The default as plain data; a record whose fields all keep their defaults is written `{}`."""
    default: Any = field.default
    value = default.factory() if isinstance(default, attrs.Factory) else default  # type: ignore[arg-type]
    if attrs.has(type(value)):
        return {} if value == type(value)() else unstructure(value)
    return thaw(value)
