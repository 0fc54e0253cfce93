"""How values become bytes in the store, and back.

A stored value is one tag byte, then the payload:

- `b`: the value was `bytes` (or `bytearray`, `memoryview`); the payload is those bytes, as given.
- `j`: anything else; the payload is UTF-8 JSON of what the cattrs converter unstructures the value to
  (`cattrs.preconf.json`'s by default: attrs classes and dataclasses become objects, datetimes ISO 8601
  strings, enums their values, bytes inside a structure base85 text). Reading it back gives that plain data,
  or, with `type=`, the converter's structuring of it into `type`.

Counters (`increment`) are `j` values holding a JSON integer, so a counter reads back as an `int`. Every
backend stores these same bytes: a file written by one process reads the same in any other.
"""

from __future__ import annotations

import json
from typing import Any

import cattrs
from cattrs.preconf.json import make_converter

from ._errors import NotAnInteger

__all__ = ["TAG_BYTES", "TAG_JSON", "Codec", "decode_int", "encode_int"]

TAG_BYTES = b"b"
TAG_JSON = b"j"


class Codec:
    """Encodes values to tagged bytes and decodes them, with one cattrs converter.

    Args:
        converter: the converter for values that are not bytes; None: `cattrs.preconf.json`'s.
    """

    def __init__(self, converter: cattrs.Converter | None = None) -> None:
        self.converter = make_converter() if converter is None else converter

    def encode(self, value: object) -> bytes:
        """The stored form of `value`.

        Raises:
            TypeError: the value cannot be unstructured to JSON.
        """
        if isinstance(value, (bytes, bytearray, memoryview)):
            return TAG_BYTES + bytes(value)
        data = self.converter.unstructure(value)
        return TAG_JSON + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()

    def decode(self, raw: bytes, tp: Any = None) -> Any:
        """The value stored as `raw`: bytes, plain JSON data, or (with `tp`) an instance of `tp`."""
        tag, payload = raw[:1], raw[1:]
        if tag == TAG_BYTES:
            value: Any = payload
        elif tag == TAG_JSON:
            value = json.loads(payload)
        else:
            raise ValueError(f"not a stored value (tag {tag!r})")
        return value if tp is None else self.converter.structure(value, tp)


def encode_int(value: int) -> bytes:
    """The stored form of a counter."""
    return TAG_JSON + str(value).encode()


def decode_int(raw: bytes | None, key: str) -> int:
    """The counter stored as `raw` (0 when absent).

    Raises:
        NotAnInteger: the stored value is not a JSON integer.
    """
    if raw is None:
        return 0
    if raw[:1] == TAG_JSON:
        try:
            value = json.loads(raw[1:])
        except ValueError:
            value = None
        if type(value) is int:
            return value
    raise NotAnInteger(f"{key!r} does not hold an integer")
