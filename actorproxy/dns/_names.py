"""`LocalNames`: the zones the DNS server answers itself, and the site names in them.

Rules:
- The site names are a snapshot, replaced whole by `publish` (the sites table changes when a parked
  directory comes or goes); a query reads the snapshot once, with no message and no lock.
- A name is compared without case and without its final dot. `*.app.test` stands for every name under
  `app.test` (not `app.test` itself), as a declared route's host does.
- Under a zone, a name is a site (it gets the configured addresses), an empty non-terminal (a name with
  sites below it, or the zone's apex: it exists, with no address: NODATA), or nothing (NXDOMAIN).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable

import attrs

__all__ = ["LocalNames", "NameKind", "normalize_name"]


class NameKind(enum.Enum):
    """What a name under a local zone is."""

    SITE = "site"
    EMPTY = "empty"
    MISSING = "missing"


def normalize_name(name: str) -> str:
    """`name` lower-cased, without its final dot."""
    return name.rstrip(".").lower()


@attrs.frozen
class _Table:
    exact: frozenset[str] = frozenset()
    # ".app.test" for a site "*.app.test".
    suffixes: tuple[str, ...] = ()
    # Every name strictly between a site and its zone's apex.
    above: frozenset[str] = frozenset()


class LocalNames:
    """The zones answered locally, and the sites in them (see the module rules).

    Args:
        zones: the zone names, e.g. `["test"]`.
        names: the first site names; `publish` replaces them.
    """

    __slots__ = ("_table", "zones")

    def __init__(self, zones: Iterable[str], names: Iterable[str] = ()) -> None:
        self.zones: tuple[str, ...] = tuple(normalize_name(zone) for zone in zones)
        self._table = _Table()
        self.publish(names)

    def __repr__(self) -> str:
        table = self._table
        return f"<LocalNames zones={list(self.zones)} names={len(table.exact) + len(table.suffixes)}>"

    def publish(self, names: Iterable[str]) -> None:
        """Make `names` (site names, `*.name` too) the sites; names outside the zones are ignored."""
        exact: set[str] = set()
        suffixes: list[str] = []
        above: set[str] = set()
        for raw in names:
            name = normalize_name(raw)
            wildcard = name.startswith("*.")
            base = name[2:] if wildcard else name
            zone = self.zone_of(base)
            if zone is None:
                continue
            if wildcard:
                suffixes.append("." + base)
            else:
                exact.add(base)
            # The ancestors of a wildcard's base, and the base itself, exist as empty non-terminals.
            parent = base if wildcard else base.partition(".")[2]
            while parent and len(parent) > len(zone):
                above.add(parent)
                parent = parent.partition(".")[2]
        self._table = _Table(frozenset(exact), tuple(suffixes), frozenset(above))

    def names(self) -> list[str]:
        """The site names, sorted (wildcards as `*.name`)."""
        table = self._table
        return sorted([*table.exact, *("*" + suffix for suffix in table.suffixes)])

    def zone_of(self, name: str) -> str | None:
        """The local zone `name` (normalized) is in, or None."""
        for zone in self.zones:
            if name == zone or name.endswith("." + zone):
                return zone
        return None

    def kind(self, name: str) -> NameKind:
        """What `name` (normalized, under a local zone) is."""
        table = self._table
        if name in table.exact:
            return NameKind.SITE
        for suffix in table.suffixes:
            if name.endswith(suffix):
                return NameKind.SITE
        if name in table.above or name in self.zones:
            return NameKind.EMPTY
        return NameKind.MISSING
