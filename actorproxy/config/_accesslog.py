"""`AccessLogConf`: a service's access log (where, in which format), and the fields a line can hold.

A format is `combined` (nginx's), `json` (one object a line, every field), or a template of `{field}` names,
checked here so that an unknown field is a configuration error naming the key, not a surprise at run time.
"""

from __future__ import annotations

import re
import string
from typing import Final

import attrs

from ._checks import at_least, doc, parsed_by
from ._rules import PATH

__all__ = [
    "ACCESS_LOG_FIELDS",
    "DEFAULT_ACCESS_LOG_BUFFER",
    "DEFAULT_ACCESS_LOG_FLUSH_INTERVAL",
    "DEFAULT_REQUEST_ID_HEADER",
    "REQUEST_ID_PATTERN",
    "AccessLogConf",
    "template_fields",
]

#: The fields a line can name, with what they hold.
ACCESS_LOG_FIELDS: Final = {
    "time": "when the request ended, ISO 8601 with the UTC offset",
    "time_local": "the same, as nginx writes it: 05/Dec/2026:16:04:37 +0000",
    "client": "the client's address (no port)",
    "client_port": "the client's port",
    "method": "the request method",
    "path": "the request target as sent (path and query)",
    "protocol": "HTTP/1.1 or HTTP/1.0",
    "request": "the request line: method, target, protocol",
    "host": "the Host header",
    "status": "the status sent (0 when none was)",
    "bytes_sent": "bytes sent to the client, heads and framing included",
    "bytes_received": "bytes received from the client, heads and framing included",
    "duration": "seconds from the request head to the end of the response",
    "duration_ms": "the same in milliseconds",
    "upstream": "the last upstream address tried (host:port), or -",
    "upstream_ttfb": "seconds from sending the request upstream to its response head, or -",
    "retries": "retries made",
    "request_id": "the request's id",
    "tls_version": "the TLS version with the client, or -",
    "route": "the route the request matched (declared proxy), or -",
    "cache": "the cache's verdict: HIT, MISS, STALE, REVALIDATED, BYPASS, or -",
    "referer": "the Referer header, or -",
    "user_agent": "the User-Agent header, or -",
    "error": "the error that ended the request, or -",
}
#: How many lines may wait for the disk; past that, new lines are dropped and counted.
DEFAULT_ACCESS_LOG_BUFFER = 10_000
#: Seconds lines gather before a write: one write for many lines (nginx's `access_log ... flush=`). Measured
#: with benchmarks/proxy.py (tiny responses), a write per wake-up cost about 8% of the CPU per request.
DEFAULT_ACCESS_LOG_FLUSH_INTERVAL = 0.1
#: The header a request's id comes in and goes out with.
DEFAULT_REQUEST_ID_HEADER = "X-Request-Id"

_NAMED_FORMATS = ("combined", "json")


def template_fields(template: str) -> list[str]:
    """The field names of a `{field}` template, in order.

    Raises:
        ValueError: a name that is not a field, a conversion or format spec, or a broken brace.
    """
    names = []
    for _, name, spec, conversion in string.Formatter().parse(template):
        if name is None:
            continue
        if name not in ACCESS_LOG_FIELDS:
            known = ", ".join(ACCESS_LOG_FIELDS)
            raise ValueError(f"unknown field {{{name}}} (fields: {known})")
        if spec or conversion:
            raise ValueError(f"{{{name}}}: no format spec or conversion, just the name")
        names.append(name)
    if not names:
        raise ValueError("a template names at least one {field}")
    return names


def _format(value: str) -> None:
    if value in _NAMED_FORMATS:
        return
    template_fields(value)


@attrs.frozen(kw_only=True)
class AccessLogConf:
    """A service's access log: one line per request, written off the request path."""

    path: str = attrs.field(
        validator=PATH, metadata=doc("The file, appended to; `-` writes to standard output.")
    )
    format: str = attrs.field(
        default="combined",
        validator=parsed_by(_format, "combined, json, or a template of {field} names"),
        metadata=doc(
            "combined (nginx's), json (one object a line), or a template such as"
            ' "{client} {method} {path} {status} {duration_ms}ms {request_id}" (docs/observability.md).'
        ),
    )
    buffer: int = attrs.field(
        default=DEFAULT_ACCESS_LOG_BUFFER,
        validator=at_least(1),
        metadata=doc("Lines that may wait for the disk; past that, lines are dropped and counted."),
    )
    flush_interval: float = attrs.field(
        default=DEFAULT_ACCESS_LOG_FLUSH_INTERVAL,
        validator=at_least(0),
        metadata=doc("Seconds lines gather before they are written together; 0: written at once."),
    )


# A well-formed incoming request id: what a proxy can pass on and log without escaping (RFC 9110 token
# characters, and no more than a UUID with room to spare).
REQUEST_ID_PATTERN = re.compile(r"[A-Za-z0-9._~:+/=-]{1,128}")

attrs.resolve_types(AccessLogConf)
