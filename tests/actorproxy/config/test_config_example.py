"""examples/proxy.yaml, the proxy declared without Python, loads as documented."""

from __future__ import annotations

import warnings
from pathlib import Path

from actorproxy.config import HealthCheckConf, ServerConf, TcpHealthCheckConf

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "proxy.yaml"


def test_the_example_proxy_loads_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        conf = ServerConf.load_yaml(EXAMPLE, env={})
    (service,) = conf.services
    assert [listener.address for listener in service.listeners] == ["127.0.0.1:6191"]
    assert [(route.path_prefix, route.upstream) for route in service.routes] == [
        ("/static/", "static"),
        ("/", "app"),
    ]
    app, static = conf.upstreams
    assert (app.name, app.algorithm, static.name, static.algorithm) == (
        "app",
        "round_robin",
        "static",
        "consistent",
    )
    for upstream in conf.upstreams:
        assert upstream.discovery.static is not None
        assert {backend.addr.split(":")[0] for backend in upstream.discovery.static} == {"127.0.0.1"}
        assert upstream.health_check is not None and upstream.health_check.tcp is not None
    assert static.health_check == HealthCheckConf(tcp=TcpHealthCheckConf(), frequency=2.0)
    assert conf.get("my_app.greeting") == "hello"
    assert ServerConf.from_yaml(conf.to_yaml()) == conf


def test_the_yaml_blocks_of_the_configuration_guide_load() -> None:
    guide = (EXAMPLE.parents[1] / "docs" / "configuration.md").read_text()
    blocks = [block.split("```", 1)[0] for block in guide.split("```yaml\n")[1:]]
    assert len(blocks) >= 2
    for block in blocks:
        ServerConf.from_yaml(block, env={})
