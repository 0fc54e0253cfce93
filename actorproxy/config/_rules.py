"""Value rules several sections share: names, header names and values, ports, durations, choices."""

from __future__ import annotations

import re
import typing
from collections.abc import Iterator
from typing import Any

from ._address import parse_host_port, parse_unix_path
from ._checks import Check, Where, at_least, between, did_you_mean, greater_than, parsed_by

__all__ = [
    "BACKEND_ADDRESS",
    "HEADER_NAME",
    "HEADER_VALUE",
    "LISTEN_ADDRESS",
    "NAME",
    "NON_NEGATIVE",
    "PATH",
    "PORT",
    "POSITIVE",
    "choice",
    "choice_reason",
]

# Names end up as parts of dot paths (`conf.get("upstreams.web.algorithm")`), so no dots or spaces.
_NAME = re.compile(r"[A-Za-z0-9_-]+")
# RFC 9110 section 5.6.2: a field name is a token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 section 5.5: a field value never holds CR, LF or NUL.
_FORBIDDEN_IN_VALUE = re.compile(r"[\r\n\x00]")


def _name(value: str) -> None:
    if not _NAME.fullmatch(value):
        raise ValueError(f"expected a name of letters, digits, '-' and '_', got {value!r}")


def _header_name(value: str) -> None:
    if not _TOKEN.fullmatch(value):
        raise ValueError(f"not a header name: {value!r}")


def _header_value(value: str) -> None:
    if _FORBIDDEN_IN_VALUE.search(value):
        raise ValueError(f"a header value cannot hold CR, LF or NUL: {value!r}")


def _path(value: str) -> None:
    if not value:
        raise ValueError("expected a path, got ''")


def _listen_address(value: str) -> None:
    parse_host_port(value, allow_port_zero=True)


def _backend_address(value: str) -> None:
    if value.startswith(("unix:", "/")):
        parse_unix_path(value)
    else:
        parse_host_port(value)


NAME = parsed_by(_name, pattern="^[A-Za-z0-9_-]+$")
HEADER_NAME = parsed_by(_header_name, pattern="^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
HEADER_VALUE = parsed_by(_header_value, pattern="^[^\\r\\n\\x00]*$")
PATH = parsed_by(_path, pattern="^.+$")
PORT = between(1, 65535)
#: Durations that must pass some time (timeouts, frequencies).
POSITIVE = greater_than(0)
#: Durations and counts where 0 means "none".
NON_NEGATIVE = at_least(0)


#: `host:port` or `[v6]:port` to listen on (port 0: the OS picks).
LISTEN_ADDRESS = parsed_by(_listen_address, "host:port")
#: `host:port`, `[v6]:port` or a Unix socket path (`unix:/path` or `/path`) to connect to.
BACKEND_ADDRESS = parsed_by(_backend_address, "host:port or unix:/path")


def choice_reason(value: object, options: tuple[Any, ...]) -> str | None:
    """Why `value` is not one of `options` (with a "did you mean"), or None when it is."""
    if value in options and type(value) is type(options[options.index(value)]):
        return None
    reason = f"expected one of {', '.join(map(str, options))}, got {value!r}"
    guess = did_you_mean(value, map(str, options))
    return f"{reason} (did you mean {guess!r}?)" if guess else reason


def choice(literal: Any) -> Check:
    """The value is one of a `Literal` type's options."""
    options = typing.get_args(literal)

    def rule(value: object) -> Iterator[tuple[Where, str]]:
        reason = choice_reason(value, options)
        if reason is not None:
            yield None, reason

    return Check("", rule)
