"""The rules a configuration value follows, written once and used three ways.

A `Check` is an attrs validator (direct construction), a structuring step (loading, where cattrs adds the key
path) and a source of JSON Schema keywords (`json_schema()`). Cross-field rules live in each class's
`_problems()` and run from `__attrs_post_init__`, so both ways of building a record enforce them.

Rules:
- A reason never repeats the key path: the caller knows where it is.
- A type mismatch and a failed check read alike (`expected an int >= 1, got 'four'`), so the user learns the
  whole rule from either.
"""

from __future__ import annotations

import difflib
import math
import types
import typing
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal, Protocol

import attrs

from ._error import ConfigError, Problem

__all__ = [
    "DOC",
    "DUMP",
    "Check",
    "Invalid",
    "TypeMismatch",
    "Where",
    "at_least",
    "between",
    "check_class",
    "describe",
    "did_you_mean",
    "doc",
    "each",
    "each_item",
    "equal_to",
    "greater_than",
    "mismatch",
    "non_empty",
    "parsed_by",
]

#: Field metadata key: the field's one-line meaning (read by the schema and reference generators).
DOC = "doc"
#: Field metadata key: a function that writes the field's value back (the octal spelling of a file mode).
DUMP = "dump"

# difflib's ratio above which an unknown name is taken for a typo of a known one ("thread" -> "threads").
DID_YOU_MEAN_CUTOFF = 0.8


def doc(text: str) -> dict[str, str]:
    """Field metadata holding the field's meaning."""
    return {DOC: text}


def did_you_mean(word: object, known: Iterable[str]) -> str | None:
    """The known name `word` is most likely a typo of, if any."""
    matches = difflib.get_close_matches(str(word), list(known), n=1, cutoff=DID_YOU_MEAN_CUTOFF)
    return matches[0] if matches else None


class Invalid(ValueError):
    """A value is refused while structuring; `reason` says why, without the key path (cattrs adds it)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TypeMismatch(Invalid):
    """A value of the wrong type; the field that holds it rewords the reason with its own rule."""

    def __init__(self, value: object, tp: Any) -> None:
        super().__init__(mismatch(value, tp))
        self.value = value


def mismatch(value: object, tp: Any, qualifier: str = "") -> str:
    """`expected <what tp is>, got <value>`, with a hint for an unquoted YAML scalar where text is due."""
    hint = ""
    if _accepts_str(tp) and isinstance(value, (bool, int, float)):
        hint = " (quote it in YAML to make it a string)"
    return f"expected {describe(tp, qualifier)}, got {value!r}{hint}"


def _accepts_str(tp: Any) -> bool:
    return tp is str or any(arg is str for arg in typing.get_args(tp) if _is_union(tp))


def _is_union(tp: Any) -> bool:
    return typing.get_origin(tp) in (typing.Union, types.UnionType)


def describe(tp: Any, qualifier: str = "") -> str:
    """What a value of type `tp` looks like, in words: `an int >= 1 or null`."""
    if _is_union(tp):
        args = typing.get_args(tp)
        rest = [arg for arg in args if arg is not type(None)]
        text = " or ".join(describe(arg, qualifier) for arg in rest)
        return f"{text} or null" if len(rest) < len(args) else text
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(str(arg) for arg in typing.get_args(tp))
    if origin is tuple:
        noun = "a list"
    elif origin is not None and issubclass(origin, Mapping):
        noun = "a mapping"
    elif attrs.has(tp):
        noun = "a string or a mapping" if getattr(tp, "__shorthand__", None) else "a mapping"
    elif tp is str and qualifier:
        # A string's qualifier names its form: "a string (host:port)".
        return f"a string ({qualifier})"
    else:
        noun = {bool: "a bool", int: "an int", float: "a number", str: "a string"}.get(tp, "a value")
    return f"{noun} {qualifier}" if qualifier else noun


# -- field checks --------------------------------------------------------------------------------------------

#: Where a failure is: None for the value itself, an index or key for one of its items.
Where = int | str | None


class _Rule(Protocol):
    def __call__(self, value: Any, /) -> Iterator[tuple[Where, str]]: ...


@attrs.frozen
class Check:
    """A rule for one field's value (None, for an optional field, is never checked).

    Build one with `at_least`, `greater_than`, `between`, `equal_to`, `parsed_by`, `non_empty`, `each` or
    `each_item`.
    """

    #: Words after the type's noun in a refusal: `>= 1` makes `expected an int >= 1, got 0`.
    qualifier: str
    #: Yields (where, reason) for each failure; an empty reason means "does not follow `qualifier`".
    rule: _Rule
    #: JSON Schema keywords for the value (for a list or mapping: keywords of the container).
    schema: Mapping[str, Any] = attrs.field(factory=dict)
    #: JSON Schema keywords for each item of a list or mapping.
    item_schema: Mapping[str, Any] = attrs.field(factory=dict)
    #: JSON Schema of extra forms the raw value may take before `coerce` (e.g. an octal string).
    alternative_schema: Mapping[str, Any] | None = None
    #: Turns an alternative raw form into the field's type before it is structured.
    coerce: Callable[[Any], Any] | None = None

    def failures(self, value: Any, tp: Any, shown: Any = None) -> list[tuple[Where, str]]:
        """Each (where, reason) the value breaks, in full words; a reason quotes `shown` if given."""
        if value is None:
            return []
        quoted = value if shown is None else shown
        return [(where, reason or mismatch(quoted, tp, self.qualifier)) for where, reason in self.rule(value)]

    def __call__(self, instance: object, attribute: attrs.Attribute[Any], value: Any) -> None:
        """Run as an attrs validator: raise a `ConfigError` naming the field."""
        problems = [
            Problem(attribute.name + _suffix(where), reason)
            for where, reason in self.failures(value, attribute.type)
        ]
        if problems:
            raise ConfigError(problems)


def _suffix(where: Where) -> str:
    return "" if where is None else f"[{where!r}]"


def _comparison(qualifier: str, ok: Callable[[Any], bool], **schema: Any) -> Check:
    def rule(value: Any) -> Iterator[tuple[Where, str]]:
        try:
            # `not ok` also refuses NaN, which compares false with everything.
            good = not (isinstance(value, float) and math.isnan(value)) and ok(value)
        except TypeError:  # a value of another type, given to a constructor directly
            good = False
        if not good:
            yield None, ""

    return Check(qualifier, rule, schema)


def at_least(low: float) -> Check:
    """The value is >= `low`."""
    return _comparison(f">= {low:g}", lambda v: v >= low, minimum=low)


def greater_than(low: float) -> Check:
    """The value is > `low`."""
    return _comparison(f"> {low:g}", lambda v: v > low, exclusiveMinimum=low)


def between(low: float, high: float) -> Check:
    """The value is in `low..high` (both included)."""
    return _comparison(f"in {low:g}..{high:g}", lambda v: low <= v <= high, minimum=low, maximum=high)


def equal_to(expected: object) -> Check:
    """The value is `expected` (a format version, say)."""
    return _comparison(f"equal to {expected!r}", lambda v: v == expected, const=expected)


def parsed_by(parse: Callable[[Any], object], qualifier: str = "", **schema: Any) -> Check:
    """The value is accepted by `parse`, which raises `ValueError(reason)` otherwise."""

    def rule(value: Any) -> Iterator[tuple[Where, str]]:
        try:
            parse(value)
        except ValueError as exc:
            yield None, str(exc)

    return Check(qualifier, rule, schema)


def non_empty(item: str) -> Check:
    """A list holds at least one item (`item` names what, for the reason)."""

    def rule(value: Sequence[Any]) -> Iterator[tuple[Where, str]]:
        if not value:
            yield None, f"expected at least one {item}"

    return Check("", rule, {"minItems": 1})


def each(check: Check) -> Check:
    """Every item of a list follows `check`."""

    def rule(value: Sequence[Any]) -> Iterator[tuple[Where, str]]:
        for index, item in enumerate(value):
            for _, reason in check.rule(item):
                yield index, reason or f"expected {check.qualifier}, got {item!r}"

    return Check("", rule, {}, dict(check.schema))


def each_item(keys: Check | None = None, values: Check | None = None) -> Check:
    """Every key and value of a mapping follows its check."""

    checks = [(0, check) for check in (keys,) if check is not None]
    checks += [(1, check) for check in (values,) if check is not None]

    def rule(value: Mapping[str, Any]) -> Iterator[tuple[Where, str]]:
        for pair in value.items():
            for side, check in checks:
                for _, reason in check.rule(pair[side]):
                    yield pair[0], reason or f"expected {check.qualifier}, got {pair[side]!r}"

    schema = {"propertyNames": dict(keys.schema)} if keys is not None and keys.schema else {}
    return Check("", rule, schema, dict(values.schema) if values is not None else {})


# -- class checks --------------------------------------------------------------------------------------------


def check_class(record: object) -> None:
    """Run a record's cross-field rules; raise a `ConfigError` (paths relative to the record) if any fail.

    A class lists in `__one_of__` the fields of which exactly one must be set, and yields further
    (relative path, reason) pairs from `_problems()`.
    """
    problems: list[Problem] = []
    one_of: tuple[str, ...] = getattr(record, "__one_of__", ())
    if one_of:
        present = [name for name in one_of if getattr(record, name) is not None]
        if len(present) != 1:
            got = " and ".join(present) if present else "none"
            problems.append(Problem("", f"expected exactly one of {', '.join(one_of)}, got {got}"))
    more: Callable[[], Iterator[tuple[str, str]]] | None = getattr(record, "_problems", None)
    if more is not None:
        problems.extend(Problem(path, reason) for path, reason in more())
    if problems:
        raise ConfigError(problems)
