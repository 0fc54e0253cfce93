"""Imports point one way, and no module reaches into another package's private parts.

The layers (docs/architecture.md draws them):

- `actors`, the kernel, imports trio, attrs and the standard library only (its test kit may import pytest);
- `supervisors` imports the kernel;
- `actorproxy`, the product, imports both; inside it each subpackage imports only those below it:
  settings <- config <- http <- store <- cache <- proxy <- limits <- lb <- metrics <- admin <- server <- dns,
  ca <- declared <- sites <- demo <- settings_cli <- cli <- testing, and the package's `__init__` (the
  public face) imports them all. Modules inside the product import subpackages, never the public face
  itself.

Every import counts, including those inside functions or under `TYPE_CHECKING`.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("actors", "supervisors", "actorproxy")

# Which of our top-level packages each may import (besides itself).
ALLOWED = {
    "actors": set(),
    "supervisors": {"actors"},
    "actorproxy": {"actors", "supervisors"},
}
# What the kernel may import from outside the standard library.
KERNEL_THIRD_PARTY = {"trio", "attrs", "outcome"}
KERNEL_TESTKIT_THIRD_PARTY = {"pytest"}

# The product's subpackages, lowest first: each may import the ones before it.
PRODUCT_LAYERS: list[set[str]] = [
    {"settings"},
    {"config"},
    {"http"},
    {"store"},
    {"cache"},
    {"proxy"},
    {"limits"},
    {"lb"},
    {"metrics"},
    {"admin"},
    {"server"},
    {"dns", "ca"},
    {"declared"},
    {"sites"},
    {"demo"},
    {"settings_cli"},
    {"cli"},
    {"testing"},
]
RANK = {name: rank for rank, names in enumerate(PRODUCT_LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) for every import in the file."""
    tree = ast.parse(path.read_text(), filename=str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[tuple[int, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name, []) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target, [alias.name for alias in node.names]))
    return found


def subpackage(module: str) -> str | None:
    """The product subpackage (layer name) a module of `actorproxy` belongs to; None for the public face."""
    parts = module.split(".")
    if parts[0] != "actorproxy" or len(parts) == 1:
        return None
    return parts[1]


def private_parts(module: str, names: list[str]) -> list[str]:
    """The private modules or names an import reaches: `pkg._mod`, or `from pkg import _name`."""
    found = [part for part in module.split(".") if part.startswith("_") and part != "__future__"]
    found += [name for name in names if name.startswith("_") and not name.startswith("__")]
    return found


def owner(module: str) -> str:
    """The package that owns a module, for the private-import rule: a product subpackage, or a top-level
    package (a subpackage inside it, such as `http.h1` or `actors.testing`, belongs to it)."""
    sub = subpackage(module)
    return f"actorproxy.{sub}" if sub is not None else module.split(".", maxsplit=1)[0]


def violations(path: Path) -> list[str]:
    here = module_name(path)
    top = here.split(".")[0]
    here_sub = subpackage(here)
    wrong: list[str] = []
    for line, target, names in imports(path):
        first = target.split(".")[0]
        where = f"{path.relative_to(ROOT)}:{line}: {target}"
        if first not in PACKAGES:
            if top == "actors" and first not in sys.stdlib_module_names:
                allowed = KERNEL_THIRD_PARTY
                if here.startswith("actors.testing"):
                    allowed = allowed | KERNEL_TESTKIT_THIRD_PARTY
                if first not in allowed:
                    wrong.append(f"{where}: the kernel depends on trio and attrs only")
            continue
        if first != top and first not in ALLOWED[top]:
            wrong.append(f"{where}: {top} may not import {first}")
            continue
        if owner(target) != owner(here) and private_parts(target, names):
            wrong.append(f"{where}: private to {owner(target)}")
        if top != "actorproxy" or first != "actorproxy" or here == "actorproxy":
            continue
        target_sub = subpackage(target)
        if target_sub is None:
            # `from actorproxy import http` names a subpackage; anything else is the public face.
            named = [n for n in names if n in RANK]
            if not named or len(named) != len(names):
                wrong.append(f"{where}: modules inside actorproxy import its subpackages, not its face")
                continue
            target_subs = named
        else:
            target_subs = [target_sub]
        for sub in target_subs:
            if here_sub is None or sub == here_sub:
                continue
            if sub not in RANK or here_sub not in RANK:
                wrong.append(f"{where}: {sub} or {here_sub} is not in PRODUCT_LAYERS")
            elif RANK[sub] >= RANK[here_sub]:
                wrong.append(f"{where}: {here_sub} may not import {sub} (a layer above it)")
    return wrong


def test_every_product_subpackage_has_a_layer() -> None:
    subs = {p.name for p in (ROOT / "actorproxy").iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    subs |= {p.stem for p in (ROOT / "actorproxy").glob("*.py") if p.stem != "__init__"}
    assert subs == set(RANK)


@pytest.mark.parametrize("package", PACKAGES)
def test_imports_point_down_the_layers(package: str) -> None:
    wrong = [v for path in sorted((ROOT / package).rglob("*.py")) for v in violations(path)]
    assert wrong == []


def write(tmp_path: Path, module: str, text: str) -> Path:
    path = tmp_path.joinpath(*module.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("module", "text", "expected"),
    [
        ("supervisors.bad", "def f():\n    from actorproxy import Server\n", "supervisors may not import"),
        ("actors.bad", "import actorproxy.http\n", "actors may not import"),
        ("actors.bad", "import h11\n", "the kernel depends on trio and attrs only"),
        ("actorproxy.http.bad", "from actorproxy.proxy import Session\n", "http may not import proxy"),
        ("actorproxy.proxy.bad", "from .. import lb\n", "proxy may not import lb"),
        ("actorproxy.lb.bad", "from actorproxy.proxy._pool import ConnectionPool\n", "private to"),
        ("actorproxy.lb.bad", "from actorproxy.proxy import _feedback\n", "private to"),
        ("actorproxy.proxy.bad", "from actorproxy import HttpPeer\n", "not its face"),
        ("actorproxy.proxy.bad", "if TYPE_CHECKING:\n    from actorproxy.server import Server\n", "a layer"),
    ],
)
def test_the_checker_catches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, module: str, text: str, expected: str
) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    path = write(tmp_path, module, text)
    found = violations(path)
    assert len(found) == 1 and expected in found[0], found


def test_the_checker_accepts_what_the_rules_allow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    allowed = {
        "actorproxy.lb.ok": "from actorproxy.proxy import connect_peer\nfrom actors import Actor\n",
        "actorproxy.http.h1.ok": "from .._error import Error\nfrom ._strict import check_head\n",
        "actors.testing.ok": "import pytest\nfrom .._system import ActorSystem\n",
        "actorproxy.__init__": "from .proxy import Session\n",
    }
    for module, text in allowed.items():
        assert violations(write(tmp_path, module, text)) == [], module


def runtime_imports(path: Path) -> set[str]:
    """The modules a file imports when it runs: every import but those under `if TYPE_CHECKING:`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped.update(id(inner) for inner in ast.walk(node))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def import_cycle(root: Path, package: str) -> list[str] | None:
    """One cycle among the runtime imports of `package`'s modules (packages' `__init__` left out: they
    import their own modules by design), or None."""
    modules = {
        module_name(path): path for path in (root / package).rglob("*.py") if path.name != "__init__.py"
    }
    graph = {name: sorted(runtime_imports(path) & set(modules)) for name, path in modules.items()}
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for child in graph[node]:
            if state.get(child) == 1:
                return [*stack[stack.index(child) :], child]
            if child not in state and (cycle := visit(child)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("package", PACKAGES)
def test_no_module_imports_itself_in_a_circle(package: str) -> None:
    assert import_cycle(ROOT, package) is None


def test_the_cycle_finder_finds_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    write(tmp_path, "actors.__init__", "")
    write(tmp_path, "actors._a", "from ._b import B\n")
    write(
        tmp_path, "actors._b", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._a import A\n"
    )
    assert import_cycle(tmp_path, "actors") is None
    write(tmp_path, "actors._b", "def f():\n    from ._a import A\n")
    assert import_cycle(tmp_path, "actors") == ["actors._a", "actors._b", "actors._a"]
