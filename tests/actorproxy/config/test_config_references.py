"""`${secret:NAME}` and `${env:NAME}` in the configuration, the settings file's overrides, and redaction."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from actorproxy.config import (
    ConfigError,
    ServerConf,
    changed_paths,
    effective_config,
    explain_conf,
    load_conf,
    load_explained,
)
from actorproxy.settings import REDACTED, Keyring, SettingsFile, format_key, generate_key, write_key_file

KEY = generate_key()
ENV = {"ACTORPROXY_KEY": format_key(KEY)}

YAML = """
services:
  - name: edge
    listeners: [{address: "127.0.0.1:0"}]
    routes:
      - upstream: app
        request_headers:
          set: {Authorization: "Bearer ${secret:UPSTREAM_TOKEN}", X-Literal: "$${kept}"}
upstreams:
  - name: app
    discovery: {static: ["127.0.0.1:9"]}
"""


def write(tmp_path: Path, yaml: str = YAML, **values: str) -> Path:
    settings = SettingsFile.read(tmp_path / "actorproxy.env")
    encrypter = Keyring(KEY).encrypter()
    for name, value in values.items():
        secret = name.startswith("SECRET_") or name == "UPSTREAM_TOKEN"
        settings = settings.with_value(name, value, encrypter if secret else None)
    settings.save()
    path = tmp_path / "proxy.yaml"
    path.write_text(textwrap.dedent(yaml))
    return path


def auth(conf: ServerConf) -> str:
    value: str = conf.services[0].routes[0].request_headers.set["Authorization"]
    return value


def test_a_secret_from_the_settings_file_is_decrypted_and_never_dumped(tmp_path: Path) -> None:
    conf = load_conf(write(tmp_path, UPSTREAM_TOKEN="tok-7d1e44"), env=ENV)
    assert auth(conf) == "Bearer tok-7d1e44"
    assert conf.services[0].routes[0].request_headers.set["X-Literal"] == "${kept}"
    for dump in (conf.to_yaml(), conf.to_toml(), str(conf.to_mapping()), str(effective_config(conf))):
        assert "tok-7d1e44" not in dump and f"Bearer {REDACTED}" in dump


def test_the_environment_comes_before_the_settings_file(tmp_path: Path) -> None:
    path = write(tmp_path, UPSTREAM_TOKEN="from-file-1")
    assert auth(load_conf(path, env={**ENV, "UPSTREAM_TOKEN": "from-env-22"})) == "Bearer from-env-22"


def test_env_references_with_defaults_and_types(tmp_path: Path) -> None:
    yaml = """
    threads: ${env:THREADS}
    max_retries: ${env:RETRIES:-2}
    pid_file: /run/${env:NAME:-proxy}.pid
    my_app: {port: "${env:PORT}", label: "${env:LABEL:-}"}
    """
    conf = load_conf(write(tmp_path, yaml, PORT="8080"), env={"THREADS": "4", "NAME": ""})
    assert (conf.threads, conf.max_retries, conf.pid_file) == (4, 2, "/run/proxy.pid")
    assert conf.get("my_app.port") == 8080 and conf.get("my_app.label") is None


def test_every_unresolved_reference_is_reported_with_its_key_path(tmp_path: Path) -> None:
    yaml = """
    pid_file: ${secret:MISSING}
    upgrade_sock: ${nope}
    error_log: ${secret:X:-default}
    my_app: {a: ["${env:ALSO_MISSING}"]}
    """
    with pytest.raises(ConfigError) as caught:
        load_conf(write(tmp_path, yaml), env=ENV)
    problems = {problem.path: problem.reason for problem in caught.value.problems}
    assert set(problems) == {"pid_file", "upgrade_sock", "error_log", "my_app.a[0]"}
    assert problems["pid_file"].startswith("${secret:MISSING}: MISSING is set in neither the environment nor")
    assert "not a reference" in problems["upgrade_sock"] and "not a reference" in problems["error_log"]
    assert "ALSO_MISSING" in problems["my_app.a[0]"]


def test_a_secret_without_a_key_or_with_the_wrong_key(tmp_path: Path) -> None:
    path = write(tmp_path, UPSTREAM_TOKEN="tok-0b5c")
    with pytest.raises(ConfigError, match=r"\$\{secret:UPSTREAM_TOKEN\}: no key to decrypt with"):
        load_conf(path, env={})
    with pytest.raises(ConfigError, match="the MAC is invalid"):
        load_conf(path, env={"ACTORPROXY_KEY": format_key(generate_key())})


def test_the_key_file_beside_the_configuration(tmp_path: Path) -> None:
    path = write(tmp_path, UPSTREAM_TOKEN="tok-k3yf1le")
    write_key_file(tmp_path / "actorproxy.key", Keyring(KEY))
    assert auth(load_conf(path, env={})) == "Bearer tok-k3yf1le"
    (tmp_path / "actorproxy.key").chmod(0o644)
    with pytest.raises(ConfigError, match="its mode is 0o644"):
        load_conf(path, env={})


def test_a_bad_value_next_to_a_secret_does_not_show_it(tmp_path: Path) -> None:
    yaml = YAML + "threads: ${secret:SECRET_THREADS}\nmax_retries: -1\n"
    with pytest.raises(ConfigError) as caught:
        load_conf(write(tmp_path, yaml, SECRET_THREADS="many-9e2f", UPSTREAM_TOKEN="tok-5a5a"), env=ENV)
    message = str(caught.value)
    assert "threads: expected an int >= 1, got" in message and "max_retries" in message
    assert "many-9e2f" not in message and "tok-5a5a" not in message


def test_settings_file_overrides_sit_between_the_file_and_the_environment(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ACTORPROXY__THREADS="3",
        ACTORPROXY__MAX_RETRIES="5",
        SECRET_URL="redis://:pw-4c4c@127.0.0.1:6379/0",
    )
    settings = SettingsFile.read(tmp_path / "actorproxy.env")
    encrypted = settings.get("SECRET_URL")
    assert encrypted is not None
    settings.with_value("ACTORPROXY__REDIS__URL", "x").save()
    text = (
        (tmp_path / "actorproxy.env")
        .read_text()
        .replace("ACTORPROXY__REDIS__URL=x", f"ACTORPROXY__REDIS__URL={encrypted}")
    )
    (tmp_path / "actorproxy.env").write_text(text)
    loaded = load_explained(path, env={**ENV, "ACTORPROXY__MAX_RETRIES": "7", "UPSTREAM_TOKEN": "tok-e4e4"})
    conf = loaded.record
    assert (conf.threads, conf.max_retries) == (3, 7)
    assert conf.redis is not None and conf.redis.url == "redis://:pw-4c4c@127.0.0.1:6379/0"
    assert "pw-4c4c" not in conf.to_yaml()
    origins = {leaf.path: leaf for leaf in explain_conf(loaded)}
    assert origins["threads"].origin.startswith("settings file (ACTORPROXY__THREADS in ")
    assert origins["max_retries"].origin == "environment (ACTORPROXY__MAX_RETRIES)"
    assert origins["redis.url"].secret and origins["redis.url"].value == REDACTED
    assert origins["services[0].name"].origin == "file"
    assert origins["grace_period_seconds"].origin == "default"
    auth_leaf = origins["services[0].routes[0].request_headers.set.Authorization"]
    assert auth_leaf.secret and [r.text for r in auth_leaf.references] == ["${secret:UPSTREAM_TOKEN}"]


def test_the_settings_file_cannot_move_itself(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="the settings file cannot change where it is"):
        load_conf(write(tmp_path, "threads: 1\n", ACTORPROXY__SETTINGS__PATH="elsewhere.env"), env={})


def test_changed_paths_compares_values_secrets_included(tmp_path: Path) -> None:
    old = load_conf(write(tmp_path, UPSTREAM_TOKEN="one-1111"), env=ENV)
    new = load_conf(write(tmp_path, UPSTREAM_TOKEN="two-2222"), env=ENV)
    assert changed_paths(old, new) == ["services[0].routes[0].request_headers.set.Authorization"]
    assert changed_paths(old, old) == []
