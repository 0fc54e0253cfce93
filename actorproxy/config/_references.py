"""`${secret:NAME}` and `${env:NAME}` in configuration values, resolved when the configuration is read.

Rules:
- A reference may stand anywhere in a string value (keys are never resolved): `Bearer ${secret:TOKEN}`.
  `$${` is a literal `${`. Any other `${...}` is an error, so a typo never passes as text.
- `${env:NAME}` is the environment's NAME, else the settings file's NAME; `${env:NAME:-default}` takes the
  default when both leave it unset or empty (the shell's rule).
- `${secret:NAME}` is the same lookup without a default, and its value is a secret: registered for
  redaction (`actorproxy.settings.redact`) before anything can print it. A settings file value that is
  encrypted is decrypted with the key, and is a secret whichever way it is referenced.
- A value that is one reference and nothing else is typed by its field, as an environment override is: a
  number field reads the text as YAML (`threads: ${env:THREADS}`), a string field keeps it as text.
- Every reference that cannot be resolved is reported at once, each with its key path and the reference.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

import attrs

from actorproxy.settings import (
    KEY_VARIABLE,
    Encrypter,
    SettingsError,
    SettingsFile,
    keyring_from_env,
    read_key_file,
    register_secret,
)

from ._error import ConfigError, Problem
from ._settings import SettingsPlace

__all__ = ["Reference", "Resolved", "ValueSource", "resolve_references"]

# `$${` (an escaped `${`), or `${` up to the next `}` (or the end of the text: an unclosed reference).
_DOLLAR_BRACE = re.compile(r"\$\$\{|\$\{([^}]*)(\}|$)")
_REFERENCE = re.compile(r"(?P<kind>secret|env):(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?", re.S)


class Resolved(str):
    """The text of a value that was one reference: its field decides its type (see the module rules)."""

    __slots__ = ()


@attrs.frozen
class Reference:
    """One reference resolved in a value, and where its value was found."""

    #: As written: `${secret:UPSTREAM_TOKEN}`.
    text: str
    kind: str
    name: str
    #: `the environment`, `the settings file <path>`, or `its default`.
    found_in: str
    secret: bool


class ValueSource:
    """Where references and the settings file's overrides find their values: the environment, then the
    settings file, whose encrypted values are decrypted with the key (read once, when first needed).

    Args:
        env: the environment.
        place: where the settings file and the key file are.
        settings: the settings file's content, instead of reading it from `place.path` (to check a change
            before it is written).

    Raises:
        SettingsError: the settings file exists but cannot be read, or a line of it cannot be parsed.
    """

    def __init__(
        self, env: Mapping[str, str], place: SettingsPlace, settings: SettingsFile | None = None
    ) -> None:
        self.env = env
        self.place = place
        if settings is None and place.path is not None:
            settings = SettingsFile.read(place.path)
        self.settings = settings
        if self.settings is not None:
            self.settings.values()  # a line that cannot be read is reported now, naming the file and line
        self._encrypter: Encrypter | None = None

    def encrypter(self) -> Encrypter:
        """The encrypter of the settings' key: `ACTORPROXY_KEY`, else the key file.

        Raises:
            SettingsError: no key is set, or the key or key file cannot be used.
        """
        if self._encrypter is None:
            keyring = keyring_from_env(self.env)
            key_file = self.place.key_file
            if keyring is None and key_file is not None and os.path.lexists(key_file):
                keyring = read_key_file(key_file)
            if keyring is None:
                where = f" or create {key_file}" if key_file else ""
                raise SettingsError(
                    f"no key to decrypt with: set {KEY_VARIABLE}{where} (actorproxy settings key:generate)"
                )
            self._encrypter = keyring.encrypter(self.place.cipher)
        return self._encrypter

    def from_settings(self, name: str) -> tuple[str, bool] | None:
        """The settings file's value of `name` (decrypted) and whether it was encrypted; None: not set.

        Raises:
            SettingsError: it is encrypted and cannot be decrypted.
        """
        settings = self.settings
        if settings is None or settings.get(name) is None:
            return None
        if not settings.is_encrypted(name):
            return settings.get(name) or "", False
        value = settings.decrypted(name, self.encrypter()) or ""
        try:
            register_secret(value)
        except SettingsError as exc:
            raise SettingsError(f"{name} is encrypted, so a secret: {exc}") from None
        return value, True

    def lookup(self, name: str) -> tuple[str, str, bool] | None:
        """(value, where it was found, whether it was encrypted) for `name`; None when nothing sets it."""
        if self.env.get(name):
            return self.env[name], "the environment", False
        found = self.from_settings(name)
        if found is None:
            return None
        return found[0], f"the settings file {self.place.path}", found[1]


def resolve_references(data: dict[Any, Any], source: ValueSource) -> dict[str, list[Reference]]:
    """Replace every reference in the string values of `data` (plain dicts and lists, changed in place).

    Returns:
        The references resolved, by key path (`services[0].routes[0].request_headers.set.Authorization`).

    Raises:
        ConfigError: references that cannot be resolved (every one, with its key path).
    """
    found: dict[str, list[Reference]] = {}
    problems: list[Problem] = []

    def visit(node: Any, path: str) -> None:
        slots: list[tuple[Any, str]]
        if isinstance(node, dict):
            slots = [(key, f"{path}.{key}" if path else str(key)) for key in node]
        elif isinstance(node, list):
            slots = [(index, f"{path}[{index}]") for index in range(len(node))]
        else:
            return
        for slot, inner in slots:
            value = node[slot]
            if not (isinstance(value, str) and "${" in value):
                visit(value, inner)
                continue
            try:
                node[slot], found[inner] = _resolve(value, source)
            except _Unresolved as exc:
                problems.extend(Problem(inner, reason) for reason in exc.reasons)

    visit(data, "")
    if problems:
        raise ConfigError(problems)
    return found


class _Unresolved(Exception):
    def __init__(self, reasons: list[str]) -> None:
        super().__init__(reasons)
        self.reasons = reasons


def _resolve(text: str, source: ValueSource) -> tuple[str, list[Reference]]:
    references: list[Reference] = []
    reasons: list[str] = []

    def replace(match: re.Match[str]) -> str:
        written = match.group(0)
        if written == "$${":
            return "${"
        inner, closed = match.group(1), match.group(2)
        parsed = _REFERENCE.fullmatch(inner) if closed else None
        if parsed is None or (parsed["kind"] == "secret" and parsed["default"] is not None):
            reasons.append(
                f"{written!s}: not a reference; write ${{secret:NAME}}, ${{env:NAME}} or"
                " ${env:NAME:-default} (and $${ for a literal ${)"
            )
            return written
        try:
            reference, value = _look_up(written, parsed, source)
        except SettingsError as exc:
            reasons.append(f"{written}: {exc}")
            return written
        references.append(reference)
        return value

    value = _DOLLAR_BRACE.sub(replace, text)
    if reasons:
        raise _Unresolved(reasons)
    whole = len(references) == 1 and _DOLLAR_BRACE.fullmatch(text) is not None
    return (Resolved(value) if whole else value), references


def _look_up(written: str, parsed: re.Match[str], source: ValueSource) -> tuple[Reference, str]:
    kind, name, default = parsed["kind"], parsed["name"], parsed["default"]
    found = source.lookup(name)
    if found is None or (not found[0] and default is not None):
        if default is None:
            settings = f"the settings file ({source.place.path})" if source.place.path else "no settings file"
            raise SettingsError(f"{name} is set in neither the environment nor {settings}")
        found = (default, "its default", False)
    value, where, encrypted = found
    secret = kind == "secret" or encrypted
    if secret:
        register_secret(value)
    return Reference(written, kind, name, where, secret), value
