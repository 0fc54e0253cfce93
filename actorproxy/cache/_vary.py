"""Vary (RFC 9111 §4.1): which request fields select a stored response, and the secondary key of a variant.

Rules:
- A request matches a stored response when, for every field the stored response's Vary names, both
  requests carry the same value after normalisation (whitespace around commas removed, field lines
  joined), or both lack the field (§4.1).
- `Vary: *` never matches (§4.1): `vary_fields` answers None for it.
- The secondary key is a digest of the normalised values, so it is short whatever the request carries.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable

from actorproxy.http import Headers, RequestHeader

from ._fields import list_items

__all__ = ["normalized_value", "secondary_key", "vary_fields", "vary_values"]


def vary_fields(headers: Headers) -> tuple[str, ...] | None:
    """The lowercase, sorted field names a response's Vary lists; () without Vary; None for `Vary: *`."""
    if "vary" not in headers:
        return ()
    names = {item.lower() for item in list_items(headers.get_all("vary"))}
    if "*" in names:
        return None
    return tuple(sorted(names))


def normalized_value(headers: Headers, name: str) -> str | None:
    """A request field's value for Vary matching: its field lines joined, list members trimmed; None when
    absent."""
    values = headers.get_all(name)
    if not values:
        return None
    return ",".join(list_items(values))


def vary_values(fields: Iterable[str], request: RequestHeader) -> tuple[tuple[str, str | None], ...]:
    """(field, normalised request value) for each field a Vary names."""
    return tuple((name, normalized_value(request.headers, name)) for name in fields)


def secondary_key(fields: tuple[str, ...] | None, request: RequestHeader) -> str | None:
    """The variant key of `request` under a Vary of `fields` ("" when nothing varies); None for `Vary: *`,
    which no request matches."""
    if fields is None:
        return None
    if not fields:
        return ""
    data = json.dumps(vary_values(fields, request), separators=(",", ":")).encode()
    return hashlib.sha256(data).hexdigest()[:32]
