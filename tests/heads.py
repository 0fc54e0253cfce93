"""Request, response and stored-response heads for the cache policy tests, built in one line each."""

from __future__ import annotations

from actorproxy.cache import StoredResponse, format_http_date
from actorproxy.http import RequestHeader, ResponseHeader

#: The time the tests' responses are received at (POSIX seconds): 2026-01-01T00:00:00Z.
NOW = 1_767_225_600.0


def date(offset: float = 0.0) -> str:
    """The HTTP-date `offset` seconds from `NOW`."""
    return format_http_date(NOW + offset)


def request(method: str = "GET", uri: str = "/page", *headers: tuple[str, str]) -> RequestHeader:
    return RequestHeader(method, uri, [("Host", "example.com"), *headers])


def response(status: int = 200, *headers: tuple[str, str]) -> ResponseHeader:
    return ResponseHeader(status, list(headers))


def stored(
    *headers: tuple[str, str],
    status: int = 200,
    request_time: float = NOW,
    response_time: float = NOW,
    vary: tuple[tuple[str, str | None], ...] = (),
    dated: bool = True,
) -> StoredResponse:
    """A stored response received at `response_time`, with `Date: <response_time>` unless `dated` is False
    or a Date is given."""
    fields = list(headers)
    if dated and not any(name.lower() == "date" for name, _ in fields):
        fields.append(("Date", format_http_date(response_time)))
    return StoredResponse(
        status=status,
        headers=tuple(fields),
        request_time=request_time,
        response_time=response_time,
        vary=vary,
    )
