"""Which HTTP/1.1 codec the proxy speaks with: h11 (the reference) or httptools (the fast one).

Rules:
- Every codec provides a server side (downstream) and a client side (upstream) with exactly the interface of
  `ServerSide` and `ClientSide` (`_protocols.py`), behind the same strict checks, and passes the same tests.
  `Codec` is typed by those protocols, so mypy checks each codec registered here against them.
- This module is the one place that knows the codecs: it imports both codec modules, h11's always and
  httptools' when httptools is installed (a dependency of the package: only a broken or hand-made
  installation lacks it), and registers them; nothing registers itself.
- `select_codec()` picks by name, else from the `ACTORPROXY_CODEC` environment variable, else the fastest
  one installed. h11 is always available. Picking h11 for want of httptools is said once, as a warning:
  it is 3-4x slower per side, and a proxy should not be slow without anyone being told.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import attrs

from ._h11 import H11ClientConnection, H11ServerConnection
from ._protocols import ClientSide, ServerSide

try:
    from ._httptools import HttptoolsClientConnection, HttptoolsServerConnection
except ImportError as exc:
    if exc.name != "httptools":  # a codec module is broken: that is a bug, not a missing extra
        raise
    _HTTPTOOLS_INSTALLED = False
else:
    _HTTPTOOLS_INSTALLED = True

__all__ = ["CODEC_ENV", "Codec", "available_codecs", "register_codec", "select_codec"]

logger = logging.getLogger("actorproxy.http")

#: Environment variable naming the codec to use ("h11", "httptools" or "auto").
CODEC_ENV = "ACTORPROXY_CODEC"


@attrs.frozen
class Codec:
    """A named pair of connection classes: `server(stream, ...)` and `client(stream, read_timeout=...)`."""

    name: str
    server: Callable[..., ServerSide] = attrs.field(eq=False)
    client: Callable[..., ClientSide] = attrs.field(eq=False)


_CODECS: dict[str, Codec] = {"h11": Codec("h11", H11ServerConnection, H11ClientConnection)}
if _HTTPTOOLS_INSTALLED:
    _CODECS["httptools"] = Codec("httptools", HttptoolsServerConnection, HttptoolsClientConnection)
# Preference order for "auto": the first registered codec wins.
_PREFERENCE = ["httptools", "h11"]


_warned: list[bool] = []


def _warn_slow() -> None:
    if not _warned:
        _warned.append(True)
        logger.warning(
            "httptools is not installed: HTTP/1.1 runs on the h11 codec, 3-4x slower per side "
            "(pip install httptools; ACTORPROXY_CODEC=h11 picks h11 without this warning)"
        )


def register_codec(codec: Codec) -> None:
    _CODECS[codec.name] = codec


def available_codecs() -> list[str]:
    """Names of the codecs that can be used here, fastest first."""
    return [name for name in _PREFERENCE if name in _CODECS]


def select_codec(name: str | None = None) -> Codec:
    """The codec called `name` (or `$ACTORPROXY_CODEC`, or the fastest installed).

    Raises:
        ValueError: an unknown or unavailable codec name, naming the ones available.
    """
    choice = (name or os.environ.get(CODEC_ENV) or "auto").strip().lower()
    available = available_codecs()
    if choice == "auto":
        if not _HTTPTOOLS_INSTALLED:
            _warn_slow()
        return _CODECS[available[0]]
    if choice not in available:
        names = ", ".join(available)
        raise ValueError(f"{CODEC_ENV}: unknown or unavailable codec {choice!r} (available: {names})")
    return _CODECS[choice]
