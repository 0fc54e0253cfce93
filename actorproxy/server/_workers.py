"""Worker processes: `threads: N` runs N copies of the server's tree over the same listening sockets.

Python has one interpreter lock per process, so Pingora's worker threads become processes here.

Rules:
- The master binds every listening socket, then forks the workers. It never runs an event loop while it
  forks (a fork from inside trio would copy a running loop), and it serves no request itself.
- Each worker runs `Server.serve` over the inherited sockets: they are in its `ListenFds`, so its listeners
  take them instead of binding, and the kernel spreads new connections over the processes accepting.
- A worker that dies while the server runs is forked again after a back-off that doubles from 0.1 s to
  10 s and starts over once a worker has lived 30 s (the supervisors' `Backoff`). Its connections are lost;
  the other workers' are not.
- Signals to the master: SIGTERM and SIGINT are passed to every worker (each drains, or stops at once), and
  the master exits 0 when they all have. SIGHUP is passed on: each worker reloads. SIGUSR1 reopens the
  master's error log and is passed on: each worker reopens its logs. SIGQUIT: the master
  hands the listening sockets to the new server process, then sends SIGQUIT to the workers, which drain
  without removing Unix socket files (their successor serves them now). A failed handover changes nothing.
- `work_stealing` (Pingora: a service's threads take each other's tasks) has no effect: a connection stays
  in the process that accepted it, and the shared accept queue is the only sharing between workers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import sys
import time
from collections.abc import Callable

import trio

from actorproxy.proxy import ListenFds
from supervisors import Backoff, BackoffState

from ._daemon import reopen_error_log
from ._upgrade import UpgradeError, send_listen_fds

__all__ = ["WORKER_BACKOFF", "WorkerPool"]

logger = logging.getLogger("actorproxy.server")

#: How long the master waits before forking a replacement for a worker that died.
WORKER_BACKOFF = Backoff(min_delay=0.1, max_delay=10.0, jitter=0.0, reset_after=30.0)

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1, signal.SIGCHLD)


class WorkerPool:
    """The master of `count` worker processes, each running `work(index)` and exiting with its result.

    Args:
        count: how many workers.
        work: what a worker runs (in the forked child); returns the exit status.
        listen_fds: the listening sockets, bound before `run`; handed over on SIGQUIT.
        upgrade_sock: where the successor waits for the sockets.
        upgrade_retries: connection attempts beyond the first for the handover.
    """

    def __init__(
        self,
        count: int,
        work: Callable[[int], int],
        listen_fds: ListenFds,
        *,
        upgrade_sock: str,
        upgrade_retries: int = 5,
        error_log: str | None = None,
    ) -> None:
        self.count = count
        #: The daemon's error log, reopened on SIGUSR1 (None: output is not a file of ours).
        self.error_log = error_log
        self.work = work
        self.listen_fds = listen_fds
        self.upgrade_sock = upgrade_sock
        self.upgrade_retries = upgrade_retries
        self.workers: dict[int, tuple[int, float]] = {}  # pid -> (index, started at)
        self.restarts = 0
        self._backoff = [BackoffState(WORKER_BACKOFF) for _ in range(count)]
        self._due: dict[int, float] = {}  # index -> when to fork it again
        self._stopping = False
        self._pending: list[int] = []

    def run(self) -> int:
        """Fork the workers and look after them until they have all stopped; return the exit status."""
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        previous = {signum: signal.signal(signum, self._on_signal) for signum in _SIGNALS}
        old_wakeup = signal.set_wakeup_fd(wake_w)
        try:
            for index in range(self.count):
                self._fork(index)
            while self.workers or (self._due and not self._stopping):
                self._handle_signals()
                self._reap()
                self._fork_due()
                timeout = max(0.0, min(self._due.values(), default=time.monotonic() + 1) - time.monotonic())
                with contextlib.suppress(InterruptedError):
                    select.select([wake_r], [], [], timeout)
                with contextlib.suppress(BlockingIOError):
                    while os.read(wake_r, 512):
                        pass
        finally:
            signal.set_wakeup_fd(old_wakeup)
            for signum, handler in previous.items():
                signal.signal(signum, handler)
            os.close(wake_r)
            os.close(wake_w)
        logger.info("all workers stopped")
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._pending.append(signum)

    def _handle_signals(self) -> None:
        while self._pending:
            signum = self._pending.pop(0)
            if signum == signal.SIGCHLD:
                continue
            name = signal.Signals(signum).name
            if signum == signal.SIGHUP:
                logger.info("received SIGHUP: workers reload")
                self._signal_workers(signum)
                continue
            if signum == signal.SIGUSR1:
                # The master writes to error_log too: it reopens it before the workers do theirs.
                reopen_error_log(self.error_log)
                self._signal_workers(signum)
                continue
            if signum == signal.SIGQUIT and not self._hand_over():
                continue
            logger.info("received %s: stopping %d workers", name, len(self.workers))
            self._stopping = True
            self._due.clear()
            self._signal_workers(signum)

    def _hand_over(self) -> bool:
        fds = self.listen_fds
        try:
            trio.run(lambda: send_listen_fds(self.upgrade_sock, fds.fds(), retries=self.upgrade_retries))
        except UpgradeError as exc:
            logger.error("upgrade: %s; still serving", exc)
            return False
        fds.handed_over = True
        fds.closing = True
        fds.close_idle()
        logger.info("upgrade: listening sockets handed over; workers drain")
        return True

    def _signal_workers(self, signum: int) -> None:
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            found = self.workers.pop(pid, None)
            if found is None:
                continue
            index, started = found
            code = os.waitstatus_to_exitcode(status)
            if self._stopping:
                logger.info("worker %d (pid %d) stopped with status %d", index, pid, code)
                continue
            delay = self._backoff[index].next_delay(time.monotonic() - started)
            logger.error(
                "worker %d (pid %d) died with status %d; restarting in %.1f s", index, pid, code, delay
            )
            self._due[index] = time.monotonic() + delay

    def _fork_due(self) -> None:
        now = time.monotonic()
        for index, when in list(self._due.items()):
            if when <= now and not self._stopping:
                del self._due[index]
                self.restarts += 1
                self._fork(index)

    def _fork(self, index: int) -> None:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the worker
            code = 1
            try:
                signal.set_wakeup_fd(-1)
                for signum in _SIGNALS:
                    signal.signal(signum, signal.SIG_DFL)
                code = self.work(index)
            except BaseException:
                logger.exception("worker %d failed", index)
            finally:
                for stream in (sys.stdout, sys.stderr):
                    with contextlib.suppress(Exception):
                        stream.flush()
                os._exit(code)
        self.workers[pid] = (index, time.monotonic())
        logger.info("worker %d started (pid %d)", index, pid)
