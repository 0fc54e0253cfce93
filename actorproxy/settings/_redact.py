"""Redaction: the values of secrets never leave the process in text, whatever path the text takes.

Rules:
- A secret shorter than `MIN_SECRET_LENGTH` is refused: it could not be redacted from text.
- Every secret value resolved in this process (from `${secret:...}`, or an encrypted value of the settings
  file) is registered here when it is resolved, and stays registered: a rotated-out secret stays redacted.
- `redact` replaces every occurrence of a registered value in a text with `REDACTED`, longest first (so a
  secret that contains another is not half-replaced). The configuration's dumps, its error messages and the
  command line's output go through it.
- Once a secret is registered, every log record is redacted as it is made (a wrapper around the logging
  record factory, installed once): the message with its arguments, and the traceback of an exception, so no
  handler or formatter can print the value, whichever logger the record came from.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ._errors import SettingsError

__all__ = [
    "MIN_SECRET_LENGTH",
    "REDACTED",
    "redact",
    "redact_data",
    "register_secret",
    "secrets_registered",
]

#: What a secret's value is shown as.
REDACTED = "••••"
#: The shortest secret: a shorter one cannot be told apart from ordinary text (redacting every "ab" in the
#: logs would hide everything and protect nothing), so it is refused.
MIN_SECRET_LENGTH = 4

_lock = threading.Lock()
_secrets: frozenset[str] = frozenset()
_ordered: tuple[str, ...] = ()
_factory_installed = False


def register_secret(value: str) -> None:
    """Redact `value` from now on (an empty value is nothing to hide).

    Raises:
        SettingsError: `value` is shorter than `MIN_SECRET_LENGTH` (and not empty).
    """
    global _secrets, _ordered  # noqa: PLW0603 - one registry per process, as logging is one per process
    if not value or value in _secrets:
        return
    if len(value) < MIN_SECRET_LENGTH:
        raise SettingsError(
            f"a secret of {len(value)} characters is too short to be kept out of logs and dumps; a secret"
            f" needs at least {MIN_SECRET_LENGTH}"
        )
    with _lock:
        _secrets = _secrets | {value}
        _ordered = tuple(sorted(_secrets, key=len, reverse=True))
        _install_record_factory()


def secrets_registered() -> int:
    """How many secret values are registered (for tests and diagnostics; never the values)."""
    return len(_secrets)


def redact(text: str) -> str:
    """`text` with every registered secret value replaced by `REDACTED`."""
    for secret in _ordered:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def redact_data(data: Any) -> Any:
    """A copy of plain data (dicts, lists, tuples, scalars) with `redact` applied to every string in it."""
    if not _ordered:
        return data
    if isinstance(data, str):
        return redact(data)
    if isinstance(data, dict):
        return {redact_data(key): redact_data(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(redact_data(item) for item in data)
    return data


def _install_record_factory() -> None:
    global _factory_installed  # noqa: PLW0603
    if _factory_installed:
        return
    _factory_installed = True
    make = logging.getLogRecordFactory()

    def redacting_factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        try:
            record.msg, record.args = redact(record.getMessage()), ()
        except (TypeError, ValueError):  # arguments that do not fit the message: logging reports it later
            record.msg, record.args = redact(str(record.msg)), redact_data(record.args)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return record

    logging.setLogRecordFactory(redacting_factory)
