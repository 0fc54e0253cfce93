"""PHP's `serialize` for one string, which is what Laravel's `encrypt` (and `env:encrypt`) wraps a value in.

Only strings are written or read: `s:<length in bytes>:"<bytes>";`. Every value actorproxy encrypts is text,
and a serialized PHP value of another type (an array, an object) is refused rather than guessed at.
"""

from __future__ import annotations

import re

from ._errors import DecryptError

__all__ = ["serialize_string", "unserialize_string"]

_STRING_HEAD = re.compile(rb's:(\d+):"')


def serialize_string(value: bytes) -> bytes:
    """`serialize($value)` of a PHP string."""
    return b's:%d:"%s";' % (len(value), value)


def unserialize_string(data: bytes) -> bytes:
    """The string `serialize` wrote.

    Raises:
        DecryptError: `data` is not exactly one serialized PHP string.
    """
    head = _STRING_HEAD.match(data)
    if head is None:
        kind = data[:1].decode("ascii", "replace") or "nothing"
        raise DecryptError(f"the decrypted data is not a serialized PHP string (it starts with {kind!r})")
    start = head.end()
    end = start + int(head.group(1))
    if data[end:] != b'";':
        raise DecryptError("the decrypted data is not a serialized PHP string (its length does not match)")
    return data[start:end]
