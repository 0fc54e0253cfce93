"""`SettingsConf` and `HooksConf`: where the settings file and its key are, and what runs after a change.

Rules:
- The settings file (dotenv) holds named values for `${secret:NAME}` and `${env:NAME}` references and
  `ACTORPROXY__...` overrides of the configuration's keys. Its default place is `actorproxy.env` beside the
  configuration file; a relative `path` or `key_file` is relative to the configuration file's directory.
- The `settings` section is read from the file and the environment only: the settings file cannot move
  itself, and references cannot be used inside it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import attrs

from actorproxy.settings import DEFAULT_CIPHER, CipherName

from ._checks import doc
from ._rules import PATH

__all__ = [
    "DEFAULT_KEY_FILE",
    "DEFAULT_SETTINGS_FILE",
    "HooksConf",
    "SettingsConf",
    "SettingsPlace",
    "settings_place",
]

#: The settings file's name beside the configuration file when `settings.path` is null.
DEFAULT_SETTINGS_FILE = "actorproxy.env"
#: The key file's name beside the configuration file when `settings.key_file` is null.
DEFAULT_KEY_FILE = "actorproxy.key"


@attrs.frozen(kw_only=True)
class SettingsConf:
    """Where the settings file and its encryption key are."""

    path: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc(
            "The settings file (dotenv syntax), relative to the configuration file's directory;"
            f" null: {DEFAULT_SETTINGS_FILE} beside the configuration file."
        ),
    )
    key_file: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc(
            "File holding the key (base64:..., mode 0600) when ACTORPROXY_KEY is not set, relative to the"
            f" configuration file's directory; null: {DEFAULT_KEY_FILE} beside the configuration file."
        ),
    )
    cipher: CipherName = attrs.field(
        default=DEFAULT_CIPHER,
        metadata=doc(
            "Cipher of the encrypted values (Laravel's names): AES-256-CBC, AES-256-GCM, AES-128-..."
        ),
    )


@attrs.frozen(kw_only=True)
class HooksConf:
    """Commands run after `actorproxy settings` changed the settings file."""

    after_set: tuple[str, ...] = attrs.field(
        default=(),
        metadata=doc(
            "Shell commands run, in order, after `actorproxy settings set` or `forget` changed a value;"
            " ACTORPROXY_CHANGED_KEYS holds the changed keys."
        ),
    )


@attrs.frozen
class SettingsPlace:
    """The settings file, key file and cipher of one configuration, as absolute paths."""

    #: The settings file; None when there is none (a configuration read without a file and no `path`).
    path: str | None
    #: The key file (used when it exists and ACTORPROXY_KEY is not set); None: none.
    key_file: str | None
    cipher: str = DEFAULT_CIPHER


def settings_place(section: object, conf_file: str | None) -> SettingsPlace:
    """Where the settings are for the `settings` section `section` (plain data) of the file `conf_file`.

    A section of the wrong shape is taken as the defaults here; validation reports it with its key path.
    """
    values: Mapping[str, Any] = section if isinstance(section, Mapping) else {}
    base = os.path.dirname(os.path.abspath(conf_file)) if conf_file is not None else None

    def place(value: object, default: str) -> str | None:
        if isinstance(value, str) and value:
            return os.path.join(base or os.getcwd(), value)
        return None if base is None else os.path.join(base, default)

    cipher = values.get("cipher")
    return SettingsPlace(
        place(values.get("path"), DEFAULT_SETTINGS_FILE),
        place(values.get("key_file"), DEFAULT_KEY_FILE),
        cipher if isinstance(cipher, str) else DEFAULT_CIPHER,
    )


for _cls in (SettingsConf, HooksConf):
    attrs.resolve_types(_cls)
