"""The access log: a record per request taken on the request path, formatted and written off it.

Rules:
- The request path only builds an `AccessRecord` (plain values it already has) and appends it to the
  service's `AccessLog` buffer: no formatting, no I/O, no lock. The buffer is bounded; when it is full the
  record is dropped and counted (`dropped`), never silently, and a slow disk never holds a request.
- `AccessLogActor` (one per service, beside its connections) takes what the buffer holds, formats it in the
  service's format and appends it to the file in a worker thread, in one write per batch: after a line
  arrives it waits `flush_interval` (0.1 s) for more, so a busy server writes ten times a second.
- A write that fails (a full disk) drops and counts its lines and logs why, at most once a minute; the
  proxy goes on serving.
- `reopen()` (SIGUSR1, after logrotate moved the file) makes the writer open the path again before its next
  write; lines taken before the reopen go to the old file, those after to the new one.
"""

from __future__ import annotations

import collections
import json
import logging
import string
import sys
import time
from collections.abc import Callable
from typing import IO, Any

import trio

from actorproxy.config import AccessLogConf, template_fields
from actors import Actor, ExitReason

__all__ = ["AccessLog", "AccessLogActor", "AccessRecord", "line_format"]

logger = logging.getLogger("actorproxy.accesslog")

# Seconds between two error-log lines about a failing access log file.
ERROR_LOG_INTERVAL = 60.0
# nginx's combined format.
_COMBINED = '{client} - - [{time_local}] "{request}" {status} {bytes_sent} "{referer}" "{user_agent}"'


class AccessRecord:
    """What one request leaves for its log line (the values the request path already holds)."""

    __slots__ = (
        "bytes_received",
        "bytes_sent",
        "cache",
        "client",
        "duration",
        "end",
        "error",
        "host",
        "method",
        "path",
        "referer",
        "request_id",
        "retries",
        "route",
        "status",
        "tls_version",
        "upstream",
        "upstream_ttfb",
        "user_agent",
        "version",
    )

    def __init__(
        self,
        *,
        end: float,
        client: Any,
        method: str,
        path: str,
        version: str,
        host: str | None = None,
        status: int | None = None,
        bytes_sent: int = 0,
        bytes_received: int = 0,
        duration: float | None = None,
        upstream: Any = None,
        upstream_ttfb: float | None = None,
        retries: int = 0,
        request_id: str | None = None,
        tls_version: str | None = None,
        route: str | None = None,
        cache: str | None = None,
        referer: str | None = None,
        user_agent: str | None = None,
        error: str | None = None,
    ) -> None:
        self.end = end
        self.client = client
        self.method = method
        self.path = path
        self.version = version
        self.host = host
        self.status = status
        self.bytes_sent = bytes_sent
        self.bytes_received = bytes_received
        self.duration = duration
        self.upstream = upstream
        self.upstream_ttfb = upstream_ttfb
        self.retries = retries
        self.request_id = request_id
        self.tls_version = tls_version
        self.route = route
        self.cache = cache
        self.referer = referer
        self.user_agent = user_agent
        self.error = error


def _text(value: Any) -> str:
    return "-" if value is None or value == "" else str(value)


def _client(record: AccessRecord) -> str:
    client = record.client
    if isinstance(client, tuple):
        return str(client[0])
    return _text(client)


def _address(address: Any) -> str | None:
    """An `HttpPeer.address` as `host:port`, `[v6]:port` or `unix:/path`."""
    if address is None:
        return None
    if isinstance(address, str):
        return f"unix:{address}"
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class _Clock:
    """The two time fields, formatted once per second of `end` (a log line's time has second precision)."""

    __slots__ = ("_second", "iso", "local")

    def __init__(self) -> None:
        self._second = -1
        self.iso = ""
        self.local = ""

    def at(self, end: float) -> _Clock:
        second = int(end)
        if second != self._second:
            self._second = second
            local = time.localtime(second)
            self.iso = time.strftime("%Y-%m-%dT%H:%M:%S", local) + _offset(local)
            self.local = time.strftime("%d/%b/%Y:%H:%M:%S ", local) + _offset(local, colon=False)
        return self


def _offset(local: time.struct_time, *, colon: bool = True) -> str:
    seconds = local.tm_gmtoff or 0
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def _round(value: float | None, digits: int, scale: float = 1.0) -> float | None:
    return None if value is None else round(value * scale, digits)


# Each field's value from a record and the formatter's clock (None: unknown), as the JSON format writes it.
_FIELDS: dict[str, Callable[[AccessRecord, _Clock], Any]] = {
    "time": lambda r, c: c.at(r.end).iso,
    "time_local": lambda r, c: c.at(r.end).local,
    "client": lambda r, c: r.client[0] if isinstance(r.client, tuple) else r.client,
    "client_port": lambda r, c: r.client[1] if isinstance(r.client, tuple) and len(r.client) > 1 else None,
    "method": lambda r, c: r.method,
    "path": lambda r, c: r.path,
    "protocol": lambda r, c: f"HTTP/{r.version}" if r.version else None,
    "request": lambda r, c: f"{r.method} {r.path} HTTP/{r.version}",
    "host": lambda r, c: r.host,
    "status": lambda r, c: r.status or 0,
    "bytes_sent": lambda r, c: r.bytes_sent or 0,
    "bytes_received": lambda r, c: r.bytes_received or 0,
    "duration": lambda r, c: _round(r.duration, 6),
    "duration_ms": lambda r, c: _round(r.duration, 3, 1000.0),
    "upstream": lambda r, c: _address(r.upstream),
    "upstream_ttfb": lambda r, c: _round(r.upstream_ttfb, 6),
    "retries": lambda r, c: r.retries or 0,
    "request_id": lambda r, c: r.request_id,
    "tls_version": lambda r, c: r.tls_version,
    "route": lambda r, c: r.route,
    "cache": lambda r, c: r.cache,
    "referer": lambda r, c: r.referer,
    "user_agent": lambda r, c: r.user_agent,
    "error": lambda r, c: r.error,
}


def _fields(record: AccessRecord, clock: _Clock | None = None) -> dict[str, Any]:
    """Every field of a line, as the JSON format writes them (None for what is unknown)."""
    clock = _Clock() if clock is None else clock
    return {name: field(record, clock) for name, field in _FIELDS.items()}


def line_format(format: str) -> Callable[[AccessRecord], str]:
    """What turns a record into a line for `format`: combined, json, or a `{field}` template. A template
    computes only the fields it names; the time strings are made once per second.

    Raises:
        ValueError: a template naming an unknown field (the configuration checks this first).
    """
    clock = _Clock()
    if format == "json":
        return lambda record: json.dumps(_fields(record, clock), separators=(",", ":"))
    template = _COMBINED if format == "combined" else format
    template_fields(template)  # refuses what the configuration would
    parts: list[str | Callable[[AccessRecord, _Clock], Any]] = []
    for literal, name, _, _ in string.Formatter().parse(template):
        if literal:
            parts.append(literal)
        if name is not None:
            parts.append(_FIELDS[name])

    def render(record: AccessRecord) -> str:
        return "".join([part if isinstance(part, str) else _text(part(record, clock)) for part in parts])

    return render


class AccessLog:
    """A service's bounded buffer of records, filled on the request path, emptied by `AccessLogActor`.

    Args:
        conf: where and how the lines are written.
    """

    __slots__ = ("_records", "_reopen", "_wake", "capacity", "conf", "dropped", "written")

    def __init__(self, conf: AccessLogConf) -> None:
        self.conf = conf
        self.capacity = conf.buffer
        self._records: collections.deque[AccessRecord] = collections.deque()
        self._wake = trio.Event()
        self._reopen = False
        #: Records dropped because the buffer was full.
        self.dropped = 0
        #: Lines written.
        self.written = 0

    def __repr__(self) -> str:
        return f"<AccessLog {self.conf.path} waiting={len(self._records)} dropped={self.dropped}>"

    def push(self, record: AccessRecord) -> None:
        """Leave `record` for the writer; drop it (and count it) when the buffer is full."""
        records = self._records
        if len(records) >= self.capacity:
            self.dropped += 1
            return
        records.append(record)
        if not self._wake.is_set():
            self._wake.set()

    def reopen(self) -> None:
        """Open the path again before the next write (the file was rotated)."""
        self._reopen = True
        if not self._wake.is_set():
            self._wake.set()

    async def wait(self) -> None:
        """Wait until there is something to write or a reopen to make."""
        if not self._records and not self._reopen:
            await self._wake.wait()
        self._wake = trio.Event()

    def take(self) -> list[AccessRecord]:
        """Everything waiting, oldest first."""
        records = list(self._records)
        self._records.clear()
        return records

    def take_reopen(self) -> bool:
        reopen, self._reopen = self._reopen, False
        return reopen


class AccessLogActor(Actor):
    """Writes a service's access log (see the module rules)."""

    def __init__(self, log: AccessLog) -> None:
        self.log = log
        self.format = line_format(log.conf.format)
        self._file: IO[str] | None = None
        self._quiet_until = float("-inf")

    def _open(self) -> IO[str]:
        if self.log.conf.path == "-":
            return sys.stdout
        return open(self.log.conf.path, "a", encoding="utf-8", errors="backslashreplace")

    def _close(self) -> None:
        file, self._file = self._file, None
        if file is not None and file is not sys.stdout:
            file.close()

    def _write(self, text: str, reopen: bool) -> None:
        if reopen:
            self._close()
        if self._file is None:
            self._file = self._open()
        self._file.write(text)
        self._file.flush()

    async def on_start(self) -> None:
        self._file = await trio.to_thread.run_sync(self._open)

    async def run(self) -> None:
        log = self.log
        interval = log.conf.flush_interval
        with self.context.cancel_on_stop():
            while True:
                await log.wait()
                if interval:
                    await trio.sleep(interval)  # more lines gather: one write for them all
                # A batch taken is written whole, even when a stop comes meanwhile (a short file write).
                with trio.CancelScope(shield=True):
                    await self._flush()

    async def _flush(self) -> None:
        log = self.log
        records = log.take()
        reopen = log.take_reopen()
        text = "".join([self.format(record) + "\n" for record in records])
        if not (text or reopen):
            return
        try:
            await trio.to_thread.run_sync(self._write, text, reopen)
        except OSError as exc:
            # A full disk or a vanished directory must not take the proxy down: the lines are counted as
            # dropped, the error is logged (once a minute at most), and the next batch tries again.
            log.dropped += len(records)
            self._close()
            now = trio.current_time()
            if now >= self._quiet_until:
                self._quiet_until = now + ERROR_LOG_INTERVAL
                logger.error("access log %s: %d lines dropped: %s", log.conf.path, len(records), exc)
            return
        log.written += len(records)

    async def on_stop(self, reason: ExitReason) -> None:
        # What the drain's last requests left is written before the file closes.
        try:
            records = self.log.take()
            if records:
                self._write("".join(self.format(record) + "\n" for record in records), False)
                self.log.written += len(records)
        except OSError as exc:
            logger.error("access log %s: the last lines could not be written: %s", self.log.conf.path, exc)
        finally:
            self._close()
