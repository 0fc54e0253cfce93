"""User-defined keys: kept, read-only and reachable; a near miss of a known key warns with "did you mean"."""

from __future__ import annotations

import types
import warnings

import pytest

from actorproxy.config import PINGORA_RUNTIME_KEYS, ConfigError, ConfigWarning, ServerConf


def load_quietly(text: str, **kwargs: object) -> ServerConf:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning expected
        return ServerConf.from_yaml(text, **kwargs)  # type: ignore[arg-type]


def test_unknown_top_level_keys_are_kept_and_reachable() -> None:
    conf = load_quietly("threads: 2\nmy_app:\n  token: s3cret\n  ports: [80, 443]\nfeature_flag: true\n")
    assert conf.extra["my_app"]["token"] == "s3cret"
    assert conf.get("my_app.token") == "s3cret"
    assert conf.get("my_app.ports.1") == 443
    assert conf.get("feature_flag") is True
    assert set(conf.extra) == {"my_app", "feature_flag"}


def test_kept_keys_are_deeply_read_only() -> None:
    conf = load_quietly("my_app: {token: x, ports: [1]}")
    assert isinstance(conf.extra, types.MappingProxyType)
    with pytest.raises(TypeError):
        conf.extra["my_app"]["token"] = "y"
    assert conf.extra["my_app"]["ports"] == (1,)


def test_a_key_named_extra_in_the_file_is_user_defined_too() -> None:
    conf = load_quietly("extra: {a: 1}")
    assert conf.extra["extra"] == {"a": 1}
    assert conf.get("extra.a") == 1


def test_a_near_miss_warns_naming_the_key_and_the_known_one() -> None:
    with pytest.warns(ConfigWarning) as record:
        conf = ServerConf.from_yaml("thread: 4\nupstream: []\n", source="conf.yaml")
    messages = [str(warning.message) for warning in record]
    assert messages == [
        "conf.yaml: unknown key 'thread' (did you mean 'threads'?); it is kept in extra",
        "conf.yaml: unknown key 'upstream' (did you mean 'upstreams'?); it is kept in extra",
    ]
    assert conf.threads == 1 and conf.extra["thread"] == 4


def test_a_near_miss_from_the_environment_names_the_variable() -> None:
    with pytest.warns(
        ConfigWarning, match=r"unknown key 'thread' \(did you mean 'threads'\?\) \(from ACTORPROXY__THREAD\)"
    ):
        ServerConf.from_yaml("", env={"ACTORPROXY__THREAD": "4"})


def test_pingora_runtime_keys_are_kept_without_a_warning() -> None:
    assert (
        "downstream_tls_offload_threadpools" in PINGORA_RUNTIME_KEYS
    )  # close to upstream_connect_offload_...
    text = "".join(f"{key}: 1\n" for key in sorted(PINGORA_RUNTIME_KEYS))
    conf = load_quietly(text)
    assert set(conf.extra) == PINGORA_RUNTIME_KEYS


def test_far_away_unknown_keys_do_not_warn() -> None:
    assert load_quietly("completely_different: 1").extra == {"completely_different": 1}


def test_unknown_keys_inside_the_proxy_sections_are_errors() -> None:
    text = "upstreams: [{name: a, discovery: {static: ['1.2.3.4:1']}, algoritm: random, colour: blue}]"
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(text)
    assert [str(problem) for problem in caught.value.problems] == [
        "upstreams[0].algoritm: unknown key (did you mean 'algorithm'?)",
        "upstreams[0].colour: unknown key (expected one of name, discovery, algorithm, health_check,"
        " update_frequency, passive_health, alpn, max_h2_streams)",
    ]
