"""`CacheControl`: the directives of a request's or a response's Cache-Control fields (RFC 9111 §5.2).

Rules:
- Directive names are case-insensitive (§5.2); a value may be a token or a quoted string, and is read in
  either form (§5.2: "both forms", and recipients must accept both).
- A directive given twice with different values conflicts: a numeric one then reads as 0, which makes a
  response stale (§4.2.1: "either the first occurrence should be used or the response should be
  considered stale"; the safer choice is taken).
- A delta-seconds value that is not digits reads as 0 (stale) for the response's lifetimes and as absent
  for the request's; a value too large is 2^31 (§1.2.2).
- Parsing is memoized per distinct field value (bounded), and a message without the field reads as no
  directives at once: a hit reads the request's and the stored response's directives.
- Qualified `no-cache="field"` is treated as unqualified `no-cache` (§5.2.2.4 notes caches commonly do so);
  qualified `private="field"` keeps its field names: a shared cache stores the response without them
  (§5.2.2.7).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping

import attrs

from actorproxy.http import Headers

from ._fields import list_items, parse_delta_seconds, unquote

__all__ = ["ANY_STALENESS", "CacheControl"]

#: `max-stale` given without a value: the client accepts a response stale by any amount (§5.2.1.2).
ANY_STALENESS = float("inf")


@attrs.frozen
class CacheControl:
    """The Cache-Control directives of one message.

    Attributes:
        directives: lowercase name -> the value of its first occurrence (None when it has none).
        conflicting: names given more than once with different values.
    """

    directives: Mapping[str, str | None] = attrs.field(factory=dict)
    conflicting: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, headers: Headers) -> CacheControl:
        """The directives of every Cache-Control field line in `headers`."""
        if "cache-control" not in headers:
            return _NONE  # most requests: nothing to read
        return _parsed(tuple(headers.get_all("cache-control")))

    @classmethod
    def from_values(cls, values: tuple[str, ...]) -> CacheControl:
        """The directives of these Cache-Control field values."""
        found: dict[str, str | None] = {}
        conflicting: set[str] = set()
        for item in list_items(values):
            name, equals, value = item.partition("=")
            name = name.strip().lower()
            parsed = unquote(value.strip()) if equals else None
            if name in found:
                if found[name] != parsed:
                    conflicting.add(name)
                continue
            found[name] = parsed
        return cls(found, frozenset(conflicting))

    def has(self, name: str) -> bool:
        """Whether the directive is present (in any form)."""
        return name in self.directives

    def seconds(self, name: str, *, invalid: int | None = 0) -> int | None:
        """A delta-seconds directive's value; None when absent; `invalid` when conflicting or not digits."""
        if name not in self.directives:
            return None
        if name in self.conflicting:
            return invalid
        value = parse_delta_seconds(self.directives[name])
        return invalid if value is None else value

    def fields(self, name: str) -> frozenset[str]:
        """The lowercase field names a qualified directive lists (`private="set-cookie, x-a"`)."""
        value = self.directives.get(name)
        if not value:
            return frozenset()
        return frozenset(item.lower() for item in list_items([value]))

    # -- response directives (§5.2.2) ------------------------------------------------------------------------

    @property
    def no_store(self) -> bool:
        return self.has("no-store")

    @property
    def no_cache(self) -> bool:
        return self.has("no-cache")

    @property
    def private(self) -> bool:
        """`private` without field names: a shared cache must not store the response."""
        return self.has("private") and not self.fields("private")

    @property
    def public(self) -> bool:
        return self.has("public")

    @property
    def must_revalidate(self) -> bool:
        return self.has("must-revalidate")

    @property
    def proxy_revalidate(self) -> bool:
        return self.has("proxy-revalidate")

    @property
    def must_understand(self) -> bool:
        return self.has("must-understand")

    @property
    def max_age(self) -> int | None:
        return self.seconds("max-age")

    @property
    def s_maxage(self) -> int | None:
        return self.seconds("s-maxage")

    @property
    def stale_while_revalidate(self) -> int | None:
        """RFC 5861 §3: seconds a stale response may be served while it is revalidated in the background."""
        return self.seconds("stale-while-revalidate", invalid=None)

    @property
    def stale_if_error(self) -> int | None:
        """RFC 5861 §4: seconds a stale response may be served when revalidating it meets an error."""
        return self.seconds("stale-if-error", invalid=None)

    # -- request directives (§5.2.1) -------------------------------------------------------------------------

    @property
    def request_max_age(self) -> int | None:
        return self.seconds("max-age", invalid=None)

    @property
    def max_stale(self) -> float | None:
        """Seconds of staleness the client accepts: `ANY_STALENESS` for a bare `max-stale`; None: absent."""
        if not self.has("max-stale"):
            return None
        if self.directives["max-stale"] is None:
            return ANY_STALENESS
        value = self.seconds("max-stale", invalid=None)
        return None if value is None else float(value)

    @property
    def min_fresh(self) -> int | None:
        return self.seconds("min-fresh", invalid=None)

    @property
    def only_if_cached(self) -> bool:
        return self.has("only-if-cached")


# The directives of a message without Cache-Control (shared: a CacheControl is never changed).
_NONE = CacheControl()


# Responses of one origin repeat a few Cache-Control values: each is read once (a CacheControl is never
# changed, so one can be shared). Bounded: a client cannot grow it past this.
@functools.lru_cache(maxsize=1024)
def _parsed(values: tuple[str, ...]) -> CacheControl:
    return CacheControl.from_values(values)
