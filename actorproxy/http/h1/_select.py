"""Which HTTP/1.1 codec the proxy speaks with: h11 (the reference) or a faster one behind the same interface.

Rules:
- Every codec provides a server side (downstream) and a client side (upstream) with exactly the interface of
  `ServerConnection` and `ClientConnection` in `_codec.py`, behind the same strict checks, and passes the same
  tests.
- `select_codec()` picks by name, else from the `ACTORPROXY_CODEC` environment variable, else the fastest
  one installed. h11 is always available.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import attrs

from ._h11 import ClientConnection, ServerConnection

__all__ = ["CODEC_ENV", "Codec", "available_codecs", "register_codec", "select_codec"]

#: Environment variable naming the codec to use ("h11", "httptools" or "auto").
CODEC_ENV = "ACTORPROXY_CODEC"


@attrs.frozen
class Codec:
    """A named pair of connection classes: `server(stream)` and `client(stream, read_timeout=...)`."""

    name: str
    server: Callable[..., ServerConnection] = attrs.field(eq=False)
    client: Callable[..., ClientConnection] = attrs.field(eq=False)


_CODECS: dict[str, Codec] = {"h11": Codec("h11", ServerConnection, ClientConnection)}
# Preference order for "auto": the first registered, importable codec wins.
_PREFERENCE = ["httptools", "h11"]


def register_codec(codec: Codec) -> None:
    _CODECS[codec.name] = codec


def _load_optional() -> None:
    if "httptools" in _CODECS:
        return
    try:
        from ._httptools import FAST_CODEC
    except ImportError:  # httptools is not installed
        return
    register_codec(FAST_CODEC)


def available_codecs() -> list[str]:
    """Names of the codecs that can be used here, fastest first."""
    _load_optional()
    return [name for name in _PREFERENCE if name in _CODECS]


def select_codec(name: str | None = None) -> Codec:
    """The codec called `name` (or `$ACTORPROXY_CODEC`, or the fastest installed).

    Raises:
        ValueError: an unknown or unavailable codec name, naming the ones available.
    """
    choice = (name or os.environ.get(CODEC_ENV) or "auto").strip().lower()
    available = available_codecs()
    if choice == "auto":
        return _CODECS[available[0]]
    if choice not in available:
        names = ", ".join(available)
        raise ValueError(f"{CODEC_ENV}: unknown or unavailable codec {choice!r} (available: {names})")
    return _CODECS[choice]
