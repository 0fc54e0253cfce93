"""The settings file: python-dotenv's syntax, changes that keep every other line, whole-file writes."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from actorproxy.settings import (
    Encrypter,
    SettingsError,
    SettingsFile,
    _atomic,  # the write step, to make it fail halfway
    generate_key,
    quote,
    unquote,
)

TEXT = """\
# the upstream's credentials
export API_USER=alice   # inline comment
API_PASSWORD='it\\'s'
GREETING="hello\\nworld"

ACTORPROXY__THREADS=2
"""


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")))
def test_quote_round_trips_through_python_dotenv(value: str) -> None:
    assert unquote(quote(value)) == value


def test_safe_values_stay_unquoted() -> None:
    assert quote("base64:AbC+/=") == "base64:AbC+/="
    assert quote("a b") == "'a b'"
    assert quote("it's \\") == "'it\\'s \\\\'"


def test_values_follow_python_dotenv(tmp_path: Path) -> None:
    path = tmp_path / "actorproxy.env"
    path.write_text(TEXT)
    values = SettingsFile.read(path).values()
    assert values == {
        "API_USER": "alice",
        "API_PASSWORD": "it's",
        "GREETING": "hello\nworld",
        "ACTORPROXY__THREADS": "2",
    }


def test_setting_a_value_keeps_every_other_line(tmp_path: Path) -> None:
    path = tmp_path / "actorproxy.env"
    path.write_text(TEXT)
    settings = SettingsFile.read(path).with_value("API_USER", "bob smith").with_value("NEW", "x")
    assert (
        settings.text
        == TEXT.replace("export API_USER=alice   # inline comment\n", "API_USER='bob smith'\n") + "NEW=x\n"
    )
    assert settings.without("GREETING").without("NEW").values() == {
        "API_USER": "bob smith",
        "API_PASSWORD": "it's",
        "ACTORPROXY__THREADS": "2",
    }
    assert path.read_text() == TEXT  # nothing is written before save()


def test_an_encrypted_value_is_laravels_readable_format(tmp_path: Path) -> None:
    encrypter = Encrypter(generate_key())
    settings = SettingsFile(str(tmp_path / "s.env")).with_value("TOKEN", "a b'c", encrypter)
    written = settings.get("TOKEN")
    assert written is not None and settings.is_encrypted("TOKEN")
    assert encrypter.decrypt_string(written) == quote("a b'c")  # the value as the file would write it
    assert settings.decrypted("TOKEN", encrypter) == "a b'c"
    with pytest.raises(SettingsError, match=r"TOKEN in .* is encrypted and no key is set"):
        settings.decrypted("TOKEN", None)


def test_a_line_that_cannot_be_read_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.env"
    path.write_text("GOOD=1\nBAD='unclosed\n")
    with pytest.raises(SettingsError, match=r"bad.env, line 2: cannot read \"BAD='unclosed\""):
        SettingsFile.read(path).values()


def test_names_are_checked(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="not a variable name"):
        SettingsFile(str(tmp_path / "s.env")).with_value("1BAD", "x")


def test_save_replaces_the_file_whole_and_keeps_its_permissions(tmp_path: Path) -> None:
    path = tmp_path / "actorproxy.env"
    path.write_text(TEXT)
    path.chmod(0o640)
    SettingsFile.read(path).with_value("API_USER", "carol").save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert SettingsFile.read(path).get("API_USER") == "carol"
    new = tmp_path / "new.env"
    SettingsFile.read(new).with_value("A", "1").save()
    assert stat.S_IMODE(new.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["actorproxy.env", "new.env"]


def test_a_write_that_fails_halfway_leaves_the_file_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "actorproxy.env"
    path.write_text(TEXT)

    def no_room(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_atomic.os, "fsync", no_room)
    with pytest.raises(SettingsError, match="No space left on device"):
        SettingsFile.read(path).with_value("API_USER", "mallory").save()
    assert path.read_text() == TEXT
    assert os.listdir(tmp_path) == ["actorproxy.env"]  # no temporary file left behind
