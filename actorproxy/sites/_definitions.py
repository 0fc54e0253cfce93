"""What the sites are: `SiteDefinition`s from the `sites:` section and from the directories of `park:`.

Rules:
- Relative paths are taken from `base`, the configuration file's directory; `~` is the user's home.
- A directory `name` in a park folder is the site `name.<zone>` (lower case; a directory whose name is not a
  DNS label, or starts with a dot, is skipped). It is answered by `run:`, `proxy:` or `root:` from the
  file `.site.yaml` in it when there is one (relative paths from the directory, which is also the working
  directory of `run`), else by its `public/` directory when it has one (Laravel's layout), else by the
  directory itself as static files.
- A `.site.yaml` that cannot be used makes the site `invalid`: it answers 503 with the reason, and the
  other sites are served.
- A site of the `sites:` section wins over a parked directory of the same name. Exact names come first in
  the route table (by name), then wildcards, longer ones before shorter ones.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal

import attrs
import yaml

from actorproxy.config import ConfigError, ParkConf, ServerConf, SiteConf

__all__ = ["SITE_FILE", "SiteDefinition", "SiteKind", "configured_sites", "merge_sites", "scan_park"]

#: What answers a site.
SiteKind = Literal["proxy", "root", "run", "invalid"]
#: The file in a parked directory that says how to run or serve it.
SITE_FILE = ".site.yaml"
# A DNS label (RFC 1035 section 2.3.1).
_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")


@attrs.frozen(kw_only=True)
class SiteDefinition:
    """A site as declared: its name, what answers it, and where the declaration came from.

    Attributes:
        name: the host name, lower case (`*.name` for a wildcard).
        kind: proxy, root, run, or invalid (then `target` is the reason).
        target: the URL, the absolute directory, or the command (with `{port}`).
        cwd: the working directory of a `run` site.
        env: environment variables added for a `run` site.
        source: where it was declared (`sites[0]`, or the parked directory).
    """

    name: str
    kind: SiteKind
    target: str
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    source: str = ""

    @property
    def is_wildcard(self) -> bool:
        return self.name.startswith("*.")


def _path(value: str, base: Path) -> str:
    return str((base / Path(value).expanduser()).resolve())


def _definition(conf: SiteConf, base: Path, source: str, *, default_cwd: Path) -> SiteDefinition:
    env = tuple(sorted(conf.env.items()))
    name = conf.name.rstrip(".").lower()
    if conf.root is not None:
        return SiteDefinition(name=name, kind="root", target=_path(conf.root, base), source=source)
    if conf.proxy is not None:
        return SiteDefinition(name=name, kind="proxy", target=conf.proxy.rstrip("/"), source=source)
    assert conf.run is not None  # SiteConf holds exactly one of the three
    cwd = _path(conf.cwd, base) if conf.cwd is not None else str(default_cwd)
    return SiteDefinition(name=name, kind="run", target=conf.run, cwd=cwd, env=env, source=source)


def configured_sites(conf: ServerConf, base: Path) -> list[SiteDefinition]:
    """The sites of the `sites:` section."""
    return [
        _definition(site, base, f"sites[{index}]", default_cwd=base) for index, site in enumerate(conf.sites)
    ]


def _site_file(directory: Path, name: str) -> SiteDefinition:
    path = directory / SITE_FILE
    source = str(directory)
    try:
        data: Any = yaml.safe_load(path.read_text())
        if not isinstance(data, Mapping):
            raise ValueError(f"expected a mapping with one of run, proxy, root; got {type(data).__name__}")
        # Read as the `sites:` section reads a site, so the same rules and messages apply.
        [conf] = ServerConf.from_mapping({"sites": [{**data, "name": name}]}).sites
    except ConfigError as exc:
        reasons = "; ".join(f"{p.path.removeprefix('sites[0].')}: {p.reason}" for p in exc.problems)
        return SiteDefinition(name=name, kind="invalid", target=f"{path}: {reasons}", source=source)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        return SiteDefinition(name=name, kind="invalid", target=f"{path}: {exc}", source=source)
    return _definition(conf, directory, source, default_cwd=directory)


def scan_park(park: ParkConf, zone: str, base: Path) -> list[SiteDefinition]:
    """The sites of the directories in a park folder (blocking: reads the folder); none if it is missing."""
    folder = Path(_path(park.path, base))
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    sites = []
    for entry in entries:
        label = entry.name.lower()
        if not _LABEL.fullmatch(label) or not entry.is_dir():
            continue
        directory = Path(entry.path)
        name = f"{label}.{(park.zone or zone).strip('.').lower()}"
        if (directory / SITE_FILE).is_file():
            sites.append(_site_file(directory, name))
        elif (directory / "public").is_dir():
            sites.append(
                SiteDefinition(
                    name=name, kind="root", target=str(directory / "public"), source=str(directory)
                )
            )
        else:
            sites.append(
                SiteDefinition(name=name, kind="root", target=str(directory.resolve()), source=str(directory))
            )
    return sites


def merge_sites(
    configured: Iterable[SiteDefinition], parked: Iterable[SiteDefinition]
) -> list[SiteDefinition]:
    """The sites in route order: configured ones win a name; exact names, then wildcards, longest first."""
    by_name: dict[str, SiteDefinition] = {}
    for site in configured:
        by_name.setdefault(site.name, site)
    for site in parked:
        by_name.setdefault(site.name, site)
    return sorted(
        by_name.values(),
        key=lambda site: (site.is_wildcard, -len(site.name) if site.is_wildcard else 0, site.name),
    )
