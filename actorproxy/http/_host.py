"""The host a request is for, as routing and rate-limit keys read it. Pure.

Rules:
- The host is the authority of an absolute-form target (RFC 9112 section 3.2.2: it takes precedence over the
  Host header), else the Host header; lower-cased, without its port, user info or a trailing dot.
"""

from __future__ import annotations

from ._header import RequestHeader

__all__ = ["normalize_host", "request_host"]


def normalize_host(authority: str | None) -> str | None:
    """The host of an authority (`host`, `host:port`, `[v6]:port`, `user@host`), lower-cased, without its
    port or a trailing dot; None when there is none."""
    if not authority:
        return None
    host = authority.rpartition("@")[2]
    if host.startswith("["):
        end = host.find("]")
        host = host[: end + 1] if end >= 0 else host
    else:
        host = host.partition(":")[0]
    host = host.rstrip(".").lower()
    return host or None


def request_host(request: RequestHeader) -> str | None:
    """The host a request is for: its absolute-form target's authority, else its Host header (normalized)."""
    uri = request.uri
    if not uri.startswith("/"):
        scheme_end = uri.find("://")
        if scheme_end >= 0:
            start = scheme_end + 3
            ends = [i for i in (uri.find("/", start), uri.find("?", start), uri.find("#", start)) if i >= 0]
            return normalize_host(uri[start : min(ends)] if ends else uri[start:])
    return normalize_host(request.headers.get("host"))
