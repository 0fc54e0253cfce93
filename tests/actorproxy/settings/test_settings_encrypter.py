"""Laravel's Encrypter, payload for payload: known answers, every cipher, rotation, and tampered payloads.

The known answers were made without this code, from Laravel's documented format:
- AES-256-CBC: key bytes 0x00..0x1f, IV bytes 0xa0..0xaf; `value` from
  `printf %s secret-value | openssl enc -aes-256-cbc -K <key hex> -iv <iv hex> -base64 -A`, `mac` from
  `printf %s%s <iv base64> <value> | openssl dgst -sha256 -mac HMAC -macopt hexkey:<key hex>`, then the JSON
  `{"iv","value","mac","tag":""}` without spaces, base64. The serialized one encrypts `s:12:"secret-value";`
  (PHP's `serialize`), as Laravel's `encrypt` does.
- AES-128-CBC: a payload from Laravel's own test suite (tests/Encryption/EncrypterTest.php, key "b" * 16).
- AES-256-GCM: test case 15 of the GCM specification (McGrew and Viega), wrapped as Laravel wraps it.
"""

from __future__ import annotations

import base64
import json

import pytest

from actorproxy.settings import (
    CIPHERS,
    DecryptError,
    Encrypter,
    SettingsError,
    appears_encrypted,
    generate_key,
)

KEY = bytes(range(32))
IV = bytes(range(0xA0, 0xB0))
CBC_STRING = (
    "eyJpdiI6Im9LR2lvNlNscHFlb3FhcXJySzJ1cnc9PSIsInZhbHVlIjoiVXdzZFl2US9Ybk1pSzU0MURrQmQwUT09IiwibWFjIjoiZWIy"
    "OTgyMjRkNzA2YTc0ZTgxMjgyMDg4ODNmYWRkYjEzZDM4NzEwZGQxMTdlYmY3ZGI2ZWYwNjIwODQ2NzY0OCIsInRhZyI6IiJ9"
)
CBC_SERIALIZED = (
    "eyJpdiI6Im9LR2lvNlNscHFlb3FhcXJySzJ1cnc9PSIsInZhbHVlIjoiOVAza2VodmcxSVUwOTZMTi9ZdUJUMjlaNXNSRHVsRnNJVU0y"
    "d1FDa29mTT0iLCJtYWMiOiIzMDVkYmY3ZTFhMTliNDNjZjljYWUxMjY4NTc3MGU1MzE0ODU3MjRiZWRlZjk3NTg1NDljODk1NDg1NjM4"
    "YjI2IiwidGFnIjoiIn0="
)
LARAVEL_AES_128 = (
    "eyJpdiI6Ilg0dFM5TVRibEFqZW54c3lQdWJoVVE9PSIsInZhbHVlIjoiRGJpa2p2ZHI3eUs0dUtRakJneUhUUT09IiwibWFjIjoiMjBj"
    "ZWYxODdhNThhOTk4MTk1NTc0YTE1MDgzODU1OWE0ZmQ4MDc5ZjMxYThkOGM1ZmM1MzlmYzBkYTBjMWI1ZiIsInRhZyI6IiJ9"
)
GCM_KEY = bytes.fromhex("feffe9928665731c6d6a8f9467308308" * 2)
GCM_IV = bytes.fromhex("cafebabefacedbaddecaf888")
GCM_PLAIN = bytes.fromhex(
    "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
    "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b391aafd255"
)
GCM_CIPHER = bytes.fromhex(
    "522dc1f099567d07f47f37a32a84427d643a8cdcbfe5c0c97598a2bd2555d1aa"
    "8cb08e48590dbb3da7b08b1056828838c5f61e6393ba7a0abcc9f662898015ad"
)
GCM_TAG = bytes.fromhex("b094dac5d93471bdec1a502270e3cc6c")


def payload(**fields: object) -> str:
    return base64.b64encode(json.dumps(fields, separators=(",", ":")).encode()).decode()


def fields_of(text: str) -> dict[str, str]:
    data: dict[str, str] = json.loads(base64.b64decode(text))
    return data


def test_aes_256_cbc_known_answers() -> None:
    encrypter = Encrypter(KEY, "AES-256-CBC")
    assert encrypter.encrypt_string("secret-value", iv=IV) == CBC_STRING
    assert encrypter.encrypt("secret-value", iv=IV) == CBC_SERIALIZED
    assert encrypter.decrypt_string(CBC_STRING) == "secret-value"
    assert encrypter.decrypt(CBC_SERIALIZED) == "secret-value"
    assert list(fields_of(CBC_STRING)) == ["iv", "value", "mac", "tag"]


def test_a_payload_laravel_made_with_aes_128_cbc() -> None:
    assert Encrypter(b"b" * 16, "aes-128-cbc").decrypt_string(LARAVEL_AES_128) == "foo"


def test_aes_256_gcm_known_answer() -> None:
    expected = payload(
        iv=base64.b64encode(GCM_IV).decode(),
        value=base64.b64encode(GCM_CIPHER).decode(),
        mac="",
        tag=base64.b64encode(GCM_TAG).decode(),
    )
    encrypter = Encrypter(GCM_KEY, "AES-256-GCM")
    assert encrypter.encrypt(GCM_PLAIN, serialize=False, iv=GCM_IV) == expected
    assert encrypter.decrypt_bytes(expected) == GCM_PLAIN


@pytest.mark.parametrize("cipher", CIPHERS)
def test_every_cipher_round_trips_with_random_ivs(cipher: str) -> None:
    encrypter = Encrypter(generate_key(cipher), cipher)
    first, second = encrypter.encrypt("héllo wörld"), encrypter.encrypt("héllo wörld")
    assert first != second  # a fresh IV each time
    assert encrypter.decrypt(first) == encrypter.decrypt(second) == "héllo wörld"
    assert encrypter.decrypt_string(encrypter.encrypt_string("")) == ""
    iv_size = 12 if cipher.endswith("GCM") else 16
    assert len(base64.b64decode(fields_of(first)["iv"])) == iv_size
    assert (fields_of(first)["mac"] == "") == cipher.endswith("GCM")


def test_previous_keys_decrypt_during_rotation() -> None:
    old, new = generate_key(), generate_key()
    written = Encrypter(old).encrypt_string("rotated")
    assert Encrypter(new, previous_keys=[old]).decrypt_string(written) == "rotated"
    with pytest.raises(DecryptError, match="the MAC is invalid"):
        Encrypter(new).decrypt_string(written)
    gcm_old, gcm_new = generate_key("AES-256-GCM"), generate_key("AES-256-GCM")
    sealed = Encrypter(gcm_old, "AES-256-GCM").encrypt_string("rotated")
    assert Encrypter(gcm_new, "AES-256-GCM", [gcm_old]).decrypt_string(sealed) == "rotated"


def _tampered(text: str, **changes: object) -> str:
    fields: dict[str, object] = {**fields_of(text), **changes}
    return payload(**{key: value for key, value in fields.items() if value is not None})


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: _tampered(p, mac="0" * 64), "the MAC is invalid"),
        (lambda p: _tampered(p, value=base64.b64encode(b"x" * 16).decode()), "the MAC is invalid"),
        (
            lambda p: _tampered(p, iv=base64.b64encode(b"x" * 8).decode()),
            "its IV is 8 bytes, AES-256-CBC takes 16",
        ),
        (lambda p: _tampered(p, iv="not base64!"), "its IV is not base64"),
        (lambda p: _tampered(p, mac=None), "'mac' is missing or not a string"),
        (lambda p: _tampered(p, value=["a"]), "'value' is missing or not a string"),
        (lambda p: _tampered(p, tag=-1), "'tag' is not a string"),
        (lambda p: _tampered(p, tag=base64.b64encode(b"t" * 16).decode()), "not an AEAD cipher"),
        (lambda p: "%%%" + p, "the payload is invalid: not base64"),
        (lambda p: base64.b64encode(b"[1, 2]").decode(), "not a JSON object"),
        (lambda p: base64.b64encode(b"{nope").decode(), "not a JSON object"),
    ],
)
def test_a_tampered_cbc_payload_gets_a_clear_error(make: object, message: str) -> None:
    encrypter = Encrypter(KEY)
    with pytest.raises(DecryptError, match=message):
        encrypter.decrypt_string(make(CBC_STRING))  # type: ignore[operator]


def test_a_wrong_key_is_refused_before_anything_is_decrypted() -> None:
    with pytest.raises(DecryptError, match="encrypted with another key"):
        Encrypter(bytes(32)).decrypt_string(CBC_STRING)


def test_a_tampered_gcm_payload_gets_a_clear_error() -> None:
    encrypter = Encrypter(GCM_KEY, "AES-256-GCM")
    good = encrypter.encrypt_string("sealed")
    flipped = bytearray(base64.b64decode(fields_of(good)["value"]))
    flipped[0] ^= 1
    with pytest.raises(DecryptError, match="the tag does not match"):
        encrypter.decrypt_string(_tampered(good, value=base64.b64encode(bytes(flipped)).decode()))
    with pytest.raises(DecryptError, match="the tag is 4 bytes"):
        encrypter.decrypt_string(_tampered(good, tag=base64.b64encode(b"abcd").decode()))
    with pytest.raises(DecryptError, match="the tag is 0 bytes"):
        encrypter.decrypt_string(_tampered(good, tag=""))


def test_decrypt_refuses_what_is_not_a_serialized_string() -> None:
    encrypter = Encrypter(KEY)
    with pytest.raises(DecryptError, match="not a serialized PHP string"):
        encrypter.decrypt(encrypter.encrypt_string("plain"))
    with pytest.raises(DecryptError, match="its length does not match"):
        encrypter.decrypt(encrypter.encrypt_string('s:9:"short";'))


def test_keys_and_ciphers_are_checked() -> None:
    with pytest.raises(SettingsError, match="takes a 32-byte key"):
        Encrypter(b"short")
    with pytest.raises(SettingsError, match="a previous key is 16 bytes"):
        Encrypter(KEY, previous_keys=[b"x" * 16])
    with pytest.raises(SettingsError, match="unsupported cipher 'AES-256-CFB8'"):
        Encrypter(KEY, "AES-256-CFB8")
    assert "KEY" not in repr(Encrypter(KEY)) and KEY.hex() not in repr(Encrypter(KEY))


def test_appears_encrypted_is_laravels_shape_test() -> None:
    assert appears_encrypted(CBC_STRING) and appears_encrypted(LARAVEL_AES_128)
    assert not appears_encrypted("plain text")
    assert not appears_encrypted(base64.b64encode(b'{"iv":"a","value":"b"}').decode())
    assert not appears_encrypted("")
