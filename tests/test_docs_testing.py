"""The example in docs/testing.md runs as it is, and its test passes (and fails when it should)."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from trio.testing import MockClock

DOC = Path(__file__).resolve().parent.parent / "docs" / "testing.md"


def load_example() -> ModuleType:
    """The doc's Python block, executed as a module of its own."""
    [block] = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    module = ModuleType("docs_testing_example")
    exec(compile(block, str(DOC), "exec"), module.__dict__)
    return module


example = load_example()


async def test_the_example_test_passes(autojump_clock: MockClock) -> None:
    await example.test_the_gateway_routes_by_path(autojump_clock)


async def test_the_example_test_fails_for_an_app_that_routes_wrong(
    autojump_clock: MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def everything_to_web(self: Any, session: Any, ctx: Any) -> Any:
        return example.HttpPeer("10.0.0.1:80", tls=False, sni="")

    monkeypatch.setattr(example.Gateway, "upstream_peer", everything_to_web)
    with pytest.raises(AssertionError):
        await example.test_the_gateway_routes_by_path(autojump_clock)
