"""Environment overrides: applied after the file, before validation, named in errors; never the real env."""

from __future__ import annotations

import pytest

from actorproxy.config import ENV_PREFIX, ENV_SEPARATOR, ConfigError, ServerConf

PROXY = """
services:
  - name: web
    listeners: [{address: 127.0.0.1:6191}]
    routes: [{upstream: App}]
upstreams:
  - name: App
    discovery: {static: [127.0.0.1:9001]}
"""


def load(text: str = "", **env: str) -> ServerConf:
    return ServerConf.from_yaml(text, env=env)


def test_the_prefix_and_separator() -> None:
    assert (ENV_PREFIX, ENV_SEPARATOR) == ("ACTORPROXY__", "__")


def test_values_are_yaml_scalars_and_override_the_file() -> None:
    conf = load(
        "threads: 2\ndaemon: false\n",
        ACTORPROXY__THREADS="4",
        ACTORPROXY__DAEMON="true",
        ACTORPROXY__GRACE_PERIOD_SECONDS="30",
        ACTORPROXY__USER="nobody",
        ACTORPROXY__ERROR_LOG="",
        ACTORPROXY__CLIENT_BIND_TO_IPV4="[10.0.0.1, 10.0.0.2]",
    )
    assert (conf.threads, conf.daemon, conf.grace_period_seconds, conf.user) == (4, True, 30.0, "nobody")
    assert conf.error_log is None
    assert conf.client_bind_to_ipv4 == ("10.0.0.1", "10.0.0.2")


def test_text_that_is_not_yaml_or_looks_like_a_block_stays_text() -> None:
    conf = load(
        ACTORPROXY__MY_APP__A="key: value", ACTORPROXY__MY_APP__B="[unclosed", ACTORPROXY__MY_APP__C="- x"
    )
    assert conf.get("my_app") == {"a": "key: value", "b": "[unclosed", "c": "- x"}


def test_user_defined_keys_are_created_and_lower_cased() -> None:
    conf = load(
        "my_app: {Token: old, other: 1}\n", ACTORPROXY__MY_APP__TOKEN="x", ACTORPROXY__NEW__DEEP__KEY="1"
    )
    assert conf.get("my_app") == {"Token": "x", "other": 1}  # an existing key matches in any case
    assert conf.extra["new"]["deep"]["key"] == 1


def test_list_items_are_picked_by_position_or_name() -> None:
    conf = load(
        PROXY,
        ACTORPROXY__SERVICES__0__LISTENERS__0__ADDRESS="127.0.0.1:7000",
        ACTORPROXY__UPSTREAMS__APP__ALGORITHM="random",
        ACTORPROXY__SERVICES__WEB__ROUTES__0__RETRIES="2",
    )
    assert conf.get("services.0.listeners.0.address") == "127.0.0.1:7000"
    assert conf.get("upstreams.App.algorithm") == "random"
    assert conf.services[0].routes[0].retries == 2


def test_a_bad_value_names_the_variable_and_the_key_path() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml("threads: 2", env={"ACTORPROXY__THREADS": "four"}, source="conf.yaml")
    assert (
        str(caught.value) == "conf.yaml: threads: expected an int >= 1, got 'four' (from ACTORPROXY__THREADS)"
    )
    with pytest.raises(ConfigError) as caught:
        load(PROXY, ACTORPROXY__UPSTREAMS__0__DISCOVERY__STATIC="[nope]")
    assert str(caught.value) == (
        "upstreams[0].discovery.static[0].addr: not host:port (no port)"
        " (from ACTORPROXY__UPSTREAMS__0__DISCOVERY__STATIC)"
    )
    with pytest.raises(ConfigError) as caught:
        load(PROXY, ACTORPROXY__UPSTREAMS__APP__NAME="api")
    assert "services[0].routes[0].upstream: no upstream named 'App' (known: api)" in str(caught.value)
    assert "(from" not in str(caught.value)  # the route was not overridden; the name was, elsewhere


def test_a_path_that_cannot_be_followed_is_an_error_naming_the_variable() -> None:
    with pytest.raises(ConfigError) as caught:
        load(PROXY + "my_app: 3\n", ACTORPROXY__SERVICES__5__NAME="x", ACTORPROXY__MY_APP__TOKEN="t")
    assert [str(problem) for problem in caught.value.problems] == [
        "my_app: is 3, not a mapping or a list, so it has no key 'token' (from ACTORPROXY__MY_APP__TOKEN)",
        "services: no item '5' in this list of 1 (an override cannot add one)"
        " (from ACTORPROXY__SERVICES__5__NAME)",
    ]
    with pytest.raises(ConfigError, match="ACTORPROXY__A____B: a key path part is empty"):
        load(ACTORPROXY__A____B="1")


def test_variables_apply_in_sorted_order() -> None:
    # The parent is set first, then the child replaces a key inside it.
    conf = load(ACTORPROXY__MY_APP="{a: 1, b: 2}", ACTORPROXY__MY_APP__B="3")
    assert conf.get("my_app") == {"a": 1, "b": 3}


def test_other_variables_and_no_env_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACTORPROXY__THREADS", "9")
    assert ServerConf.from_yaml("threads: 2").threads == 2  # no env given: none read
    assert load("threads: 2", ACTORPROXY_THREADS="9", PATH="/bin", actorproxy__threads="9").threads == 2
