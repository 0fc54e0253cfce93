"""`StaticFiles`: a site's directory answered as files, inside `request_filter`.

Rules:
- GET and HEAD only (others: 405 with Allow). The path is percent-decoded once; a path that does not decode
  to UTF-8, holds NUL or a backslash, or has a `.` or `..` segment is refused (400): a client normalizes dot
  segments before sending (RFC 3986 section 5.2.4), so one that sends them is probing. A segment that starts
  with a dot (`.git`, `.env`, `.site.yaml`) is not served (404).
- The file's real path (symbolic links resolved) must lie inside the root's real path: a link that leads
  out of the root is not followed (404).
- A directory is answered by its `index.html` (or `index.htm`); its path without a final slash is
  redirected (301) to the path with one, so relative links in the page work.
- Validators: a strong ETag from the file's modification time and size, and Last-Modified. If-None-Match
  (or, without it, If-Modified-Since) that still holds gets 304 (RFC 9110 section 13.2.2's order).
- Ranges (RFC 9110 section 14): one range of bytes gets 206 with Content-Range; a range past the end gets
  416 with `Content-Range: bytes */size`; several ranges, or an If-Range that no longer matches, get the
  whole file (200), as the RFC allows.
- Types from the file name (`mimetypes`), text types in UTF-8; `X-Content-Type-Options: nosniff`;
  `Cache-Control: no-cache` (a development server: the browser always revalidates, and gets 304).
- Files are read in 64 KiB pieces off the event loop (`trio.open_file`); stat and path resolution run in a
  worker thread too.
"""

from __future__ import annotations

import email.utils
import mimetypes
import os
import stat
from pathlib import Path
from urllib.parse import unquote

import attrs
import trio

from actorproxy.declared import respond_text
from actorproxy.http import ResponseHeader
from actorproxy.proxy import Session

__all__ = ["INDEX_FILES", "ByteRange", "StaticFiles", "parse_range", "resolve_request_path"]

#: The files that answer a directory, in order.
INDEX_FILES = ("index.html", "index.htm")
# The read size of the proxy's sockets (docs/architecture.md: 64 KiB reads).
CHUNK_SIZE = 64 * 1024


class BadPath(ValueError):
    """A request path that is refused outright (400)."""


@attrs.frozen
class ByteRange:
    """The bytes `start` to `end` (both included) of a file."""

    start: int
    end: int


def resolve_request_path(root: Path, path: str) -> Path | None:
    """The file or directory `path` names under `root` (a real path), or None when it is not served.

    Blocking (resolves symbolic links).

    Raises:
        BadPath: the path is refused (see the module rules).
    """
    try:
        decoded = unquote(path, errors="strict")
    except UnicodeDecodeError:
        raise BadPath("the path is not UTF-8 once decoded") from None
    if "\x00" in decoded or "\\" in decoded:
        raise BadPath("the path holds NUL or a backslash")
    segments = [segment for segment in decoded.split("/") if segment]
    if any(segment in (".", "..") for segment in segments):
        raise BadPath("the path has a dot segment")
    if any(segment.startswith(".") for segment in segments):
        return None
    real = Path(os.path.realpath(root.joinpath(*segments)))
    if real != root and root not in real.parents:
        return None
    return real


def parse_range(value: str, size: int) -> ByteRange | bool | None:
    """The single byte range `value` (a Range header) asks of a file of `size` bytes.

    Returns:
        the range; None to answer the whole file (several ranges, or not a bytes range); False when it
        cannot be satisfied (416).
    """
    unit, _, spec = value.partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first, dash, last = spec.strip().partition("-")
    if not dash:
        return None
    try:
        if not first:
            suffix = int(last)
            if suffix <= 0:
                return False
            return ByteRange(max(size - suffix, 0), size - 1) if size else False
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start >= size:
        return False
    if start < 0 or end < start:
        return None
    return ByteRange(start, min(end, size - 1))


def _etag(info: os.stat_result) -> str:
    return f'"{info.st_mtime_ns:x}-{info.st_size:x}"'


def _content_type(path: Path) -> str:
    kind, encoding = mimetypes.guess_type(path.name)
    if kind is None or encoding is not None:
        # A .gz or .br file is served as bytes: a Content-Encoding here would make browsers unpack it.
        return "application/octet-stream"
    if kind.startswith("text/") or kind in ("application/javascript", "application/json", "image/svg+xml"):
        return f"{kind}; charset=utf-8"
    return kind


def _none_match(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # Weak comparison (RFC 9110 section 13.1.2): W/ is ignored.
    return any(tag.strip().removeprefix("W/") == etag for tag in header.split(","))


def _not_modified(session: Session, etag: str, mtime: float) -> bool:
    headers = session.req_header.headers
    if_none_match = headers.get("if-none-match")
    if if_none_match is not None:
        return _none_match(if_none_match, etag)
    since = headers.get("if-modified-since")
    if since is None:
        return False
    try:
        date = email.utils.parsedate_to_datetime(since)
    except (TypeError, ValueError):
        return False
    return int(mtime) <= date.timestamp()


def _locate(root: Path, path: str) -> tuple[Path, os.stat_result] | None:
    """The file to answer `path` with and its status, or None (blocking)."""
    target = resolve_request_path(root, path)
    if target is None:
        return None
    try:
        info = target.stat()
    except OSError:
        return None
    if stat.S_ISDIR(info.st_mode):
        for index in INDEX_FILES:
            candidate = Path(os.path.realpath(target / index))
            if root not in candidate.parents:
                continue
            try:
                info = candidate.stat()
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                return candidate, info
        return None
    return (target, info) if stat.S_ISREG(info.st_mode) else None


class StaticFiles:
    """Answers requests with the files under `root` (see the module rules).

    Args:
        root: the directory; its real path is what files must lie in.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(os.path.realpath(root))

    def __repr__(self) -> str:
        return f"<StaticFiles {self.root}>"

    async def respond(self, session: Session) -> int:
        """Answer the session's request; returns the status sent."""
        request = session.req_header
        if request.method not in ("GET", "HEAD"):
            return await _text(session, 405, "only GET and HEAD are served here\n", ("Allow", "GET, HEAD"))
        path = request.path
        try:
            is_directory = await trio.to_thread.run_sync(self._is_directory, path)
            found = await trio.to_thread.run_sync(_locate, self.root, path)
        except BadPath as exc:
            return await _text(session, 400, f"bad path: {exc}\n")
        if is_directory and not path.endswith("/"):
            query = request.uri.partition("?")[2]
            location = path + "/" + (f"?{query}" if query else "")
            return await _text(session, 301, f"moved to {location}\n", ("Location", location))
        if found is None:
            return await _text(session, 404, f"no file at {path}\n")
        file, info = found
        return await self._send(session, file, info)

    def _is_directory(self, path: str) -> bool:
        target = resolve_request_path(self.root, path)
        return target is not None and target.is_dir()

    async def _send(self, session: Session, file: Path, info: os.stat_result) -> int:
        request = session.req_header
        size = info.st_size
        etag = _etag(info)
        header = ResponseHeader.build(200)
        header.insert_header("ETag", etag)
        header.insert_header("Last-Modified", email.utils.formatdate(info.st_mtime, usegmt=True))
        header.insert_header("Cache-Control", "no-cache")
        header.insert_header("Accept-Ranges", "bytes")
        if _not_modified(session, etag, info.st_mtime):
            header.set_status(304)
            await _finish_without_body(session, header)
            return 304
        header.insert_header("Content-Type", _content_type(file))
        header.insert_header("X-Content-Type-Options", "nosniff")
        wanted: ByteRange | None = ByteRange(0, size - 1) if size else None
        range_header = request.headers.get("range")
        if_range = request.headers.get("if-range")
        if (
            range_header is not None
            and request.method == "GET"
            and (if_range is None or if_range.strip() == etag)
        ):
            asked = parse_range(range_header, size)
            if asked is False:
                header.set_status(416)
                header.insert_header("Content-Range", f"bytes */{size}")
                header.insert_header("Content-Length", "0")
                await _finish_without_body(session, header)
                return 416
            if isinstance(asked, ByteRange):
                wanted = asked
                header.set_status(206)
                header.insert_header("Content-Range", f"bytes {asked.start}-{asked.end}/{size}")
        length = 0 if wanted is None else wanted.end - wanted.start + 1
        header.insert_header("Content-Length", str(length))
        if request.method == "HEAD" or wanted is None:
            await _finish_without_body(session, header)
            return header.status
        try:
            source = await trio.open_file(file, "rb")
        except OSError:
            return await _text(session, 404, f"no file at {request.path}\n")
        async with source:
            await source.seek(wanted.start)
            await session.write_response_header(header)
            left = length
            while left > 0:
                data = await source.read(min(CHUNK_SIZE, left))
                if not data:
                    break  # the file shrank meanwhile: the client sees a short body and the connection closes
                left -= len(data)
                await session.write_response_body(data)
        await session.write_response_body(None, end_of_stream=True)
        return header.status


async def _finish_without_body(session: Session, header: ResponseHeader) -> None:
    if not session.request_body_done:
        session.set_keepalive(None)
    await session.write_response_header(header, end_of_stream=True)


async def _text(session: Session, status: int, text: str, *extra: tuple[str, str]) -> int:
    await respond_text(session, status, text, extra)
    return status
