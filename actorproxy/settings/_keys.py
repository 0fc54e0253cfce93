"""Keys: Laravel's `base64:...` text, the key variables, and key files that only their owner may read.

Rules:
- A key is written as Laravel writes `APP_KEY`: `base64:` and the base64 of the raw bytes. Text without the
  prefix is taken as the raw key, as Laravel does.
- The key comes from `ACTORPROXY_KEY` (previous keys, newest first, comma-separated, from
  `ACTORPROXY_PREVIOUS_KEYS`: Laravel's `APP_KEY` and `APP_PREVIOUS_KEYS`), else from a key file: its first
  non-empty line is the key, the following ones previous keys.
- A key file that its group or anybody else may read or write is refused, naming the file and its mode.
- A key file is read when the configuration is first loaded, before the server drops its privileges, and
  remembered: a reload that may no longer read it (a root-only file, after switching to `user`) uses the
  remembered keys. A reload that can read it reads it again, so a rotated key file is taken up.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from collections.abc import Mapping

import attrs

from ._atomic import write_atomically
from ._encrypter import DEFAULT_CIPHER, Encrypter
from ._errors import SettingsError

__all__ = [
    "KEY_VARIABLE",
    "PREVIOUS_KEYS_VARIABLE",
    "Keyring",
    "format_key",
    "keyring_from_env",
    "parse_key",
    "read_key_file",
    "write_key_file",
]

#: The variable holding the key (Laravel: APP_KEY).
KEY_VARIABLE = "ACTORPROXY_KEY"
#: The variable holding previous keys, comma-separated, newest first (Laravel: APP_PREVIOUS_KEYS).
PREVIOUS_KEYS_VARIABLE = "ACTORPROXY_PREVIOUS_KEYS"
_PREFIX = "base64:"
# Permission bits a key file must not have: any access by its group or by others.
_SHARED_BITS = stat.S_IRWXG | stat.S_IRWXO

# Key files read in this process, by absolute path: what a reload uses once it may not read them any more.
_remembered: dict[str, Keyring] = {}


def parse_key(text: str) -> bytes:
    """The raw key in `text`: `base64:...` decoded, anything else taken as it is (Laravel's rule).

    Raises:
        SettingsError: `base64:` is followed by something that is not base64.
    """
    text = text.strip()
    if not text.startswith(_PREFIX):
        return text.encode("utf-8")
    try:
        return base64.b64decode(text[len(_PREFIX) :], validate=True)
    except binascii.Error:
        raise SettingsError("the key starts with 'base64:' but what follows is not base64") from None


def format_key(key: bytes) -> str:
    """`base64:...`, as Laravel writes `APP_KEY`."""
    return _PREFIX + base64.b64encode(key).decode("ascii")


@attrs.frozen(repr=False)
class Keyring:
    """The current key and the previous ones, and where they came from (for messages)."""

    key: bytes
    previous: tuple[bytes, ...] = ()
    #: `ACTORPROXY_KEY`, `--key`, or the key file's path.
    origin: str = ""

    def __repr__(self) -> str:  # never the keys
        return f"<Keyring from {self.origin or '?'} previous={len(self.previous)}>"

    def encrypter(self, cipher: str = DEFAULT_CIPHER) -> Encrypter:
        """An `Encrypter` with these keys.

        Raises:
            SettingsError: a key does not fit `cipher`; the message names where the keys came from.
        """
        try:
            return Encrypter(self.key, cipher, self.previous)
        except SettingsError as exc:
            raise SettingsError(f"{self.origin}: {exc}") from None


def keyring_from_env(env: Mapping[str, str]) -> Keyring | None:
    """The keys in `ACTORPROXY_KEY` and `ACTORPROXY_PREVIOUS_KEYS`; None when `ACTORPROXY_KEY` is unset.

    Raises:
        SettingsError: a key is not valid `base64:` text.
    """
    text = env.get(KEY_VARIABLE, "")
    if not text.strip():
        return None
    try:
        previous = tuple(
            parse_key(item) for item in env.get(PREVIOUS_KEYS_VARIABLE, "").split(",") if item.strip()
        )
        return Keyring(parse_key(text), previous, KEY_VARIABLE)
    except SettingsError as exc:
        raise SettingsError(f"{KEY_VARIABLE} or {PREVIOUS_KEYS_VARIABLE}: {exc}") from None


def read_key_file(path: str | os.PathLike[str]) -> Keyring:
    """The keys in the file at `path` (see the module rules), remembered for reloads.

    Raises:
        SettingsError: the file is readable or writable by its group or others, cannot be read (and was not
            read before in this process), or holds no key; the message names the file.
    """
    where = os.path.abspath(path)
    try:
        status = os.stat(where)
    except OSError as exc:
        raise SettingsError(f"key file {where}: {exc.strerror or exc}") from None
    shared = stat.S_IMODE(status.st_mode) & _SHARED_BITS
    if shared:
        raise SettingsError(
            f"key file {where}: its mode is {stat.S_IMODE(status.st_mode):#o}, so its group or others may"
            f" read it; make it readable by its owner only (chmod 600 {where})"
        )
    try:
        with open(where, encoding="utf-8") as file:
            lines = [line.strip() for line in file.read().splitlines() if line.strip()]
    except PermissionError:
        if where in _remembered:
            return _remembered[where]
        raise SettingsError(f"key file {where}: permission denied") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise SettingsError(f"key file {where}: {reason or exc}") from None
    if not lines:
        raise SettingsError(f"key file {where}: it holds no key")
    try:
        keyring = Keyring(parse_key(lines[0]), tuple(parse_key(line) for line in lines[1:]), where)
    except SettingsError as exc:
        raise SettingsError(f"key file {where}: {exc}") from None
    _remembered[where] = keyring
    return keyring


def write_key_file(path: str | os.PathLike[str], keyring: Keyring) -> None:
    """Write `keyring` to `path` with mode 0600, whole or not at all.

    Raises:
        OSError: it cannot be written.
    """
    lines = [format_key(keyring.key), *(format_key(key) for key in keyring.previous)]
    write_atomically(path, ("\n".join(lines) + "\n").encode("ascii"), mode=0o600, keep_mode=False)
