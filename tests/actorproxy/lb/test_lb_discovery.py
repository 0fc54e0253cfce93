"""Backends bookkeeping (Pingora's test_backends, test_backends_with_ext, test_discovery_readiness) and the
discovery sources: Static and FileDiscovery."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from actorproxy.lb import Backend, Backends, FileDiscovery, ServiceDiscovery, Static

GOOD1 = Backend("1.1.1.1:80")
GOOD2 = Backend("1.0.0.1:80")
BAD = Backend("127.0.0.1:79")


async def update(backends: Backends, discovery: ServiceDiscovery) -> bool:
    return backends.apply(*await discovery.discover())


def test_static_try_from_iter() -> None:
    static = Static.try_from_iter(["1.1.1.1:80", "1.0.0.1:80"])
    assert static.get() == {GOOD1, GOOD2}


def test_static_try_from_iter_names_the_bad_address() -> None:
    with pytest.raises(ValueError, match=r"backends\[1\]: .*'nope'"):
        Static.try_from_iter(["1.1.1.1:80", "nope"])


async def test_static_add_remove_set() -> None:
    static = Static.new({GOOD1})
    static.add(GOOD2)
    static.add(GOOD2)
    assert await static.discover() == (frozenset({GOOD1, GOOD2}), {})
    static.remove(GOOD1)
    static.remove(BAD)  # not there: a no-op
    assert static.get() == {GOOD2}
    static.set([BAD])
    assert static.get() == {BAD}


async def test_backends_update_keeps_health_of_kept_backends() -> None:
    static = Static()
    for backend in (GOOD1, GOOD2, BAD):
        static.add(backend)
    backends = Backends()

    assert await update(backends, static)  # new backends discovered
    version = backends.version
    assert not await update(backends, static)  # nothing new
    assert backends.version == version
    assert backends.get_backend() == backends.backends() == {GOOD1, GOOD2, BAD}
    assert all(backends.ready(b) for b in (GOOD1, GOOD2, BAD))  # new ones start healthy and enabled

    assert backends.set_health(BAD, False)
    assert not backends.set_health(BAD, False)  # no flip
    assert not backends.ready(BAD)
    assert backends.ready(GOOD1)

    new = Backend("10.0.0.1:80")
    static.remove(GOOD2)
    static.add(new)
    before = backends.version
    assert await update(backends, static)
    assert backends.version > before
    assert backends.backends() == {GOOD1, BAD, new}
    assert not backends.ready(BAD)  # kept its health
    assert backends.ready(new)
    assert not backends.ready(GOOD2)  # gone: unknown is not ready
    assert backends.health(GOOD2) is None
    assert not backends.set_health(GOOD2, True)  # unknown: a no-op


def test_set_enable_makes_a_backend_not_ready() -> None:
    backends = Backends([GOOD1, GOOD2])
    version = backends.version
    assert backends.set_enable(GOOD1, False)
    assert backends.version == version + 1
    assert not backends.ready(GOOD1)
    health = backends.health(GOOD1)
    assert health is not None and health.healthy and not health.enabled  # health is untouched
    assert not backends.set_enable(GOOD1, False)
    assert backends.version == version + 1
    assert backends.set_enable(GOOD1, True)
    assert backends.ready(GOOD1)
    assert not backends.set_enable(BAD, False)  # unknown: a no-op
    assert backends.health(BAD) is None


async def test_discovery_readiness() -> None:
    class TestDiscovery:
        def __init__(self, inner: Static) -> None:
            self.inner = inner

        async def discover(self) -> tuple[frozenset[Backend], dict[Backend, bool]]:
            found, enablement = await self.inner.discover()
            enablement[BAD] = False
            return found, enablement

    discovery = TestDiscovery(Static([GOOD1, GOOD2, BAD]))
    backends = Backends()
    assert await update(backends, discovery)
    assert backends.backends() == {GOOD1, GOOD2, BAD}
    assert backends.ready(GOOD1)
    assert backends.ready(GOOD2)
    assert not backends.ready(BAD)


def test_enablement_applies_when_the_set_is_unchanged() -> None:
    backends = Backends([GOOD1, GOOD2])
    version = backends.version
    assert not backends.apply(frozenset({GOOD1, GOOD2}), {GOOD2: False, BAD: False})
    assert backends.version == version + 1  # the table changed, the set did not
    assert not backends.ready(GOOD2)
    assert backends.health(BAD) is None  # an unknown backend in the map is ignored
    assert not backends.apply(frozenset({GOOD1, GOOD2}), {GOOD2: False})
    assert backends.version == version + 1


def test_ext_is_ignored_when_comparing_sets() -> None:
    b1 = Backend("1.1.1.1:80", ext={"a": True})
    b2 = Backend("1.0.0.1:80", ext={"b": 1})
    backends = Backends()
    assert backends.apply(frozenset({b1, b2}), {})
    assert sorted(backends.backends())[0].ext == {"b": 1}
    assert sorted(backends.backends())[1].ext == {"a": True}

    version = backends.version
    same = Backend("1.1.1.1:80", ext={"a": False})
    assert not backends.apply(frozenset({same, b2}), {})
    assert backends.version == version
    stored = backends.lookup(same)
    assert stored is not None and stored.ext == {"a": True}  # the instance first seen stays
    assert backends.lookup(BAD) is None

    # A different weight is a different backend.
    heavier = Backend("1.1.1.1:80", weight=2)
    assert backends.apply(frozenset({heavier, b2}), {})
    assert backends.backends() == {heavier, b2}
    assert not backends.ready(b1)


def test_repr_shows_live_state() -> None:
    backends = Backends([GOOD1, GOOD2])
    backends.set_health(GOOD1, False)
    assert repr(backends) == "<Backends version=2 backends=2 ready=1 ejected=0 discovery=<Static backends=2>>"


# FileDiscovery


def touch_changed(path: Path, text: str) -> None:
    """Write `text` and move the mtime forward, so the change is seen even on coarse-mtime filesystems."""
    before = path.stat().st_mtime_ns if path.exists() else 0
    path.write_text(text)
    os.utime(path, ns=(before + 10**9, before + 10**9))


async def test_file_discovery_yaml(tmp_path: Path) -> None:
    path = tmp_path / "backends.yaml"
    path.write_text(
        "- 127.0.0.1:9001\n"
        "- addr: 127.0.0.1:9002\n"
        "  weight: 3\n"
        "- {addr: 127.0.0.1:9003, enabled: false}\n"
        "- {addr: 127.0.0.1:9004, enabled: true}\n"
    )
    discovery = FileDiscovery(path, default_weight=2)
    found, enablement = await discovery.discover()
    assert found == {
        Backend("127.0.0.1:9001", 2),
        Backend("127.0.0.1:9002", 3),
        Backend("127.0.0.1:9003", 2),
        Backend("127.0.0.1:9004", 2),
    }
    # Only entries that say `enabled` are in the map.
    assert enablement == {Backend("127.0.0.1:9003", 2): False, Backend("127.0.0.1:9004", 2): True}

    backends = Backends()
    assert backends.apply(found, enablement)
    assert not backends.ready(Backend("127.0.0.1:9003", 2))
    assert backends.ready(Backend("127.0.0.1:9001", 2))


@pytest.mark.parametrize("name", ["backends.json", "backends.list"])
async def test_file_discovery_json(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(json.dumps(["127.0.0.1:9001", {"addr": "[::1]:9002", "weight": 2}]))
    found, enablement = await FileDiscovery(path).discover()
    assert found == {Backend("127.0.0.1:9001"), Backend("[::1]:9002", 2)}
    assert enablement == {}


async def test_file_discovery_sniffs_yaml_without_extension(tmp_path: Path) -> None:
    path = tmp_path / "backends"
    path.write_text("- 127.0.0.1:9001\n")
    found, _ = await FileDiscovery(path).discover()
    assert found == {Backend("127.0.0.1:9001")}


async def test_file_discovery_rereads_only_on_change(tmp_path: Path) -> None:
    path = tmp_path / "backends.yaml"
    touch_changed(path, "- 127.0.0.1:9001\n")
    discovery = FileDiscovery(path)
    first = await discovery.discover()
    assert discovery.parses == 1
    assert await discovery.discover() == first
    assert discovery.parses == 1  # unchanged: not parsed again

    touch_changed(path, "- 127.0.0.1:9001\n- 127.0.0.1:9002\n")
    found, _ = await discovery.discover()
    assert discovery.parses == 2
    assert found == {Backend("127.0.0.1:9001"), Backend("127.0.0.1:9002")}


async def test_file_discovery_returns_a_fresh_enablement_map(tmp_path: Path) -> None:
    path = tmp_path / "backends.yaml"
    path.write_text("- {addr: 127.0.0.1:9001, enabled: false}\n")
    discovery = FileDiscovery(path)
    _, enablement = await discovery.discover()
    enablement.clear()
    _, again = await discovery.discover()
    assert again == {Backend("127.0.0.1:9001"): False}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "- 127.0.0.1:9001\n- 127.0.0.1:9002\n- {addr: 127.0.0.1:9003, weight: 0}\n",
            r"\[2\]\.weight: must be an int >= 1",
        ),
        ("- {addr: 127.0.0.1:9001, weight: true}\n", r"\[0\]\.weight: must be an int >= 1"),
        ("- {addr: 127.0.0.1:9001, enabled: 'no'}\n", r"\[0\]\.enabled: must be true or false"),
        ("- {weight: 2}\n", r"\[0\]\.addr: missing"),
        ("- {addr: 9001}\n", r"\[0\]\.addr: must be a 'host:port' string"),
        ("- {addr: 127.0.0.1:9001, wieght: 2}\n", r"\[0\]\.wieght: unknown key; did you mean 'weight'\?"),
        ("- 127.0.0.1:9001\n- nope\n", r"\[1\]: Backend address: 'nope'"),
        ("- {addr: 'nope:x'}\n", r"\[0\]\.addr: Backend address"),
        ("- [1, 2]\n", r"\[0\]: must be 'host:port' or a mapping"),
        ("- 127.0.0.1:9001\n- 127.0.0.1:9001\n", r"\[1\]: duplicate of \[0\]"),
        ("addr: 127.0.0.1:9001\n", r"must be a list of backends"),
        ("", r"the file is empty; write \[\] for no backends"),
        ("- [unclosed\n", r"not valid YAML or JSON"),
    ],
)
async def test_file_discovery_bad_file_names_file_index_and_key(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "backends.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match="backends.yaml: " + message):
        await FileDiscovery(path).discover()


async def test_file_discovery_bad_file_is_read_again_after_a_fix(tmp_path: Path) -> None:
    path = tmp_path / "backends.yaml"
    touch_changed(path, "- 127.0.0.1:9001\n")
    discovery = FileDiscovery(path)
    assert (await discovery.discover())[0] == {Backend("127.0.0.1:9001")}
    touch_changed(path, "- nope\n")
    with pytest.raises(ValueError, match=r"\[0\]"):
        await discovery.discover()
    touch_changed(path, "- 127.0.0.1:9002\n")
    assert (await discovery.discover())[0] == {Backend("127.0.0.1:9002")}


async def test_file_discovery_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "missing.yaml"
    with pytest.raises(
        ValueError, match=r"missing\.yaml: cannot read the backend list: No such file"
    ) as info:
        await FileDiscovery(path).discover()
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_file_discovery_rejects_bad_default_weight(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="default_weight: must be an int >= 1"):
        FileDiscovery(tmp_path / "x.yaml", default_weight=0)
