"""Dot-notation reads with `conf.get`."""

from __future__ import annotations

import pytest

from actorproxy.config import ListenerConf, ServerConf

TEXT = """
grace_period_seconds: 3
services:
  - name: web
    listeners: [{address: 127.0.0.1:6191}, {path: /run/web.sock}]
    routes: [{upstream: app, header: {x-beta: "1"}}]
upstreams:
  - name: app
    discovery: {static: [127.0.0.1:9001, 127.0.0.1:9002]}
my_app: {token: t, 0: zero, nested: {list: [{name: first, v: 1}]}}
"""


@pytest.fixture
def conf() -> ServerConf:
    return ServerConf.from_yaml(TEXT)


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("grace_period_seconds", 3.0),
        ("threads", 1),
        ("services.0.name", "web"),
        ("services.web.listeners.1.path", "/run/web.sock"),
        ("services.0.listeners.-1", ListenerConf(path="/run/web.sock")),
        ("services.0.routes.0.header.x-beta", "1"),
        ("upstreams.app.discovery.static.1.addr", "127.0.0.1:9002"),
        ("upstreams.0.algorithm", "round_robin"),
        ("my_app.token", "t"),
        ("my_app.0", "zero"),
        ("my_app.nested.list.first.v", 1),
        ("my_app.nested.list.0.v", 1),
    ],
)
def test_get_follows_fields_keys_positions_and_names(conf: ServerConf, path: str, value: object) -> None:
    assert conf.get(path) == value


def test_the_empty_path_is_the_record(conf: ServerConf) -> None:
    assert conf.get("") is conf


def test_a_missing_path_takes_the_default(conf: ServerConf) -> None:
    assert conf.get("my_app.missing", 5) == 5
    assert conf.get("services.3.name", None) is None
    assert conf.get("threads.x", "d") == "d"


@pytest.mark.parametrize(
    ("path", "message"),
    [
        ("nope", "no configuration value at 'nope'"),
        (
            "my_app.missing",
            "no configuration value at 'my_app.missing' (nothing at 'missing' under 'my_app')",
        ),
        ("services.7.name", "nothing at '7' under 'services'"),
        ("upstreams.api", "nothing at 'api' under 'upstreams'"),
        ("threads.value", "nothing at 'value' under 'threads'"),
    ],
)
def test_a_missing_path_without_default_raises_key_error_naming_it(
    conf: ServerConf, path: str, message: str
) -> None:
    with pytest.raises(KeyError) as caught:
        conf.get(path)
    assert message in str(caught.value)
