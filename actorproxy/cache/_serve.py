"""The response the cache sends from a stored one: 200, 206, 304 or 416, with Age, for GET or HEAD.

Order (RFC 9110 §13.2.2): the client's preconditions first (a match answers 304), then Range.
"""

from __future__ import annotations

import attrs

from actorproxy.http import RequestHeader, ResponseHeader

from ._entry import StoredResponse
from ._freshness import age_header, current_age
from ._range import plan_range
from ._validate import not_modified, not_modified_response

__all__ = ["Served", "serve"]


@attrs.frozen
class Served:
    """A response from the cache: its head, and which bytes of the stored body follow it.

    Attributes:
        header: the head to send (a new object, free to change).
        body: [start, end) of the stored body to send; None when no body is sent (HEAD, 304, 416).
    """

    header: ResponseHeader
    body: tuple[int, int] | None


def serve(request: RequestHeader, stored: StoredResponse, size: int, now: float) -> Served:
    """The answer to `request` (GET or HEAD) from `stored`, whose body is `size` bytes."""
    if not_modified(request, stored):
        return Served(not_modified_response(stored, now), None)
    header = stored.response()
    header.insert_header("Age", age_header(current_age(stored, now)))
    plan = plan_range(request, stored, size)
    content_range = plan.content_range
    if plan.status != 200:
        header.set_status(plan.status)
        header.insert_header("Content-Range", content_range or "")
    header.insert_header("Content-Length", str(plan.end - plan.start))
    if plan.status == 416:
        return Served(header, None)
    if stored.status == 204:  # RFC 9110 §8.6: no Content-Length, and no body
        header.remove_header("Content-Length")
        return Served(header, None)
    body = None if request.method == "HEAD" else (plan.start, plan.end)
    return Served(header, body)
