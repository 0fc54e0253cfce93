"""The README's commands and its YAML example stay true."""

from __future__ import annotations

import re
from pathlib import Path

from actorproxy.config import ServerConf

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_the_two_commands_are_near_the_top() -> None:
    top = README[: README.index("## A proxy in twenty lines")]
    assert ".venv/bin/pip install -e . && .venv/bin/actorproxy demo" in top
    assert ".venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest" in top


def test_the_declared_proxy_examples_load() -> None:
    declared, observed = re.findall(r"```yaml\n(.*?)```", README, flags=re.DOTALL)
    conf = ServerConf.from_yaml(declared, source="README.md")
    assert [s.name for s in conf.services] == ["gateway"]
    assert {u.name for u in conf.upstreams} == {"app", "static"}
    conf = ServerConf.from_yaml(observed, source="README.md")
    assert conf.metrics is not None and conf.admin is not None
    assert conf.services[0].access_log is not None
