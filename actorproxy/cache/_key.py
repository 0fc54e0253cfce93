"""Cache keys: the primary key of a request (method, scheme, host, path and query by default), and the
keys invalidated by an unsafe request (RFC 9111 §4.4).

Rules:
- HEAD is keyed as GET: a HEAD is answered from the stored GET (RFC 9110 §9.3.2). So is PURGE: it names
  the stored GET to remove.
- The host is the absolute-form target's authority, else the Host field; lowercased, with the scheme's
  default port removed, so `http://A:80/x` and `Host: a` share a key.
- Invalidation (§4.4): a request with an unsafe method that gets a non-error answer (2xx, 3xx) invalidates
  its target URI, and the Location and Content-Location URIs of its answer when they are of the same origin
  (scheme, host and port).
"""

from __future__ import annotations

import functools
from urllib.parse import urljoin, urlsplit

import attrs

from actorproxy.http import RequestHeader, ResponseHeader

from ._policy import SAFE_METHODS

__all__ = ["DEFAULT_KEY_PARTS", "CacheKeyParts", "cache_key", "invalidated_keys"]

# Methods whose key is the GET's (see the module rules).
_KEYED_AS_GET = frozenset({"HEAD", "PURGE"})
# RFC 9110 §4.2.1, §4.2.2: the default ports of http and https.
_DEFAULT_PORTS = {"http": "80", "https": "443"}


@attrs.frozen(kw_only=True)
class CacheKeyParts:
    """Which parts of a request make its cache key.

    Attributes:
        method: the method (HEAD and PURGE count as GET).
        scheme: http or https.
        host: the host (and a port that is not the default).
        path: the path.
        query: the query string.
        headers: request fields whose values are added to the key (lowercase names), for variants the
            origin does not announce with Vary.
    """

    method: bool = True
    scheme: bool = True
    host: bool = True
    path: bool = True
    query: bool = True
    headers: tuple[str, ...] = ()


#: method + scheme + host + path?query.
DEFAULT_KEY_PARTS = CacheKeyParts()


def _authority(request: RequestHeader) -> str:
    uri = request.uri
    if "://" in uri and not uri.startswith("/"):
        return urlsplit(uri).netloc
    return request.headers.get("host") or ""


# Clients of one cache name a few hosts: each authority is read once (bounded: a client cannot grow it).
@functools.lru_cache(maxsize=1024)
def _host(authority: str, scheme: str) -> str:
    authority = authority.strip().lower().rpartition("@")[2]
    host, colon, port = authority.rpartition(":")
    if colon and port == _DEFAULT_PORTS.get(scheme) and (host.endswith("]") or ":" not in host):
        return host
    return authority


def cache_key(
    request: RequestHeader, *, scheme: str = "http", parts: CacheKeyParts = DEFAULT_KEY_PARTS
) -> str:
    """The primary cache key of `request`, as readable text: `GET http://example.com/a?b=1`.

    Args:
        request: the request as the client sent it.
        scheme: the scheme the client used (the listener's: http or https).
        parts: which parts make the key.
    """
    target = f"{scheme}://" if parts.scheme else ""
    if parts.host:
        target += _host(_authority(request), scheme)
    uri = request.uri
    if parts.path and parts.query and uri.startswith("/"):
        target += uri  # an origin-form target is its path and query, as they are
    else:
        if parts.path:
            target += request.path
        query = request.query if parts.query else None
        if query is not None:
            target += f"?{query}"
    if parts.method:
        method = request.method
        target = f"{'GET' if method in _KEYED_AS_GET else method} {target}"
    if not parts.headers:
        return target
    pieces = [target]
    for name in parts.headers:
        values = request.headers.get_all(name)
        pieces.append(f"{name}={','.join(values)}" if values else f"{name}!")
    return " ".join(pieces)


def invalidated_keys(
    request: RequestHeader,
    response: ResponseHeader,
    *,
    scheme: str = "http",
    parts: CacheKeyParts = DEFAULT_KEY_PARTS,
) -> list[str]:
    """The primary keys to remove after `response` to `request`: none for a safe method or an error."""
    if request.method in SAFE_METHODS or not 200 <= response.status < 400:
        return []
    authority = _host(_authority(request), scheme)
    base = f"{scheme}://{authority}{request.path}" + (
        f"?{request.query}" if request.query is not None else ""
    )
    keys = [cache_key(_get(base), scheme=scheme, parts=parts)]
    for field in ("location", "content-location"):
        value = response.headers.get(field)
        if value is None:
            continue
        target = urlsplit(urljoin(base, value.strip()))
        if target.scheme != scheme or _host(target.netloc, scheme) != authority:
            continue  # another origin: not ours to invalidate (§4.4)
        key = cache_key(_get(target.geturl()), scheme=scheme, parts=parts)
        if key not in keys:
            keys.append(key)
    return keys


def _get(uri: str) -> RequestHeader:
    return RequestHeader("GET", uri)
