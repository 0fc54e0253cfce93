"""The route table of a declared service: which route a request takes. Pure: no I/O, no clock, no state.

Rules:
- Routes are tried in file order; the first whose conditions all hold wins. A route without conditions
  matches every request. No match is the caller's 404.
- `host`: the request's host without its port, compared case-insensitively and without a trailing dot.
  The host is the authority of an absolute-form target (RFC 9112 section 3.2.2: it takes precedence over
  the Host header), else the Host header. A route host `*.example.com` matches every name that ends in
  `.example.com` (`a.example.com`, `a.b.example.com`), never `example.com` itself (nginx's rule for
  `*.example.com`). A request without a host matches no route that names one.
- `path_prefix` is segment-aware: `/api` matches `/api`, `/api/` and `/api/v1`, never `/apiary`; a prefix
  that ends with `/` matches the paths that start with it (`/static/` matches `/static/a.css`, not
  `/static`), so `/` matches every path. The path is the target's path as sent, without the query; it is
  neither percent-decoded nor normalized (`/api/../admin` starts with `/api`), as the upstream receives it.
- `header`: each named header (any case) is present and its first field's value equals the given value
  exactly (case-sensitive).
- Everything that does not depend on the request (lower-casing, wildcard suffixes, whether any route looks
  at the host) is computed once, when the table is built; a lookup reads the request's host only when some
  route names one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, TypeVar

import attrs

from actorproxy.config import RouteConf
from actorproxy.http import Headers, RequestHeader, normalize_host, request_host

__all__ = ["RouteRule", "RouteTable", "normalize_host", "request_host"]

T = TypeVar("T")
U = TypeVar("U")


@attrs.frozen
class RouteRule:
    """The conditions of one route, compiled for matching (see the module rules).

    Attributes:
        host: the exact host to match, normalized; None: any host (or see `host_suffix`).
        host_suffix: for `*.example.com`, `.example.com`; None: no wildcard.
        path_prefix: the prefix to match; None: any path.
        headers: (lower-case name, value) pairs that must all be present.
    """

    host: str | None = None
    host_suffix: str | None = None
    path_prefix: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    # Whether the prefix ends a path segment by itself (ends with "/"), or must be followed by one.
    _prefix_ends_segment: bool = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        prefix = self.path_prefix
        object.__setattr__(self, "_prefix_ends_segment", prefix is None or prefix.endswith("/"))

    @classmethod
    def build(
        cls,
        *,
        host: str | None = None,
        path_prefix: str | None = None,
        header: Mapping[str, str] | None = None,
    ) -> RouteRule:
        """Compile a route's conditions (as `RouteConf` holds them)."""
        exact = suffix = None
        if host is not None:
            name = host.rstrip(".").lower()
            if name.startswith("*."):
                suffix = name[1:]
            else:
                exact = name
        headers = tuple((name.lower(), value) for name, value in (header or {}).items())
        return cls(host=exact, host_suffix=suffix, path_prefix=path_prefix, headers=headers)

    @classmethod
    def from_conf(cls, route: RouteConf) -> RouteRule:
        """Compile the conditions of `route`."""
        return cls.build(host=route.host, path_prefix=route.path_prefix, header=route.header)

    @property
    def needs_host(self) -> bool:
        """Whether matching looks at the request's host."""
        return self.host is not None or self.host_suffix is not None

    def matches(self, host: str | None, path: str, headers: Headers) -> bool:
        """Whether a request for `host` (normalized, see `request_host`) and `path` with `headers` matches."""
        if self.host is not None and host != self.host:
            return False
        suffix = self.host_suffix
        if suffix is not None and (host is None or len(host) <= len(suffix) or not host.endswith(suffix)):
            return False
        prefix = self.path_prefix
        if prefix is not None:
            if not path.startswith(prefix):
                return False
            if not self._prefix_ends_segment and len(path) > len(prefix) and path[len(prefix)] != "/":
                return False
        wanted = self.headers
        return not wanted or all(headers.get(name) == value for name, value in wanted)


class RouteTable(Generic[T]):
    """Routes in order, each with what it leads to (a `T`); immutable once built.

    Args:
        routes: (rule, target) pairs in the order they are tried.
    """

    __slots__ = ("_needs_host", "_routes")

    def __init__(self, routes: Iterable[tuple[RouteRule, T]]) -> None:
        self._routes: tuple[tuple[RouteRule, T], ...] = tuple(routes)
        self._needs_host = any(rule.needs_host for rule, _ in self._routes)

    @classmethod
    def from_routes(cls, routes: Sequence[RouteConf], target: Callable[[int, RouteConf], T]) -> RouteTable[T]:
        """A table of a service's `routes`, each leading to `target(index, route)`."""
        return cls((RouteRule.from_conf(route), target(index, route)) for index, route in enumerate(routes))

    def __repr__(self) -> str:
        return f"<RouteTable routes={len(self._routes)}>"

    def __len__(self) -> int:
        return len(self._routes)

    @property
    def routes(self) -> tuple[tuple[RouteRule, T], ...]:
        """The (rule, target) pairs, in order."""
        return self._routes

    def targets(self) -> list[T]:
        """What each route leads to, in order."""
        return [target for _, target in self._routes]

    def map(self, convert: Callable[[T], U]) -> RouteTable[U]:
        """The same rules leading to `convert(target)`."""
        return RouteTable((rule, convert(target)) for rule, target in self._routes)

    def match(self, request: RequestHeader) -> T | None:
        """The target of the first route `request` matches, or None."""
        host = request_host(request) if self._needs_host else None
        return self.lookup(host, request.path, request.headers)

    def lookup(self, host: str | None, path: str, headers: Headers) -> T | None:
        """The target of the first route a request for `host` and `path` with `headers` matches, or None."""
        for rule, target in self._routes:
            if rule.matches(host, path, headers):
                return target
        return None
