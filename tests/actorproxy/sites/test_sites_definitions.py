"""Sites from the configuration and from park folders (pure functions over a temporary directory), and the
static files' path and range rules."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from actorproxy.config import ParkConf, ServerConf
from actorproxy.sites import (
    ByteRange,
    configured_sites,
    merge_sites,
    parse_range,
    resolve_request_path,
    scan_park,
)
from actorproxy.sites._static import BadPath


def test_configured_sites_take_paths_from_the_file_directory(tmp_path: Path) -> None:
    conf = ServerConf.from_yaml(
        """
        sites:
          - {name: App.Test, run: 'python3 app.py {port}', env: {A: b}}
          - {name: files.test, root: public}
          - {name: '*.api.test', proxy: 'https://127.0.0.1:9443/'}
        """
    )
    run, files, api = configured_sites(conf, tmp_path)
    assert (run.name, run.kind, run.cwd, run.env) == ("app.test", "run", str(tmp_path), (("A", "b"),))
    assert (files.kind, files.target) == ("root", str(tmp_path / "public"))
    assert (api.kind, api.target, api.is_wildcard) == ("proxy", "https://127.0.0.1:9443", True)


def test_a_park_folder_makes_a_site_of_each_directory(tmp_path: Path) -> None:
    park = tmp_path / "park"
    (park / "blog" / "public").mkdir(parents=True)
    (park / "plain").mkdir()
    (park / "app").mkdir()
    (park / "app" / ".site.yaml").write_text("run: python3 -m http.server {port}\n")
    (park / "broken").mkdir()
    (park / "broken" / ".site.yaml").write_text("run: 1\nroot: x\n")
    (park / ".hidden").mkdir()
    (park / "Not_A_Label").mkdir()
    (park / "file.txt").write_text("not a directory")
    sites = {site.name: site for site in scan_park(ParkConf(path="park"), "test", tmp_path)}
    assert sorted(sites) == ["app.test", "blog.test", "broken.test", "plain.test"]
    assert sites["blog.test"].target == str(park / "blog" / "public")
    assert sites["plain.test"].target == str(park / "plain")
    assert (sites["app.test"].kind, sites["app.test"].cwd) == ("run", str(park / "app"))
    assert (
        sites["broken.test"].kind == "invalid"
        and ".site.yaml: run: expected a string" in sites["broken.test"].target
    )
    assert scan_park(ParkConf(path="missing"), "test", tmp_path) == []
    assert next(s.name for s in scan_park(ParkConf(path="park", zone="box"), "test", tmp_path)) == "app.box"


def test_configured_sites_win_and_exact_names_come_before_wildcards(tmp_path: Path) -> None:
    conf = ServerConf.from_yaml(
        "sites: [{name: '*.test', root: a}, {name: '*.x.test', root: b}, {name: blog.test, root: c}]"
    )
    park = tmp_path / "park"
    (park / "blog").mkdir(parents=True)
    (park / "zed").mkdir()
    merged = merge_sites(configured_sites(conf, tmp_path), scan_park(ParkConf(path="park"), "test", tmp_path))
    assert [site.name for site in merged] == ["blog.test", "zed.test", "*.x.test", "*.test"]
    assert merged[0].target == str(tmp_path / "c")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-9", ByteRange(0, 9)),
        ("bytes=90-", ByteRange(90, 99)),
        ("bytes=-10", ByteRange(90, 99)),
        ("bytes=-500", ByteRange(0, 99)),
        ("bytes=95-200", ByteRange(95, 99)),
        ("bytes=100-", False),
        ("bytes=-0", False),
        ("bytes=0-1,5-6", None),
        ("items=0-1", None),
        ("bytes=9-1", None),
        ("bytes=a-b", None),
    ],
)
def test_parse_range(value: str, expected: object) -> None:
    assert parse_range(value, 100) == expected


def test_request_paths_stay_inside_the_root(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "a.txt").write_text("a")
    (tmp_path / "secret.txt").write_text("secret")
    os.symlink(tmp_path / "secret.txt", root / "out.txt")
    os.symlink(root / "sub" / "a.txt", root / "in.txt")
    real = root.resolve()
    assert resolve_request_path(real, "/sub/a.txt") == real / "sub" / "a.txt"
    assert resolve_request_path(real, "/sub%2Fa.txt") == real / "sub" / "a.txt"
    assert resolve_request_path(real, "/in.txt") == real / "sub" / "a.txt"
    assert resolve_request_path(real, "/out.txt") is None  # a link out of the root
    assert resolve_request_path(real, "/.git/config") is None
    assert resolve_request_path(real, "/%252e%252e/secret.txt") == real / "%2e%2e" / "secret.txt"
    for bad in (
        "/../secret.txt",
        "/sub/..%2f..%2fsecret.txt",
        "/%2e%2e/secret.txt",
        "/a%00b",
        "/a%5cb",
        "/%ff",
    ):
        with pytest.raises(BadPath):
            resolve_request_path(real, bad)
