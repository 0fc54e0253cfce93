"""Imports point one way: actorproxy (kernel) <- supervisors <- actors.

The rule is stated in the README's architecture section; this test fails on any import that points the
other way, including imports inside functions.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Which of our packages each package may import (besides itself).
ALLOWED = {
    "actorproxy": set(),
    "supervisors": {"actorproxy"},
    "actors": {"actorproxy", "supervisors"},
}


def imported_packages(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module.split(".")[0])
    return found & set(ALLOWED)


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_point_down_the_layers(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imported_packages(path) - ALLOWED[package] - {package})
        for path in sorted((ROOT / package).rglob("*.py"))
    }
    assert {path: bad for path, bad in wrong.items() if bad} == {}


def test_the_checker_catches_an_upward_import(tmp_path: Path) -> None:
    module = tmp_path / "bad.py"
    module.write_text("def f():\n    from supervisors import Supervisor\n    import actors.x\n")
    assert imported_packages(module) == {"supervisors", "actors"}
