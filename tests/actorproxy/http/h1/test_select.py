"""Choosing a codec: by name, from `ACTORPROXY_CODEC`, or the fastest installed; registering one."""

from __future__ import annotations

import importlib.metadata

import pytest

from actorproxy.http import (
    CODEC_ENV,
    Codec,
    H11ClientConnection,
    H11ServerConnection,
    available_codecs,
    register_codec,
    select_codec,
)
from actorproxy.http.h1 import _select


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv(CODEC_ENV, raising=False)
    return monkeypatch


def test_both_codecs_are_available_fastest_first() -> None:
    pytest.importorskip("httptools")
    assert available_codecs() == ["httptools", "h11"]


def test_h11_is_the_h11_classes() -> None:
    codec = select_codec("h11")
    assert (codec.name, codec.server, codec.client) == ("h11", H11ServerConnection, H11ClientConnection)


def test_httptools_is_the_httptools_classes() -> None:
    pytest.importorskip("httptools")
    codec = select_codec(" HttpTools ")
    assert codec.name == "httptools"
    assert (codec.server.__name__, codec.client.__name__) == (
        "HttptoolsServerConnection",
        "HttptoolsClientConnection",
    )


def test_auto_and_nothing_pick_the_fastest(no_env: pytest.MonkeyPatch) -> None:
    fastest = available_codecs()[0]
    assert select_codec().name == fastest
    assert select_codec("auto").name == fastest


def test_the_environment_picks_unless_a_name_is_given(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv(CODEC_ENV, "h11")
    assert select_codec().name == "h11"
    assert select_codec(available_codecs()[0]).name == available_codecs()[0]


def test_an_unknown_codec_names_the_available_ones(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(
        ValueError, match=r"ACTORPROXY_CODEC: unknown or unavailable codec 'picohttp'"
    ) as info:
        select_codec("picohttp")
    assert f"(available: {', '.join(available_codecs())})" in str(info.value)
    no_env.setenv(CODEC_ENV, "picohttp")
    with pytest.raises(ValueError, match="'picohttp'"):
        select_codec()


def test_a_registered_codec_replaces_the_one_of_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_select, "_CODECS", dict(_select._CODECS))
    mine = Codec("h11", H11ServerConnection, H11ClientConnection)
    register_codec(mine)
    assert select_codec("h11") is mine


def test_falling_back_to_h11_for_want_of_httptools_is_said_once(
    no_env: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    no_env.setattr(_select, "_HTTPTOOLS_INSTALLED", False)
    no_env.setattr(_select, "_CODECS", {"h11": _select._CODECS["h11"]})
    no_env.setattr(_select, "_warned", [])
    with caplog.at_level("WARNING", logger="actorproxy.http"):
        assert select_codec().name == "h11"
        assert select_codec("auto").name == "h11"
        assert select_codec("h11").name == "h11"  # asked for by name: nothing to say
    assert [record.getMessage()[:46] for record in caplog.records] == [
        "httptools is not installed: HTTP/1.1 runs on t"
    ]


def test_httptools_is_a_dependency() -> None:
    requires = importlib.metadata.requires("actorproxy") or []
    assert any(line.startswith("httptools") and "extra ==" not in line for line in requires)
