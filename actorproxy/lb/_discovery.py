"""Service discovery: where a load balancer's backend set comes from (Pingora's `discovery` module).

Rules:
- A discovery answers one question, `await discover()`: the whole backend set now, plus an enablement map
  (backend -> enabled) for the backends whose enablement it wants to decide. It keeps no health; `Backends`
  does. A failure raises; the caller (the load balancer) keeps its last set and decides what to do.
- `Static` is a set held in memory and changed by the program (`set`, `add`, `remove`), replaced whole on
  each change so a `discover` in progress sees one consistent set.
- `FileDiscovery` reads a YAML or JSON list of backends. The file is read and parsed again only when its
  `(mtime_ns, size)` changed since the last good read; file I/O and parsing run off the event loop.
  Entries without `enabled` are left out of the enablement map, so an operator's `set_enable` on such a
  backend survives later polls.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable
from typing import Any, Protocol

import trio
import yaml

from ._backend import Backend

__all__ = ["FileDiscovery", "ServiceDiscovery", "Static"]

Discovered = tuple[frozenset[Backend], dict[Backend, bool]]

_ENTRY_KEYS = ("addr", "weight", "enabled")
_YAML_SUFFIXES = (".yaml", ".yml")


class ServiceDiscovery(Protocol):
    """A source of backends (Pingora's `ServiceDiscovery`)."""

    async def discover(self) -> Discovered:
        """The current backend set and an enablement map for some of its backends.

        Raises:
            Exception: discovery failed; the caller keeps the previous set.
        """
        ...


class Static:
    """A backend set held in memory (Pingora's `discovery::Static`).

    Args:
        backends: the initial backends.
    """

    __slots__ = ("_backends",)

    def __init__(self, backends: Iterable[Backend] = ()) -> None:
        self._backends = frozenset(backends)

    @classmethod
    def new(cls, backends: Iterable[Backend]) -> Static:
        """A static discovery of `backends` (Pingora's `Static::new`)."""
        return cls(backends)

    @classmethod
    def try_from_iter(cls, addrs: Iterable[object]) -> Static:
        """A static discovery of weight-1 backends at `addrs` (Pingora's `Static::try_from_iter`).

        Raises:
            ValueError: an address is not valid; the message gives its index and the value.
        """
        backends = []
        for index, addr in enumerate(addrs):
            try:
                backends.append(Backend(addr))
            except ValueError as exc:
                raise ValueError(f"backends[{index}]: {exc}") from None
        return cls(backends)

    def get(self) -> frozenset[Backend]:
        """The current set (Pingora's `Static::get`)."""
        return self._backends

    def set(self, backends: Iterable[Backend]) -> None:
        """Replace the whole set."""
        self._backends = frozenset(backends)

    def add(self, backend: Backend) -> None:
        """Add `backend`; a no-op when an equal backend is already there."""
        self._backends = self._backends | {backend}

    def remove(self, backend: Backend) -> None:
        """Remove `backend`; a no-op when it is not there (as Pingora)."""
        self._backends = self._backends - {backend}

    async def discover(self) -> Discovered:
        return self._backends, {}

    def __repr__(self) -> str:
        return f"<Static backends={len(self._backends)}>"


class FileDiscovery:
    """Backends listed in a YAML or JSON file, re-read when the file changes.

    The file holds a list; each entry is `"host:port"` or a mapping
    `{addr: "host:port", weight: 2, enabled: false}` (`weight` and `enabled` optional).

    Args:
        path: the file; `.yaml`/`.yml` is YAML, `.json` is JSON, any other name is JSON when its first
            non-blank character is `[` or `{`, else YAML.
        default_weight: the weight of entries that do not give one.

    Raises:
        ValueError: `default_weight` is not an int >= 1.
    """

    __slots__ = ("_default_weight", "_discovered", "_parses", "_path", "_stamp")

    def __init__(self, path: str | os.PathLike[str], *, default_weight: int = 1) -> None:
        if type(default_weight) is not int or default_weight < 1:
            raise ValueError(f"default_weight: must be an int >= 1, got {default_weight!r}")
        self._path = trio.Path(path)
        self._default_weight = default_weight
        self._stamp: tuple[int, int] | None = None
        self._discovered: Discovered = (frozenset(), {})
        self._parses = 0

    @property
    def path(self) -> trio.Path:
        return self._path

    @property
    def parses(self) -> int:
        """How many times the file was read and parsed (successfully or not)."""
        return self._parses

    async def discover(self) -> Discovered:
        """The backends in the file, re-read only when its modification time or size changed.

        Raises:
            ValueError: the file cannot be read or does not hold a valid list of backends; the message
                names the file, and for a bad entry its index and key. The next call reads it again.
        """
        try:
            stat = await self._path.stat()
            # Stamped before reading: a write that lands during the read changes the stamp, so the next
            # call reads again rather than keep a torn read forever.
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._stamp:
                return self._discovered[0], dict(self._discovered[1])
            data = await self._path.read_bytes()
        except OSError as exc:
            raise ValueError(f"{self._path}: cannot read the backend list: {exc.strerror or exc}") from exc
        self._parses += 1
        # A list of thousands of backends takes a while to parse as YAML; keep the loop responsive.
        self._discovered = await trio.to_thread.run_sync(
            _parse_backends, data, str(self._path), self._default_weight
        )
        self._stamp = stamp
        backends, enablement = self._discovered
        return backends, dict(enablement)

    def __repr__(self) -> str:
        return f"<FileDiscovery path={str(self._path)!r} backends={len(self._discovered[0])}>"


def _load(data: bytes, name: str) -> Any:
    text = data.decode("utf-8")
    suffix = os.path.splitext(name)[1].lower()
    if suffix == ".json":
        as_json = True
    elif suffix in _YAML_SUFFIXES:
        as_json = False
    else:
        as_json = text.lstrip()[:1] in ("[", "{")
    if as_json:
        return json.loads(text)
    return yaml.safe_load(text)


def _parse_backends(data: bytes, name: str, default_weight: int) -> Discovered:
    try:
        document = _load(data, name)
    except (UnicodeDecodeError, json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"{name}: not valid YAML or JSON: {exc}") from None
    if document is None:
        # An empty file is more likely a write caught half-way than a wish to drop every backend.
        raise ValueError(f"{name}: the file is empty; write [] for no backends")
    if not isinstance(document, list):
        raise ValueError(f"{name}: must be a list of backends, got {type(document).__name__}")
    backends: dict[Backend, int] = {}
    enablement: dict[Backend, bool] = {}
    for index, entry in enumerate(document):
        where = f"{name}: [{index}]"
        backend, enabled = _parse_entry(entry, where, default_weight)
        if backend in backends:
            raise ValueError(
                f"{where}: duplicate of [{backends[backend]}] ({backend}, weight {backend.weight})"
            )
        backends[backend] = index
        if enabled is not None:
            enablement[backend] = enabled
    return frozenset(backends), enablement


def _parse_entry(entry: object, where: str, default_weight: int) -> tuple[Backend, bool | None]:
    if isinstance(entry, str):
        return _backend(entry, default_weight, where), None
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: must be 'host:port' or a mapping with addr, got {type(entry).__name__}")
    for key in entry:
        if key not in _ENTRY_KEYS:
            hint = difflib.get_close_matches(str(key), _ENTRY_KEYS, n=1)
            did_you_mean = f"; did you mean {hint[0]!r}?" if hint else f"; expected one of {_ENTRY_KEYS}"
            raise ValueError(f"{where}.{key}: unknown key{did_you_mean}")
    if "addr" not in entry:
        raise ValueError(f"{where}.addr: missing")
    addr = entry["addr"]
    if not isinstance(addr, str):
        raise ValueError(f"{where}.addr: must be a 'host:port' string, got {addr!r}")
    weight = entry.get("weight", default_weight)
    if type(weight) is not int or weight < 1:
        raise ValueError(f"{where}.weight: must be an int >= 1, got {weight!r}")
    enabled = entry.get("enabled")
    if enabled is not None and type(enabled) is not bool:
        raise ValueError(f"{where}.enabled: must be true or false, got {enabled!r}")
    return _backend(addr, weight, f"{where}.addr"), enabled


def _backend(addr: str, weight: int, where: str) -> Backend:
    try:
        return Backend(addr, weight)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
