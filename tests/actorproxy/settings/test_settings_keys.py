"""Keys: Laravel's `base64:` text, the key variables, key files only their owner may read, remembered keys."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from actorproxy.settings import (
    REDACTED,
    Keyring,
    SettingsError,
    _keys,  # to take the read permission away after the first read
    format_key,
    generate_key,
    keyring_from_env,
    parse_key,
    read_key_file,
    redact,
    redact_data,
    register_secret,
    write_key_file,
)


def test_keys_are_written_and_read_as_laravels_app_key() -> None:
    key = bytes(range(32))
    assert format_key(key) == "base64:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    assert parse_key(format_key(key)) == key
    assert parse_key("0123456789abcdef") == b"0123456789abcdef"  # no prefix: the raw key, as Laravel
    with pytest.raises(SettingsError, match="not base64"):
        parse_key("base64:%%%")


def test_the_key_variables() -> None:
    new, old = generate_key(), generate_key()
    env = {"ACTORPROXY_KEY": format_key(new), "ACTORPROXY_PREVIOUS_KEYS": f"{format_key(old)}, "}
    keyring = keyring_from_env(env)
    assert keyring is not None and keyring.key == new and keyring.previous == (old,)
    assert keyring_from_env({}) is None
    assert format_key(new) not in repr(keyring)


def test_a_key_file_is_written_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "actorproxy.key"
    keyring = Keyring(generate_key(), (generate_key(),))
    write_key_file(path, keyring)
    assert path.stat().st_mode & 0o777 == 0o600
    read = read_key_file(path)
    assert (read.key, read.previous) == (keyring.key, keyring.previous)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o666])
def test_a_key_file_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "actorproxy.key"
    write_key_file(path, Keyring(generate_key()))
    path.chmod(mode)
    with pytest.raises(SettingsError, match=rf"its mode is {mode:#o}.*chmod 600"):
        read_key_file(path)


def test_a_key_file_that_is_empty_or_missing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    empty.chmod(0o600)
    with pytest.raises(SettingsError, match="holds no key"):
        read_key_file(empty)
    with pytest.raises(SettingsError, match="No such file"):
        read_key_file(tmp_path / "missing.key")


def test_a_key_file_read_once_is_remembered_when_it_may_no_longer_be_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, never = tmp_path / "root-only.key", tmp_path / "never-read.key"
    keyring = Keyring(generate_key())
    write_key_file(path, keyring)
    write_key_file(never, Keyring(generate_key()))
    assert read_key_file(path).key == keyring.key

    def denied(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # What a reload sees once the server switched to its `user`.
    monkeypatch.setattr(_keys, "open", denied, raising=False)
    assert read_key_file(path).key == keyring.key
    with pytest.raises(SettingsError, match=r"never-read\.key: permission denied"):
        read_key_file(never)


def test_registered_secrets_are_redacted_in_text_data_and_logs(caplog: pytest.LogCaptureFixture) -> None:
    register_secret("tok-3f9a1c-longer")
    register_secret("tok-3f9a1c")
    assert redact("a tok-3f9a1c-longer b tok-3f9a1c") == f"a {REDACTED} b {REDACTED}"
    assert redact_data({"k": ["tok-3f9a1c", 1]}) == {"k": [REDACTED, 1]}
    logger = logging.getLogger("actorproxy.test")
    with caplog.at_level(logging.INFO):
        logger.info("header %s", "Bearer tok-3f9a1c")
        try:
            raise ValueError("bad token tok-3f9a1c")
        except ValueError:
            logger.exception("failed")
    assert "tok-3f9a1c" not in caplog.text
    assert f"header Bearer {REDACTED}" in caplog.text and f"bad token {REDACTED}" in caplog.text


def test_a_secret_too_short_to_redact_is_refused() -> None:
    with pytest.raises(SettingsError, match="too short to be kept out of logs"):
        register_secret("abc")
    assert redact("abc") == "abc"
