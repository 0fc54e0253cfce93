"""`SiteProcessActor`: the process of a `run:` site, started on a free port and supervised.

Rules:
- Each incarnation takes a free port on 127.0.0.1, starts the command through `/bin/sh -c` (so a site may
  write `cd app && exec ./server`) in its own process group, with `{port}` replaced in the command and
  `PORT` in its environment, its stdout and stderr appended to the site's log.
- It is `starting` until a connection to the port succeeds (checked every `PORT_POLL_INTERVAL`), then
  `running`: the proxy sends the site's requests there. A process that exits, before or after that, or that
  does not answer within `start_timeout`, crashes the actor; its supervisor starts it again after a back-off
  that doubles up to `restart_max_interval` (the site is `backoff` meanwhile, and requests wait for it).
- Stopping sends SIGTERM to the process group, then SIGKILL after `stop_timeout` if anything of the group
  still runs (the shell may have exited while what it started has not); nothing of the site's is left.
- What the proxy and `actorproxy sites` read is `RunningSite.status`, a frozen record replaced whole.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import IO, Literal

import attrs
import trio

from actors import Actor, ExitReason

from ._definitions import SiteDefinition

__all__ = [
    "ProcessSettings",
    "ProcessStatus",
    "RunningSite",
    "SiteProcessActor",
    "SiteProcessFailed",
    "free_port",
]

logger = logging.getLogger("actorproxy.sites")

# How often a starting process's port is tried: fast enough that a request waits little more than the app.
PORT_POLL_INTERVAL = 0.1
# One connection attempt to the port.
PORT_CONNECT_TIMEOUT = 1.0

ProcessState = Literal["starting", "running", "backoff", "stopped"]


class SiteProcessFailed(Exception):
    """A site's process exited, or never answered on its port."""


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on `host` right now (the kernel's pick for port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@attrs.frozen(kw_only=True)
class ProcessSettings:
    """How a site's process is run (the `sites_server:` section's process keys)."""

    log_dir: Path
    start_timeout: float
    stop_timeout: float


@attrs.frozen(kw_only=True)
class ProcessStatus:
    """What a `run` site's process is doing.

    Attributes:
        state: starting, running, backoff (exited; waiting to start again) or stopped.
        pid: the process id while it runs.
        port: the port it was given.
        restarts: how many times it was started again.
        last_exit: why the last incarnation ended.
        since: when the state began (wall clock, seconds since the epoch).
    """

    state: ProcessState
    pid: int | None = None
    port: int | None = None
    restarts: int = 0
    last_exit: str | None = None
    since: float = attrs.field(factory=time.time)


class RunningSite:
    """A `run` site: its definition, its log, and the status of its process (replaced whole)."""

    def __init__(self, definition: SiteDefinition, settings: ProcessSettings) -> None:
        self.definition = definition
        self.settings = settings
        self.log_path = settings.log_dir / f"{definition.name.replace('*', '_wildcard')}.log"
        self.status = ProcessStatus(state="backoff")
        self._ready = trio.Event()

    def __repr__(self) -> str:
        return f"<RunningSite {self.definition.name} {self.status.state}>"

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the process answers, while it is running."""
        status = self.status
        return ("127.0.0.1", status.port) if status.state == "running" and status.port else None

    def publish(self, status: ProcessStatus) -> None:
        """Replace the status; a request waiting for the site wakes once it is running."""
        self.status = status
        if status.state == "running":
            self._ready.set()
        elif self._ready.is_set():
            self._ready = trio.Event()

    async def wait_running(self, timeout: float) -> tuple[str, int] | None:
        """The address once the process runs, waiting at most `timeout` seconds; None if it does not."""
        with trio.move_on_after(timeout):
            while self.address is None:
                await self._ready.wait()
        return self.address


async def _answers(port: int) -> bool:
    with trio.move_on_after(PORT_CONNECT_TIMEOUT):
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", port)
        except OSError:
            return False
        await stream.aclose()
        return True
    return False


class SiteProcessActor(Actor):
    """Runs one incarnation of a `run` site's process (see the module rules)."""

    def __init__(self, site: RunningSite) -> None:
        self.site = site
        self.process: trio.Process | None = None
        self._log: IO[bytes] | None = None
        self._port: int | None = None

    def __repr__(self) -> str:
        return f"<SiteProcessActor {self.site.definition.name} pid={self.process and self.process.pid}>"

    def _status(self, state: ProcessState, *, last_exit: str | None = None) -> ProcessStatus:
        process = self.process
        running = process is not None and process.returncode is None
        return ProcessStatus(
            state=state,
            pid=process.pid if running and process is not None else None,
            port=self._port,
            restarts=self.context.restarts,
            last_exit=last_exit if last_exit is not None else self.site.status.last_exit,
        )

    async def on_start(self) -> None:
        site = self.site
        definition = site.definition
        self._port = port = free_port()
        command = definition.target.format(port=port)
        env = {**os.environ, **dict(definition.env), "PORT": str(port)}
        log = await trio.to_thread.run_sync(self._open_log, command)
        self._log = log
        self.process = await trio.lowlevel.open_process(
            ["/bin/sh", "-c", command],
            cwd=definition.cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        site.publish(self._status("starting"))
        logger.info("%s: started %r (pid %d, port %d)", definition.name, command, self.process.pid, port)

    def _open_log(self, command: str) -> IO[bytes]:
        path = self.site.log_path
        path.parent.mkdir(parents=True, exist_ok=True)
        log = open(path, "ab")  # noqa: SIM115 (kept open for the process's life, closed in on_stop)
        stamp = time.strftime("%Y-%m-%d %H:%M:%S")
        log.write(f"--- {stamp} actorproxy: starting {command!r} on port {self._port}\n".encode())
        log.flush()
        return log

    async def run(self) -> None:
        process = self.process
        port = self._port
        assert process is not None and port is not None
        site = self.site
        name = site.definition.name
        with self.context.cancel_on_stop():
            with trio.move_on_after(site.settings.start_timeout) as waiting:
                while not await _answers(port):
                    if process.poll() is not None:
                        raise SiteProcessFailed(
                            f"{name}: exited with status {process.returncode} before answering on port"
                            f" {port}; see {site.log_path}"
                        )
                    await trio.sleep(PORT_POLL_INTERVAL)
            if waiting.cancelled_caught:
                raise SiteProcessFailed(
                    f"{name}: no answer on port {port} within {site.settings.start_timeout:g} s;"
                    f" see {site.log_path}"
                )
            site.publish(self._status("running"))
            logger.info("%s: running on port %d", name, port)
            code = await process.wait()
            raise SiteProcessFailed(f"{name}: exited with status {code}; see {site.log_path}")
        # Asked to stop: the grace is the process's (the supervisor gives this actor stop_timeout and more).
        await self._terminate(process)

    async def _terminate(self, process: trio.Process) -> None:
        """SIGTERM to the process group, then SIGKILL after `stop_timeout`."""
        _signal_group(process, signal.SIGTERM)
        timeout = self.site.settings.stop_timeout
        with trio.move_on_after(timeout):
            await process.wait()
            # The shell may be gone while what it started still runs (a shell that does not exec). Nothing
            # signals the end of a process that is not our child: poll the group.
            while True:
                if not _group_alive(process.pid):
                    return
                await trio.sleep(PORT_POLL_INTERVAL)
        logger.warning("%s: still running %g s after SIGTERM; killing it", self.site.definition.name, timeout)
        _signal_group(process, signal.SIGKILL)
        await process.wait()

    async def on_stop(self, reason: ExitReason) -> None:
        process = self.process
        if process is not None:
            # A crash or a kill: nothing of the site's may be left, and cleanup has only seconds.
            _signal_group(process, signal.SIGKILL)
            if process.returncode is None:
                await process.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        state: ProcessState = "stopped" if reason.is_normal or self.context.stop_requested else "backoff"
        why = None if reason.error is None else str(reason.error)
        self.site.publish(self._status(state, last_exit=why))


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(process: trio.Process, signum: int) -> None:
    # The process leads its own group (start_new_session): the shell and everything it started get it.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)
