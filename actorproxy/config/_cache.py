"""`CacheConf`: a route's HTTP cache (`routes[i].cache`), on the embedded store (the top-level `store:`).

Rules:
- A route with `cache` answers from a shared cache (RFC 9111) what it may: docs/cache.md. Entries live in
  the server's store; without a `store:` section the server keeps them in memory (64 MiB per process).
- `key` lists what makes a request's cache key: `method`, `scheme`, `host`, `path`, `query`, and
  `header:<name>` for a request field the response varies on without saying so in Vary.
- `purge_token` turns PURGE on for the route (off by default, as in nginx Plus and Varnish): a PURGE with
  the token in `X-Purge-Token` removes the target's stored responses (a target ending in `*`: every key it
  starts). Without it PURGE is proxied like any other method.
- The records only describe; the cache is built in `actorproxy.proxy` (`ResponseCache`) by the declared
  proxy.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from ._checks import at_least, check_class, did_you_mean, doc, each, parsed_by
from ._rules import HEADER_NAME, NON_NEGATIVE, POSITIVE

__all__ = [
    "CACHE_KEY_PARTS",
    "DEFAULT_CACHE_HEADER",
    "DEFAULT_CACHE_KEEP_STALE",
    "DEFAULT_CACHE_KEY",
    "DEFAULT_CACHE_LOCK_TIMEOUT",
    "DEFAULT_CACHE_MEMORY_SIZE",
    "MIN_PURGE_TOKEN_LENGTH",
    "CacheConf",
    "parse_cache_key_part",
]

#: What a cache key may be made of, besides `header:<name>`.
CACHE_KEY_PARTS = ("method", "scheme", "host", "path", "query")
#: The key of a route that names none: the whole request target, as RFC 9111 §4 keys a response.
DEFAULT_CACHE_KEY = CACHE_KEY_PARTS
# Pingora's cache lock: a reader gives up on the writer after 5 s.
DEFAULT_CACHE_LOCK_TIMEOUT = 5.0
# nginx's proxy_cache_path `inactive` default: a stale entry is kept ten minutes for revalidation.
DEFAULT_CACHE_KEEP_STALE = 600.0
# 16 MiB of small entries in each process's memory per cached route: a few hundred typical responses.
DEFAULT_CACHE_MEMORY_SIZE = 16 * 1024 * 1024
#: The response header that says what the cache did (HIT, MISS, STALE, REVALIDATED, BYPASS).
DEFAULT_CACHE_HEADER = "x-cache"
# As the admin token: 16 characters from a base64 alphabet are beyond guessing over the network.
MIN_PURGE_TOKEN_LENGTH = 16


def parse_cache_key_part(text: object) -> tuple[str, str]:
    """Read one part of a cache key: `method`, `scheme`, `host`, `path`, `query` or `header:<name>`.

    Returns:
        (part, header name in lower case or "").

    Raises:
        ValueError: the reason.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected one of {', '.join(CACHE_KEY_PARTS)} or header:<name>, got {text!r}")
    kind, colon, name = text.partition(":")
    if colon:
        if kind != "header" or not name:
            raise ValueError(f"expected header:<name>, got {text!r}")
        for _, reason in HEADER_NAME.rule(name):
            raise ValueError(reason)
        return "header", name.lower()
    if text not in CACHE_KEY_PARTS:
        guess = did_you_mean(text, CACHE_KEY_PARTS)
        known = ", ".join(CACHE_KEY_PARTS)
        hint = f"did you mean {guess!r}?" if guess else f"expected {known} or header:<name>"
        raise ValueError(f"unknown key part {text!r} ({hint})")
    return text, ""


@attrs.frozen(kw_only=True)
class CacheConf:
    """A route's HTTP cache: RFC 9111 for a shared cache, on the server's store."""

    enabled: bool = attrs.field(default=True, metadata=doc("Cache this route's responses; false: off."))
    max_size: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Bytes of the largest response body stored; larger ones pass unstored. null: no limit."),
    )
    default_ttl: float | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Seconds a storable response that states no lifetime (no max-age, s-maxage or Expires) stays"
            " fresh; null: RFC 9111's heuristic (10% of its age since Last-Modified)."
        ),
    )
    key: tuple[str, ...] = attrs.field(
        default=DEFAULT_CACHE_KEY,
        validator=each(parsed_by(parse_cache_key_part, "a key part")),
        metadata=doc("What makes a request's cache key: method, scheme, host, path, query, header:<name>."),
    )
    stale_while_revalidate: float | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Seconds a stale response without its own stale-while-revalidate may still be served while it"
            " is revalidated (RFC 5861); null: only what responses say."
        ),
    )
    stale_if_error: float | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Seconds a stale response without its own stale-if-error may answer when the upstream fails"
            " (RFC 5861); null: only what responses and requests say."
        ),
    )
    lock_timeout: float = attrs.field(
        default=DEFAULT_CACHE_LOCK_TIMEOUT,
        validator=POSITIVE,
        metadata=doc(
            "Seconds a request waits for another one already fetching the same key before it goes upstream"
            " itself."
        ),
    )
    header: str | None = attrs.field(
        default=DEFAULT_CACHE_HEADER,
        validator=HEADER_NAME,
        metadata=doc("The response header saying HIT, MISS, STALE, REVALIDATED or BYPASS; null: none."),
    )
    memory_size: int = attrs.field(
        default=DEFAULT_CACHE_MEMORY_SIZE,
        validator=NON_NEGATIVE,
        metadata=doc("Bytes of small stored responses also kept in each process's memory; 0: none."),
    )
    keep_stale: float = attrs.field(
        default=DEFAULT_CACHE_KEEP_STALE,
        validator=NON_NEGATIVE,
        metadata=doc("Seconds a stale response stays stored to be revalidated (with a 304) before it goes."),
    )
    purge_token: str | None = attrs.field(
        default=None,
        metadata=doc(
            "PURGE requests carrying this token in X-Purge-Token remove stored responses (use"
            f" ${{secret:NAME}}, {MIN_PURGE_TOKEN_LENGTH} characters at least); null: PURGE is proxied."
        ),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.purge_token is not None and len(self.purge_token) < MIN_PURGE_TOKEN_LENGTH:
            yield "purge_token", f"at least {MIN_PURGE_TOKEN_LENGTH} characters, got {len(self.purge_token)}"


attrs.resolve_types(CacheConf)
