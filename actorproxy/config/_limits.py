"""Rate limits declared in the file: a route's `rate_limit`, a service's `trusted_proxies`, and the table
that holds the limits' state on this machine (`rate_limit_table`).

Rules:
- A rate is `<count>/<unit>`, unit `s`, `min`, `h` or `d` (`100/s`, `6000/min`); `parse_rate` reads it and
  the running limiters use the same function, so what the file accepts is what runs.
- A key is one source or a list of them, each `client_ip`, `host`, `route`, `header:<name>` or
  `query:<name>`; `parse_key_source` reads one.
- The records only describe; the limiters are built in `actorproxy.limits`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator
from typing import Any, Literal

import attrs

from ._checks import DUMP, Check, Where, at_least, between, check_class, did_you_mean, doc, each, parsed_by
from ._rules import HEADER_NAME, choice

__all__ = [
    "KEY_SOURCES",
    "ClientIpHeader",
    "OnRedisError",
    "RateLimitBackend",
    "RateLimitConf",
    "RateLimitTableConf",
    "parse_key_source",
    "parse_rate",
    "parse_trusted_proxy",
]

#: Where a rate-limited request's key comes from; `header:` and `query:` take a name after the colon.
KEY_SOURCES = ("client_ip", "host", "route", "header:", "query:")
#: Where a route's rate is counted: in this server (shared by its workers), or in Redis (shared by proxies).
RateLimitBackend = Literal["local", "redis"]
#: The header trusted load balancers put the client's address in.
ClientIpHeader = Literal["x-forwarded-for", "forwarded"]
#: What a request gets while Redis cannot answer: admitted, or refused with the route's status.
OnRedisError = Literal["allow", "deny"]

# The units a rate may be given in, and their length in seconds.
_UNITS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"\s*(\d+)\s*/\s*([a-z]+)\s*")
# RFC 6585 section 4: 429 Too Many Requests; any 4xx or 5xx may be chosen instead (503 is common).
DEFAULT_RATE_LIMIT_STATUS = 429
# 65,536 slots of 16 bytes: 1 MiB, enough for about 32,000 keys active at once (docs/rate-limiting.md).
DEFAULT_TABLE_SLOTS = 65536
# The table is read in buckets of this many slots; the slot count is a multiple of it.
TABLE_BUCKET = 4


def parse_rate(text: object) -> tuple[int, float]:
    """Read a rate, `<count>/<unit>`: `100/s`, `6000/min`, `10/h`, `1000/d`.

    Returns:
        (count, period in seconds).

    Raises:
        ValueError: the reason, naming the accepted form.
    """
    match = _RATE.fullmatch(text) if isinstance(text, str) else None
    if match is None or match.group(2) not in _UNITS:
        raise ValueError(f"expected '<count>/<unit>' with unit s, min, h or d (e.g. '100/s'), got {text!r}")
    count = int(match.group(1))
    if count < 1:
        raise ValueError(f"a rate counts at least 1 request, got {text!r}")
    return count, _UNITS[match.group(2)]


def parse_key_source(text: object) -> tuple[str, str]:
    """Read one key source: `client_ip`, `host`, `route`, `header:<name>` or `query:<name>`.

    Returns:
        (kind, name): the name is the header's (lower case) or the query parameter's, else "".

    Raises:
        ValueError: the reason, with a "did you mean" for a near miss.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected a key source (one of {', '.join(KEY_SOURCES)}), got {text!r}")
    kind, colon, name = text.partition(":")
    if colon:
        if kind not in ("header", "query"):
            raise ValueError(f"unknown key source {text!r}: only header:<name> and query:<name> take a name")
        if not name:
            raise ValueError(f"{kind}: needs a name after the colon ({kind}:<name>), got {text!r}")
        if kind == "header":
            for _, reason in HEADER_NAME.rule(name):
                raise ValueError(reason)
            return kind, name.lower()
        return kind, name
    if kind in ("client_ip", "host", "route"):
        return kind, ""
    known = ("client_ip", "host", "route", "header", "query")
    guess = did_you_mean(kind, known)
    hint = f" (did you mean {guess!r}?)" if guess else f" (expected one of {', '.join(KEY_SOURCES)})"
    raise ValueError(f"unknown key source {text!r}{hint}")


def parse_trusted_proxy(text: object) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """Read an address or network (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`) of a trusted proxy.

    Raises:
        ValueError: the reason.
    """
    if not isinstance(text, str):
        raise ValueError(f"expected an IP network (CIDR), got {text!r}")
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValueError(f"not an IP address or network (CIDR): {text!r}") from None


def _key_rule(value: tuple[str, ...]) -> Iterator[tuple[Where, str]]:
    if not value:
        yield None, "expected at least one key source"
    for index, item in enumerate(value):
        try:
            parse_key_source(item)
        except ValueError as exc:
            yield (index if len(value) > 1 else None), str(exc)


def _one_or_many(value: Any) -> Any:
    return (value,) if isinstance(value, str) else value


#: A key: one source (`client_ip`) or a list of them (`[client_ip, header:x-api-key]`).
KEY = Check(
    "",
    _key_rule,
    {"minItems": 1},
    alternative_schema={"type": "string"},
    coerce=_one_or_many,
)


def _dump_key(value: tuple[str, ...]) -> str | list[str]:
    return value[0] if len(value) == 1 else list(value)


@attrs.frozen(kw_only=True)
class RateLimitConf:
    """How many requests a route admits per key: a rate with a burst (GCRA), requests in flight, or both."""

    key: tuple[str, ...] = attrs.field(
        default=("client_ip",),
        converter=_one_or_many,
        validator=KEY,
        metadata={
            **doc(
                "What a request is counted by: client_ip, host, route, header:<name>, query:<name>, or a"
                " list of them (counted by the combination)."
            ),
            DUMP: _dump_key,
        },
    )
    rate: str | None = attrs.field(
        default=None,
        validator=parsed_by(parse_rate, "<count>/<unit>", pattern=r"^\s*\d+\s*/\s*[a-z]+\s*$"),
        metadata=doc("Requests per key, as '<count>/<unit>' with unit s, min, h or d: '100/s', '6000/min'."),
    )
    burst: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Requests a key may send at once before the rate applies; null: the rate's count."),
    )
    inflight: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Requests of one key in progress at once (counted on this server); null: no limit."),
    )
    status: int = attrs.field(
        default=DEFAULT_RATE_LIMIT_STATUS,
        validator=between(400, 599),
        metadata=doc("Status of the answer to a request over the limit."),
    )
    backend: RateLimitBackend = attrs.field(
        default="local",
        validator=choice(RateLimitBackend),
        metadata=doc(
            "Where the rate is counted: local (this server, all its workers) or redis (every proxy using"
            " the top-level redis section)."
        ),
    )
    on_redis_error: OnRedisError = attrs.field(
        default="allow",
        validator=choice(OnRedisError),
        metadata=doc("With backend redis, what a request gets while Redis fails or is slow: allow or deny."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        if self.rate is None and self.inflight is None:
            yield "", "a rate limit needs a rate, an inflight limit, or both"
        if self.burst is not None and self.rate is None:
            yield "burst", "a burst needs a rate"


@attrs.frozen(kw_only=True)
class RateLimitTableConf:
    """The table in shared memory that holds the local rate limits of every worker of this server."""

    path: str | None = attrs.field(
        default=None,
        metadata=doc(
            "File the table lives in, shared with the next process of a graceful upgrade; null: the"
            " upgrade_sock path with '.limits' added."
        ),
    )
    slots: int = attrs.field(
        default=DEFAULT_TABLE_SLOTS,
        validator=at_least(64),
        metadata=doc(
            "Keys the table can hold at once (16 bytes each); rounded up to a multiple of 4. Keys past it"
            " push out the least limited ones."
        ),
    )


def trusted_proxies_check() -> Check:
    """Every item is an IP address or network."""
    return each(parsed_by(parse_trusted_proxy, "an IP network (CIDR)"))


for _cls in (RateLimitConf, RateLimitTableConf):
    attrs.resolve_types(_cls)
