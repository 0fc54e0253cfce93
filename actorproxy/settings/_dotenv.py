"""`SettingsFile`: the settings file, in dotenv syntax, read and changed without losing a comment or a line.

Rules:
- The syntax is python-dotenv's (its parser reads the file): `NAME=value`, `export NAME=value`, single or
  double quotes with its escapes, `#` comments. Values are taken as written: no `${VAR}` interpolation
  (references belong in the configuration file).
- A line the parser cannot read is an error naming the file and the line, never skipped.
- Changing a value rewrites only that binding (the first line for the name; later duplicates are removed);
  every other line, comment and blank stays as it was. A new name is appended.
- A value is written unquoted when it is made of safe characters only (letters, digits, `_ . / : @ + = , -`,
  which covers every encrypted payload and key), otherwise in single quotes with python-dotenv's two escapes
  (`\\\\` and `\\'`).
- An encrypted value is the payload of Laravel's `encryptString` of the value as it is written in the file
  (quoted when it needs quotes): what `php artisan env:encrypt --readable` writes, so such a file is a
  settings file as it is.
- Saving writes a temporary file beside the file and renames it over it, keeping its permissions.
"""

from __future__ import annotations

import io
import os
import re

import attrs
from dotenv import dotenv_values
from dotenv.parser import parse_stream

from ._atomic import write_atomically
from ._encrypter import Encrypter, appears_encrypted
from ._errors import SettingsError

__all__ = ["SettingsFile", "check_name", "quote", "unquote"]

# A variable name: what a shell, python-dotenv and phpdotenv all accept unquoted.
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Characters that mean nothing special to python-dotenv or phpdotenv in an unquoted value.
_PLAIN = re.compile(r"[A-Za-z0-9_./:@+=,-]*")


def check_name(name: str) -> str:
    """`name`, if it can be a variable of the settings file.

    Raises:
        SettingsError: it is not letters, digits and underscores, starting with a letter or underscore.
    """
    if not _NAME.fullmatch(name):
        raise SettingsError(
            f"{name!r} is not a variable name (letters, digits and '_', not starting with a digit)"
        )
    return name


def quote(value: str) -> str:
    """`value` as it is written after `NAME=` so that python-dotenv reads it back unchanged."""
    if _PLAIN.fullmatch(value):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def unquote(raw: str) -> str:
    """The value a raw `NAME=` text stands for, by python-dotenv's rules (`quote`'s inverse)."""
    value = dotenv_values(stream=io.StringIO(f"V={raw}\n"), interpolate=False).get("V")
    return value or ""


@attrs.frozen
class SettingsFile:
    """The text of a settings file and where it lives; changes return a new `SettingsFile`, `save` writes it.

    Build one with `SettingsFile.read(path)`.
    """

    path: str
    text: str = ""
    #: Whether the file existed when it was read.
    exists: bool = False

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SettingsFile:
        """The file at `path`; a file that does not exist reads as empty.

        Raises:
            SettingsError: it exists but cannot be read, or is not UTF-8.
        """
        where = os.fspath(path)
        try:
            with open(where, encoding="utf-8") as file:
                return cls(where, file.read(), True)
        except FileNotFoundError:
            return cls(where)
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise SettingsError(f"settings file {where}: {reason or exc}") from None

    def _bindings(self) -> list[tuple[str | None, str | None, str]]:
        """(name, value, original text) per binding; raises on a line the parser cannot read."""
        found = []
        for binding in parse_stream(io.StringIO(self.text)):
            if binding.error:
                line = binding.original.string.strip()
                raise SettingsError(
                    f"settings file {self.path}, line {binding.original.line}: cannot read {line!r}"
                )
            found.append((binding.key, binding.value, binding.original.string))
        return found

    def values(self) -> dict[str, str]:
        """Every name and its value as written (encrypted values still encrypted), in file order.

        Raises:
            SettingsError: a line cannot be read.
        """
        return {name: value or "" for name, value, _ in self._bindings() if name is not None}

    def get(self, name: str) -> str | None:
        """The value of `name` as written (encrypted or not); None when the file does not set it."""
        return self.values().get(name)

    def is_encrypted(self, name: str) -> bool:
        """Whether the value of `name` is an encrypted payload."""
        return appears_encrypted(self.get(name))

    def decrypted(self, name: str, encrypter: Encrypter | None) -> str | None:
        """The value of `name`, decrypted when it is encrypted; None when the file does not set it.

        Raises:
            SettingsError: it is encrypted and `encrypter` is None.
            DecryptError: it cannot be decrypted; the message names the variable and the file.
        """
        value = self.get(name)
        if value is None or not appears_encrypted(value):
            return value
        if encrypter is None:
            raise SettingsError(f"{name} in {self.path} is encrypted and no key is set")
        try:
            return unquote(encrypter.decrypt_string(value))
        except SettingsError as exc:
            raise type(exc)(f"{name} in {self.path}: {exc}") from None

    def with_value(self, name: str, value: str, encrypter: Encrypter | None = None) -> SettingsFile:
        """This file with `name` set to `value` (encrypted with `encrypter` when one is given).

        Raises:
            SettingsError: `name` is not a variable name, or a line of the file cannot be read.
        """
        check_name(name)
        raw = quote(value) if encrypter is None else encrypter.encrypt_string(quote(value))
        line = f"{name}={raw}\n"
        parts: list[str] = []
        replaced = False
        for key, _, original in self._bindings():
            if key != name:
                parts.append(original)
            elif not replaced:
                parts.append(line)
                replaced = True
        if not replaced:
            if parts and not parts[-1].endswith("\n"):
                parts.append("\n")
            parts.append(line)
        return attrs.evolve(self, text="".join(parts))

    def without(self, name: str) -> SettingsFile:
        """This file without `name` (every binding of it).

        Raises:
            SettingsError: a line of the file cannot be read.
        """
        text = "".join(original for key, _, original in self._bindings() if key != name)
        return attrs.evolve(self, text=text)

    def save(self) -> None:
        """Write the file whole (a temporary file renamed over it), keeping its permissions; a new file is
        created readable and writable by its owner only.

        Raises:
            SettingsError: it cannot be written; the file is unchanged.
        """
        try:
            write_atomically(self.path, self.text.encode("utf-8"), mode=0o600)
        except OSError as exc:
            raise SettingsError(f"settings file {self.path}: {exc.strerror or exc}") from None
