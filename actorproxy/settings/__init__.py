"""The settings file and its secrets: Laravel's encryption, keys, the dotenv file, redaction.

The lowest layer of the product, below `config` (which resolves `${secret:NAME}` with it): nothing here
knows the configuration's records. Everything is synchronous and small; files are read and written whole.

    keyring = read_key_file("/etc/actorproxy/actorproxy.key")      # refused unless mode 0600 or stricter
    encrypter = keyring.encrypter("AES-256-CBC")
    settings = SettingsFile.read("/etc/actorproxy/actorproxy.env")
    settings.with_value("UPSTREAM_TOKEN", token, encrypter).save()  # whole file or nothing
    settings.decrypted("UPSTREAM_TOKEN", encrypter)

Payloads are Laravel's (`Encrypter::encryptString` / `encrypt`); keys are written `base64:...` as `APP_KEY`.
"""

from ._atomic import write_atomically
from ._dotenv import SettingsFile, check_name, quote, unquote
from ._encrypter import CIPHERS, DEFAULT_CIPHER, CipherName, Encrypter, appears_encrypted, generate_key
from ._errors import DecryptError, SettingsError
from ._keys import (
    KEY_VARIABLE,
    PREVIOUS_KEYS_VARIABLE,
    Keyring,
    format_key,
    keyring_from_env,
    parse_key,
    read_key_file,
    write_key_file,
)
from ._redact import MIN_SECRET_LENGTH, REDACTED, redact, redact_data, register_secret, secrets_registered

__all__ = [
    "CIPHERS",
    "DEFAULT_CIPHER",
    "KEY_VARIABLE",
    "MIN_SECRET_LENGTH",
    "PREVIOUS_KEYS_VARIABLE",
    "REDACTED",
    "CipherName",
    "DecryptError",
    "Encrypter",
    "Keyring",
    "SettingsError",
    "SettingsFile",
    "appears_encrypted",
    "check_name",
    "format_key",
    "generate_key",
    "keyring_from_env",
    "parse_key",
    "quote",
    "read_key_file",
    "redact",
    "redact_data",
    "register_secret",
    "secrets_registered",
    "unquote",
    "write_atomically",
    "write_key_file",
]
