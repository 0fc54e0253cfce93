"""Plain data to records and back: one cattrs converter, strict about types, detailed about errors.

Rules:
- Strict scalars: YAML already typed them, so `"4"` is not an int, `1` is not a bool and `4.5` is not an
  int; a list is never a string taken apart character by character.
- cattrs' detailed validation finds every bad value of one pass; `cattrs.v.transform_error` turns its
  exception groups into key paths. A field's `Check` runs as part of structuring that field, so its failure
  carries the path like a type error does; a record's cross-field rules (raised by its constructor) are
  given their paths here.
- A value that was one `${...}` reference (`Resolved`) is typed by its field: a string field takes its text,
  any other reads the text as YAML, as an environment override is read.
- Records reject keys they do not know (with a "did you mean"), except the one that declares `__extra__`,
  which keeps them. `__shorthand__` names the field a bare string stands for; in a class with `__one_of__`,
  an option given alone as `key:` with nothing after it means that option with its defaults.
"""

from __future__ import annotations

import collections.abc
import typing
from collections.abc import Callable, Mapping
from typing import Any, Literal, TypeVar

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override
from cattrs.v import transform_error

from ._checks import DUMP, Check, Invalid, TypeMismatch, Where, did_you_mean, mismatch
from ._error import ConfigError, Problem
from ._frozen import freeze, thaw
from ._references import Resolved
from ._rules import choice_reason
from ._yaml import parse_scalar

__all__ = ["structure", "unstructure"]

T = TypeVar("T")
Hook = Callable[[Any, Any], Any]


def _strict(accepts: Callable[[object], bool], make: Callable[[Any], Any] = lambda value: value) -> Hook:
    def structure(value: Any, tp: Any) -> Any:
        if type(value) is Resolved:
            value = str(value) if tp is str else parse_scalar(value)
        if not accepts(value):
            raise TypeMismatch(value, tp)
        return make(value)

    return structure


def _typed(value: Any) -> Any:
    """Plain data with each `Resolved` text read as YAML (a user-defined value has no field to type it)."""
    if type(value) is Resolved:
        return parse_scalar(value)
    if isinstance(value, Mapping):
        return {key: _typed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_typed(item) for item in value]
    return value


def _literal_hook(tp: Any) -> Hook:
    options = typing.get_args(tp)

    def structure(value: Any, _: Any) -> Any:
        if type(value) is Resolved:
            value = str(value)
        reason = choice_reason(value, options)
        if reason is not None:
            raise Invalid(reason)
        return value

    return structure


def _noted(exc: Exception, note: str) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
    return exc


def _item_note(index: int | str, tp: Any) -> IterableValidationNote:
    return IterableValidationNote(f"Structuring item {index!r}", index, tp)


def _field_note(name: str, tp: Any) -> AttributeValidationNote:
    return AttributeValidationNote(f"Structuring field {name}", name, tp)


def _is_literal_type(tp: Any) -> bool:
    return typing.get_origin(tp) is Literal


def _is_list_type(tp: Any) -> bool:
    args = typing.get_args(tp)
    return typing.get_origin(tp) is tuple and len(args) == 2 and args[1] is Ellipsis


def _is_mapping_type(tp: Any) -> bool:
    origin = typing.get_origin(tp)
    return origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Mapping)


class _Converter:
    """The converter and its hooks; one instance per process (`_CONVERTER`)."""

    def __init__(self) -> None:
        c = cattrs.Converter(detailed_validation=True)
        c.register_structure_hook(int, _strict(lambda v: type(v) is int))
        c.register_structure_hook(float, _strict(lambda v: type(v) in (int, float), float))
        c.register_structure_hook(bool, _strict(lambda v: type(v) is bool))
        c.register_structure_hook(str, _strict(lambda v: type(v) is str))
        c.register_structure_hook(Any, lambda value, _: freeze(_typed(value)))
        c.register_structure_hook_factory(_is_literal_type, _literal_hook)
        c.register_structure_hook_factory(_is_list_type, self._list_hook)
        c.register_structure_hook_factory(_is_mapping_type, self._mapping_hook)
        c.register_structure_hook_factory(attrs.has, self._record_hook)
        c.register_unstructure_hook_factory(attrs.has, self._record_dumper)
        self.converter = c

    # -- containers ------------------------------------------------------------------------------------------

    def _list_hook(self, tp: Any) -> Hook:
        item_type = typing.get_args(tp)[0]
        item_hook = self.converter.get_structure_hook(item_type)

        def structure(value: Any, _: Any) -> tuple[Any, ...]:
            if not isinstance(value, (list, tuple)):
                raise TypeMismatch(value, tp)
            items, errors = [], []
            for index, item in enumerate(value):
                try:
                    items.append(item_hook(item, item_type))
                except Exception as exc:
                    errors.append(_noted(exc, _item_note(index, item_type)))
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            return tuple(items)

        return structure

    def _mapping_hook(self, tp: Any) -> Hook:
        key_type, value_type = typing.get_args(tp)
        key_hook = self.converter.get_structure_hook(key_type)
        value_hook = self.converter.get_structure_hook(value_type)

        def structure(value: Any, _: Any) -> Mapping[Any, Any]:
            if not isinstance(value, Mapping):
                raise TypeMismatch(value, tp)
            items, errors = {}, []
            for key, item in value.items():
                try:
                    items[key_hook(key, key_type)] = value_hook(item, value_type)
                except Exception as exc:
                    errors.append(_noted(exc, _item_note(str(key), value_type)))
            if errors:
                raise IterableValidationError(f"While structuring {tp!r}", errors, tp)
            return freeze(items)  # type: ignore[no-any-return]

        return structure

    # -- records -------------------------------------------------------------------------------------------

    def _field_hook(self, field: attrs.Attribute[Any]) -> Hook:
        tp = field.type
        base = self.converter.get_structure_hook(tp)
        check = field.validator if isinstance(field.validator, Check) else None

        def structure(value: Any, _: Any) -> Any:
            if check is not None and check.coerce is not None:
                value = check.coerce(value)
            try:
                result = base(value, tp)
            except TypeMismatch:
                # Reworded with the field's whole rule: "expected an int >= 1 or null", not "an int".
                raise Invalid(mismatch(value, tp, check.qualifier if check else "")) from None
            if check is not None:
                failures = check.failures(result, tp, shown=value)
                if failures:
                    raise _failures(failures, tp)
            return result

        return structure

    def _record_hook(self, cl: type[Any]) -> Hook:
        fields = [field for field in attrs.fields(cl) if field.init]
        extra: str | None = getattr(cl, "__extra__", None)
        shorthand: str | None = getattr(cl, "__shorthand__", None)
        options: tuple[str, ...] = getattr(cl, "__one_of__", ())
        known = [field.name for field in fields if field.name != extra]
        overrides = {field.name: override(struct_hook=self._field_hook(field)) for field in fields}
        if extra is not None:
            overrides[extra] = override(struct_hook=lambda value, _: freeze(_typed(value)))
        # Options that are records: `tcp:` alone, with nothing after it, asks for the defaults.
        empty_is_default = {
            field.name
            for field in fields
            if field.name in options and any(map(attrs.has, typing.get_args(field.type)))
        }
        # mypy cannot tell the overrides from the keyword flags of the same signature.
        base = make_dict_structure_fn(cl, self.converter, **overrides)  # type: ignore[arg-type]

        def structure(value: Any, _: Any) -> Any:
            if shorthand is not None and isinstance(value, str):
                value = {shorthand: value}
            if not isinstance(value, Mapping):
                raise TypeMismatch(value, cl)
            data = {key: item for key, item in value.items() if key in known}
            errors: list[Exception] = []
            unknown = {key: item for key, item in value.items() if key not in known}
            if extra is not None:
                data[extra] = unknown
            else:
                errors.extend(_unknown_key(key, known) for key in unknown)
            given = [name for name in options if name in data]
            if len(given) == 1 and given[0] in empty_is_default and data[given[0]] is None:
                data[given[0]] = {}
            try:
                record = base(data, cl)
            except ClassValidationError as exc:
                errors.extend(_with_paths(exc.exceptions))
            else:
                if not errors:
                    return record
            raise ClassValidationError(f"While structuring {cl.__name__}", errors, cl)

        return structure

    def _record_dumper(self, cl: type[Any]) -> Callable[[Any], dict[str, Any]]:
        overrides = {
            field.name: override(unstruct_hook=field.metadata[DUMP])
            for field in attrs.fields(cl)
            if DUMP in field.metadata
        }
        base = make_dict_unstructure_fn(cl, self.converter, **overrides)  # type: ignore[arg-type]
        extra: str | None = getattr(cl, "__extra__", None)

        def unstructure(record: Any) -> dict[str, Any]:
            data: dict[str, Any] = thaw(base(record))
            if extra is not None:
                data.update(data.pop(extra))
            return data

        return unstructure


def _failures(failures: list[tuple[Where, str]], tp: Any) -> Exception:
    if len(failures) == 1 and failures[0][0] is None:
        return Invalid(failures[0][1])
    errors: list[Exception] = []
    for where, reason in failures:
        error = Invalid(reason)
        errors.append(error if where is None else _noted(error, _item_note(where, tp)))
    return IterableValidationError(f"While checking {tp!r}", errors, tp)


def _unknown_key(key: object, known: list[str]) -> Exception:
    guess = did_you_mean(key, known)
    hint = f"did you mean {guess!r}?" if guess else f"expected one of {', '.join(known)}"
    return _noted(Invalid(f"unknown key ({hint})"), _field_note(str(key), Any))


def _with_paths(errors: tuple[Exception, ...]) -> list[Exception]:
    """The record's errors, with a constructor's cross-field `ConfigError` split into one error per path."""
    result: list[Exception] = []
    for error in errors:
        noted = any(isinstance(note, AttributeValidationNote) for note in getattr(error, "__notes__", ()))
        if noted or not isinstance(error, ConfigError):
            result.append(error)
            continue
        for problem in error.problems:
            invalid = Invalid(problem.reason)
            result.append(_noted(invalid, _field_note(problem.path, Any)) if problem.path else invalid)
    return result


def _reason(exc: BaseException, tp: Any) -> str:
    if isinstance(exc, Invalid):
        return exc.reason
    if isinstance(exc, KeyError):
        return "required, but missing"
    return f"invalid value ({exc})"


def _problems(exc: BaseException) -> list[Problem]:
    # transform_error renders "<description> @ <path>"; the description is an index into `reasons`, so a
    # reason or a key holding " @ " cannot confuse the split.
    reasons: list[str] = []

    def describe(error: BaseException, tp: Any) -> str:
        reasons.append(_reason(error, tp))
        return str(len(reasons) - 1)

    problems = []
    for line in transform_error(exc, "$", describe):
        index, _, path = line.partition(" @ ")
        problems.append(Problem(path.removeprefix("$").removeprefix("."), reasons[int(index)]))
    return problems


_CONVERTER = _Converter()


def structure(data: object, cl: type[T]) -> T:
    """Build a record from plain data.

    Raises:
        ConfigError: every problem found, each with its key path (no source: the caller adds it).
    """
    try:
        return _CONVERTER.converter.structure(data, cl)
    except (ClassValidationError, IterableValidationError, Invalid) as exc:
        raise ConfigError(_problems(exc)) from None


def unstructure(record: object) -> dict[str, Any]:
    """Plain data (dicts, lists, scalars) for a record."""
    data: dict[str, Any] = _CONVERTER.converter.unstructure(record)
    return data
