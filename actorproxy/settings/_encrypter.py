"""`Encrypter`: Laravel's `Illuminate\\Encryption\\Encrypter`, payload for payload.

Rules (Laravel's, so a key and a payload can be shared with a Laravel application):
- A payload is base64 of the JSON object `{"iv", "value", "mac", "tag"}` (in that order, no spaces, slashes
  unescaped): `iv` is the base64 of a random IV (16 bytes for CBC, 12 for GCM), `value` the base64 of the
  ciphertext (PKCS#7 padding for CBC), `mac` the hex HMAC-SHA256, keyed with the raw key, of the base64 `iv`
  followed by the base64 `value` (empty for GCM), `tag` the base64 GCM tag (empty for CBC).
- `encrypt` wraps the value in PHP's `serialize` first (Laravel's `encrypt`); `encrypt_string` does not
  (Laravel's `encryptString`). `decrypt` and `decrypt_string` undo each.
- Decryption checks the payload's shape, then (CBC) the MAC in constant time with the current key and each
  previous key in turn, and decrypts with the first key whose MAC matches; GCM tries each key until the tag
  verifies. Nothing is decrypted before it is authenticated.
- The cryptography is the `cryptography` package's; this module only arranges the bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, get_args

import attrs
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ._errors import DecryptError, SettingsError
from ._php import serialize_string, unserialize_string

__all__ = ["CIPHERS", "DEFAULT_CIPHER", "CipherName", "Encrypter", "appears_encrypted", "generate_key"]

CipherName = Literal["AES-256-CBC", "AES-256-GCM", "AES-128-CBC", "AES-128-GCM"]
#: The ciphers Laravel's Encrypter supports (its `$supportedCiphers`), by their upper-case names.
CIPHERS: Final[tuple[CipherName, ...]] = get_args(CipherName)
#: Laravel's `config/app.php` cipher, and `env:encrypt`'s default.
DEFAULT_CIPHER: Final[CipherName] = "AES-256-CBC"

# The IV lengths OpenSSL uses for these modes (PHP's `openssl_cipher_iv_length`), and the GCM tag Laravel
# requires in full.
_CBC_IV_SIZE = 16
_GCM_IV_SIZE = 12
_GCM_TAG_SIZE = 16
_AES_BLOCK_BITS = 128


@attrs.frozen
class _Spec:
    name: CipherName
    key_size: int
    aead: bool

    @property
    def iv_size(self) -> int:
        return _GCM_IV_SIZE if self.aead else _CBC_IV_SIZE


def _spec(cipher: str) -> _Spec:
    name = cipher.upper()
    if name not in CIPHERS:
        raise SettingsError(f"unsupported cipher {cipher!r}; supported: {', '.join(CIPHERS)}")
    return _Spec(name, 16 if name.startswith("AES-128") else 32, name.endswith("GCM"))


def generate_key(cipher: str = DEFAULT_CIPHER) -> bytes:
    """A new random key for `cipher` (Laravel's `Encrypter::generateKey`): 32 bytes for AES-256, 16 for 128.

    Raises:
        SettingsError: an unsupported cipher.
    """
    return os.urandom(_spec(cipher).key_size)


def _b64decode(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DecryptError(f"the payload is invalid: its {what} is not base64") from None


def _payload(text: str) -> dict[str, Any]:
    """The payload's JSON object, checked for Laravel's keys and types (its `validPayload`)."""
    try:
        raw = base64.b64decode(text.strip().encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DecryptError("the payload is invalid: not base64") from None
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        raise DecryptError("the payload is invalid: not a JSON object") from None
    if not isinstance(data, dict):
        raise DecryptError("the payload is invalid: not a JSON object")
    for item in ("iv", "value", "mac"):
        if not isinstance(data.get(item), str):
            raise DecryptError(f"the payload is invalid: {item!r} is missing or not a string")
    if data.get("tag") is not None and not isinstance(data["tag"], str):
        raise DecryptError("the payload is invalid: 'tag' is not a string")
    return data


def appears_encrypted(value: object) -> bool:
    """Whether `value` looks like a payload (Laravel's `Encrypter::appearsEncrypted`): base64 of a JSON object
    with `iv`, `value` and `mac`. It says nothing of whether the payload is intact."""
    if not isinstance(value, str) or not value:
        return False
    try:
        data = json.loads(base64.b64decode(value.strip().encode("ascii"), validate=True))
    except (binascii.Error, UnicodeError, ValueError):
        return False
    return isinstance(data, dict) and all(data.get(item) is not None for item in ("iv", "value", "mac"))


class Encrypter:
    """Encrypts and decrypts Laravel payloads with one key, and decrypts with previous keys during rotation.

    Args:
        key: the raw key (16 bytes for AES-128, 32 for AES-256); see `parse_key` for `base64:...` text.
        cipher: one of `CIPHERS`, in any case (Laravel's names).
        previous_keys: keys tried after `key` when decrypting (Laravel's `APP_PREVIOUS_KEYS`).

    Raises:
        SettingsError: an unsupported cipher, or a key of the wrong length for it.
    """

    def __init__(self, key: bytes, cipher: str = DEFAULT_CIPHER, previous_keys: Sequence[bytes] = ()) -> None:
        self._spec = _spec(cipher)
        for which, candidate in [("the key", key), *(("a previous key", k) for k in previous_keys)]:
            if len(candidate) != self._spec.key_size:
                raise SettingsError(
                    f"{which} is {len(candidate)} bytes; {self._spec.name} takes a {self._spec.key_size}-byte"
                    " key"
                )
        self._keys = (key, *previous_keys)

    def __repr__(self) -> str:  # never the key
        return f"<Encrypter {self._spec.name} previous_keys={len(self._keys) - 1}>"

    @property
    def cipher(self) -> CipherName:
        """The cipher's name, upper case."""
        return self._spec.name

    # -- encrypting ------------------------------------------------------------------------------------------

    def encrypt(self, value: str | bytes, *, serialize: bool = True, iv: bytes | None = None) -> str:
        """A payload for `value` (UTF-8 when text); `serialize` wraps it in PHP's `serialize` first, as
        Laravel's `encrypt` does.

        Args:
            iv: the IV to use instead of a random one, for known-answer tests only: an IV must never be
                reused with the same key.
        """
        data = value.encode("utf-8") if isinstance(value, str) else value
        if serialize:
            data = serialize_string(data)
        spec = self._spec
        key = self._keys[0]
        if iv is None:
            iv = os.urandom(spec.iv_size)
        elif len(iv) != spec.iv_size:
            raise SettingsError(f"{spec.name} takes a {spec.iv_size}-byte IV, got {len(iv)}")
        if spec.aead:
            sealed = AESGCM(key).encrypt(iv, data, None)
            ciphertext, tag = sealed[:-_GCM_TAG_SIZE], sealed[-_GCM_TAG_SIZE:]
        else:
            padder = padding.PKCS7(_AES_BLOCK_BITS).padder()
            encryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
            ciphertext = encryptor.update(padder.update(data) + padder.finalize()) + encryptor.finalize()
            tag = b""
        iv_text = base64.b64encode(iv).decode("ascii")
        value_text = base64.b64encode(ciphertext).decode("ascii")
        mac = "" if spec.aead else _mac(iv_text, value_text, key)
        fields = {
            "iv": iv_text,
            "value": value_text,
            "mac": mac,
            "tag": base64.b64encode(tag).decode("ascii"),
        }
        return base64.b64encode(json.dumps(fields, separators=(",", ":")).encode("ascii")).decode("ascii")

    def encrypt_string(self, value: str, *, iv: bytes | None = None) -> str:
        """A payload for `value` without serialization (Laravel's `encryptString`)."""
        return self.encrypt(value, serialize=False, iv=iv)

    # -- decrypting ------------------------------------------------------------------------------------------

    def decrypt(self, payload: str, *, unserialize: bool = True) -> str:
        """The text in `payload`; `unserialize` undoes PHP's `serialize` (Laravel's `decrypt`).

        Raises:
            DecryptError: the payload is malformed (the message says how), its MAC or tag does not match any
                key, or the decrypted data is not what was expected (UTF-8 text, a serialized string).
        """
        data = self.decrypt_bytes(payload)
        if unserialize:
            data = unserialize_string(data)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("the decrypted data is not UTF-8 text") from None

    def decrypt_string(self, payload: str) -> str:
        """The text in a payload made without serialization (Laravel's `decryptString`)."""
        return self.decrypt(payload, unserialize=False)

    def decrypt_bytes(self, payload: str) -> bytes:
        """The plaintext bytes in `payload`, as they were encrypted (serialized or not).

        Raises:
            DecryptError: see `decrypt`.
        """
        spec = self._spec
        fields = _payload(payload)
        iv = _b64decode(fields["iv"], "IV")
        if len(iv) != spec.iv_size:
            raise DecryptError(
                f"the payload is invalid: its IV is {len(iv)} bytes, {spec.name} takes {spec.iv_size}"
            )
        ciphertext = _b64decode(fields["value"], "value")
        tag = _b64decode(fields["tag"], "tag") if fields.get("tag") else None
        if spec.aead:
            if tag is None or len(tag) != _GCM_TAG_SIZE:
                got = 0 if tag is None else len(tag)
                raise DecryptError(
                    f"could not decrypt the data: the tag is {got} bytes, {spec.name} needs 16"
                )
            return self._open_gcm(iv, ciphertext, tag)
        if tag is not None:
            raise DecryptError(f"the payload has a tag, but {spec.name} is not an AEAD cipher")
        return self._open_cbc(fields, iv, ciphertext)

    def _open_gcm(self, iv: bytes, ciphertext: bytes, tag: bytes) -> bytes:
        for key in self._keys:
            try:
                return AESGCM(key).decrypt(iv, ciphertext + tag, None)
            except InvalidTag:
                continue
        raise DecryptError(
            "could not decrypt the data: the tag does not match (the payload was changed, or it was encrypted"
            " with another key)"
        )

    def _open_cbc(self, fields: Mapping[str, str], iv: bytes, ciphertext: bytes) -> bytes:
        given = fields["mac"].encode("utf-8")
        macs = ((k, _mac(fields["iv"], fields["value"], k).encode("ascii")) for k in self._keys)
        key = next((k for k, mac in macs if hmac.compare_digest(mac, given)), None)
        if key is None:
            raise DecryptError(
                "the MAC is invalid: the payload was changed, or it was encrypted with another key"
            )
        try:
            decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
            padded = decryptor.update(ciphertext) + decryptor.finalize()
            unpadder = padding.PKCS7(_AES_BLOCK_BITS).unpadder()
            return unpadder.update(padded) + unpadder.finalize()
        except ValueError:  # a ciphertext that is not whole blocks, or bad padding
            raise DecryptError(
                "could not decrypt the data: the ciphertext or its padding is invalid"
            ) from None


def _mac(iv: str, value: str, key: bytes) -> str:
    # Laravel's hash(): hash_hmac('sha256', $iv.$value, $key), over the base64 texts, as lowercase hex.
    return hmac.new(key, (iv + value).encode("ascii"), hashlib.sha256).hexdigest()
