"""`AdminApp`: the admin API and page, answered by the admin service's own `request_filter`.

Rules:
- Every request is answered here; nothing is proxied. Reads are open to whoever reaches the listener (it is
  loopback by default); write actions (enable or disable a backend, reload) are POSTs that must carry the
  `X-Admin-Token` header, compared in constant time with the configured token. The token is never read
  from a cookie or the query string. Without a configured token (loopback only) the header must still be
  present: a page of another origin cannot send a custom header without a CORS preflight, which is never
  answered, so a malicious page cannot make the browser post to the admin.
- A request whose `Origin` is not the admin's own (`Host`) is refused, so another site cannot read the
  WebSocket's stream either.
- The page and its files are package data, read once when the service is built: no build step, no CDN.
"""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import resources
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

import trio
import trio_websocket

from actorproxy.http import ResponseHeader
from actorproxy.proxy import HttpProxyService, ProxyCounters, ProxyHttp, ResponseCache, Session
from actorproxy.store import StoreError

from ._history import SAMPLE_INTERVAL
from ._monitor import AdminState
from ._target import AdminTarget
from ._views import (
    backend_view,
    clusters_view,
    config_view,
    counters_view,
    find_backend,
    tree_view,
)
from ._websocket import is_websocket_request, serve_websocket

__all__ = ["TOKEN_HEADER", "AdminApp"]

#: The header write actions carry the token in.
TOKEN_HEADER = "X-Admin-Token"
# The largest body of a purge request (a JSON object naming one key or prefix).
MAX_PURGE_BODY = 64 * 1024
#: Seconds between two pushes to a page at most (a storm of crashes is batched); and at least, when idle.
MIN_PUSH_INTERVAL = 0.1
MAX_PUSH_INTERVAL = SAMPLE_INTERVAL

_STATIC_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}
# The page loads only its own files and talks only to its own origin (the WebSocket included).
_SECURITY_HEADERS = (
    ("Cache-Control", "no-store"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none';"
        " frame-ancestors 'none'",
    ),
)


@runtime_checkable
class CachingApp(Protocol):
    """An application with HTTP caches the admin API may purge (the declared proxy, or one of your own)."""

    def response_caches(self) -> Sequence[ResponseCache]: ...


class ApiError(Exception):
    """A request the API refuses: answered with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def load_static() -> dict[str, bytes]:
    """The page's files by name (`index.html`, `admin.js`, ...), from the package's `static` folder."""
    folder = resources.files(__package__ or "actorproxy.admin") / "static"
    return {entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()}


class AdminApp(ProxyHttp):
    """Answers the admin API, the page and its WebSocket (see the module rules).

    Args:
        target: the server to show and act on.
        state: the monitor's published history and events.
        counters: the services' counters by name (those the page plots).
        token: what write actions must send in `X-Admin-Token`; None: any value, but the header is required.
        static: the page's files by name; default: the package's.
    """

    def __init__(
        self,
        target: AdminTarget,
        state: AdminState,
        counters: Callable[[], Iterable[tuple[str, ProxyCounters]]],
        *,
        token: str | None = None,
        static: Mapping[str, bytes] | None = None,
    ) -> None:
        self.target = target
        self.state = state
        self.counters = counters
        self._token = None if token is None else token.encode()
        self.static = dict(load_static() if static is None else static)

    def __repr__(self) -> str:
        return f"<AdminApp token={'set' if self._token else 'none'}>"

    # -- the phases ----------------------------------------------------------------------------------------

    async def request_filter(self, session: Session, ctx: Any) -> bool:
        try:
            await self._route(session)
        except ApiError as exc:
            await _respond_json(session, exc.status, {"error": exc.message})
        return True

    async def _route(self, session: Session) -> None:
        header = session.req_header
        method = header.method
        path = header.path
        _check_origin(session)
        if path == "/" or path.startswith("/static/"):
            name = "index.html" if path == "/" else path.removeprefix("/static/")
            _allow(method, "GET", "HEAD")
            await self._static(session, name)
            return
        parts = [unquote(part) for part in path.split("/")[1:]]
        if parts[:1] != ["api"]:
            raise ApiError(404, f"no such page: {path}")
        await self._api(session, method, parts[1:])

    async def _api(self, session: Session, method: str, parts: list[str]) -> None:
        match parts:
            case ["ws"]:
                _allow(method, "GET")
                if not is_websocket_request(session.req_header):
                    raise ApiError(400, "expected a WebSocket upgrade (Upgrade: websocket)")
                await serve_websocket(session, self._push)
                return
            case ["reload"]:
                _allow(method, "POST")
                await self._authorize(session)
                await _respond_json(session, 200, await self.reload())
                return
            case ["cache", "purge"]:
                _allow(method, "POST")
                await self._authorize(session, drain=False)
                await _respond_json(session, 200, await self.purge(await _read_json(session)))
                return
            case ["clusters", cluster, "backends", address, ("enable" | "disable") as action]:
                _allow(method, "POST")
                await self._authorize(session)
                await _respond_json(session, 200, self.set_enable(cluster, address, action == "enable"))
                return
        reads: dict[tuple[str, ...], Callable[[], dict[str, Any]]] = {
            ("state",): self.state_view,
            ("tree",): self.tree_view,
            ("clusters",): lambda: {"clusters": clusters_view(self.target.clusters())},
            ("services",): self.services_view,
            ("events",): lambda: {"events": list(self.state.events)},
            ("config",): lambda: config_view(self.target.configuration),
        }
        read = reads.get(tuple(parts))
        if read is None:
            raise ApiError(404, f"no such endpoint: /api/{'/'.join(parts)}")
        _allow(method, "GET", "HEAD")
        await _respond_json(session, 200, read())

    # -- what the endpoints answer ---------------------------------------------------------------------------

    def tree_view(self) -> dict[str, Any]:
        """The live supervision tree, with `now` (trio's clock) and which worker answered."""
        system = self.target.system
        now = trio.current_time()
        return {
            "now": now,
            "pid": os.getpid(),
            "worker": self.target.worker,
            "tree": [] if system is None else tree_view(system.tree(), now),
        }

    def services_view(self, since: float | None = None) -> dict[str, Any]:
        """Each service's counters, and the rates of the last minutes (`history`, points newer than
        `since`), one point per `interval` seconds."""
        return {
            "services": [counters_view(name, counters) for name, counters in self.counters()],
            "interval": SAMPLE_INTERVAL,
            "history": self.state.history.points(since),
        }

    def state_view(self, since: float | None = None) -> dict[str, Any]:
        """Everything the page shows, in one document (what the WebSocket pushes)."""
        return {
            **self.tree_view(),
            **self.services_view(since),
            "version": self.state.version,
            "token_required": self._token is not None,
            "clusters": clusters_view(self.target.clusters()),
            "events": list(self.state.events),
        }

    async def reload(self) -> dict[str, Any]:
        """Run the server's reload hooks (what SIGHUP does) and say what each did."""
        outcomes = await self.target.reload()
        hooks = [
            {"hook": o.hook, "ok": o.ok, "message": o.message, "details": _plain(o.details)} for o in outcomes
        ]
        return {"ok": all(hook["ok"] for hook in hooks), "hooks": hooks}

    def set_enable(self, cluster: str, address: str, enabled: bool) -> dict[str, Any]:
        """Allow or stop traffic to the backend at `address` of `cluster`."""
        lb = self.target.clusters().get(cluster)
        if lb is None:
            raise ApiError(404, f"no upstream cluster {cluster!r}")
        backend = find_backend(lb, address)
        if backend is None:
            raise ApiError(404, f"cluster {cluster!r} has no backend {address!r}")
        changed = lb.set_enable(backend, enabled)
        table = lb.backends()
        health = table.health(backend)
        assert health is not None  # found in this same table, in this same synchronous step
        self.state.publish()
        return {
            "cluster": cluster,
            "changed": changed,
            "backend": backend_view(backend, health, table.ejections(backend)),
        }

    def response_caches(self) -> list[ResponseCache]:
        """The HTTP caches of the server's proxy services (each once)."""
        found: dict[int, ResponseCache] = {}
        for service in self.target.services:
            if isinstance(service, HttpProxyService) and isinstance(service.app, CachingApp):
                found.update((id(cache), cache) for cache in service.app.response_caches())
        return list(found.values())

    async def purge(self, request: Any) -> dict[str, Any]:
        """Remove from every HTTP cache the responses of one key (`{"key": "GET http://host/path"}`), or of
        every key under a prefix (`{"prefix": "GET http://host/static/"}`)."""
        if not isinstance(request, dict) or len(request) != 1 or not request.keys() <= {"key", "prefix"}:
            raise ApiError(400, 'expected {"key": "<cache key>"} or {"prefix": "<start of cache keys>"}')
        (kind, value), *_ = request.items()
        if not isinstance(value, str) or not value:
            raise ApiError(400, f"{kind}: expected a non-empty string, got {value!r}")
        caches = self.response_caches()
        purged = 0
        try:
            for cache in caches:
                purged += await (cache.purge(value) if kind == "key" else cache.purge_prefix(value))
        except StoreError as exc:
            raise ApiError(503, f"the store failed: {exc}") from exc
        return {kind: value, "caches": len(caches), "purged": purged}

    # -- helpers -------------------------------------------------------------------------------------------

    async def _authorize(self, session: Session, *, drain: bool = True) -> None:
        sent = session.get_header(TOKEN_HEADER)
        if sent is None:
            raise ApiError(401, f"write actions need the {TOKEN_HEADER} header")
        if self._token is not None and not hmac.compare_digest(sent.encode(), self._token):
            raise ApiError(403, "wrong admin token")
        if drain:
            await session.drain_request_body()

    async def _static(self, session: Session, name: str) -> None:
        body = self.static.get(name)
        if body is None:
            raise ApiError(404, f"no such file: {name}")
        kind = _STATIC_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")
        await _respond(session, 200, body, kind)

    async def _push(self, socket: trio_websocket.WebSocketConnection) -> None:
        """Send the page the whole state at once, then again at every new version (at least once per
        sample interval, at most every `MIN_PUSH_INTERVAL`), new history points only; close on drain."""
        state = self.state
        version = -1
        since: float | None = None
        while not state.closing:
            await state.wait_changed(version, MAX_PUSH_INTERVAL)
            version = state.version
            view = self.state_view(since)
            since = state.history.latest
            await socket.send_message(json.dumps({"type": "state", **view}))
            await trio.sleep(MIN_PUSH_INTERVAL)
        await socket.aclose(code=1001, reason="the server is shutting down")


def _allow(method: str, *allowed: str) -> None:
    if method not in allowed:
        raise ApiError(405, f"{method} not allowed here; use {' or '.join(allowed)}")


def _check_origin(session: Session) -> None:
    origin = session.get_header("origin")
    if origin is None:
        return
    if urlsplit(origin).netloc != (session.get_header("host") or ""):
        raise ApiError(403, f"cross-origin request from {origin} refused")


def _plain(value: Any) -> Any:
    """Plain JSON data of `value` (tuples as lists)."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


async def _respond(session: Session, status: int, body: bytes, content_type: str) -> None:
    header = ResponseHeader.build(status)
    for name, value in _SECURITY_HEADERS:
        header.insert_header(name, value)
    header.insert_header("Content-Type", content_type)
    header.insert_header("Content-Length", str(len(body)))
    if not session.request_body_done:
        session.set_keepalive(None)  # the rest of a body never read: the connection cannot go on
    if session.req_header.method == "HEAD":
        await session.write_response_header(header, end_of_stream=True)
        return
    await session.write_response_header(header)
    await session.write_response_body(body, end_of_stream=True)


async def _read_json(session: Session) -> Any:
    """The request body as JSON (at most `MAX_PURGE_BODY` bytes)."""
    body = bytearray()
    while (piece := await session.read_request_body()) is not None:
        body += piece
        if len(body) > MAX_PURGE_BODY:
            session.set_keepalive(None)  # the rest is never read
            raise ApiError(413, f"the body is larger than {MAX_PURGE_BODY} bytes")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise ApiError(400, f"the body is not JSON: {exc}") from exc


async def _respond_json(session: Session, status: int, data: Mapping[str, Any]) -> None:
    await _respond(session, status, json.dumps(data, separators=(",", ":")).encode(), "application/json")
