"""`RedisServer`: a real `redis-server` process on loopback, for tests of what keeps state in Redis.

Rules:
- It listens on 127.0.0.1 on a free port (taken by binding port 0, then handed to redis-server; if
  another process takes the port in between, the server fails to start and another port is tried), in a
  temporary directory of its own, with no persistence (`--save ''`, no append-only file).
- `start()` returns once the server answers PING, within `start_timeout`; it raises with the server's log
  otherwise. `stop()` terminates it and waits. As a context manager: `with RedisServer() as redis:`.
- Nothing here speaks more of Redis's protocol than the inline PING used to wait for readiness: tests talk to
  the server through the client under test (coredis).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

__all__ = ["RedisServer"]

# Ports tried before giving up (each fails only if another process took the free port just found).
_START_ATTEMPTS = 5
_POLL_INTERVAL = 0.02


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A `redis-server` child process for tests.

    Args:
        executable: the server binary (found on PATH by default).
        start_timeout: seconds to wait for it to answer.
        args: more `redis-server` options (`["--maxmemory", "1mb"]`).

    Attributes:
        host: always 127.0.0.1.
        port: the port, once started.
        directory: its working directory (temporary, removed on stop).
    """

    host = "127.0.0.1"

    def __init__(
        self, *, executable: str = "redis-server", start_timeout: float = 10.0, args: tuple[str, ...] = ()
    ) -> None:
        self.executable = executable
        self.start_timeout = start_timeout
        self.args = args
        self.port = 0
        self.directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url if self._process else 'stopped'}>"

    @property
    def url(self) -> str:
        """`redis://127.0.0.1:PORT/0`, for `RedisConf(url=...)`."""
        return f"redis://{self.host}:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers; after `stop`, on the port it had.

        Raises:
            FileNotFoundError: no redis-server binary.
            RuntimeError: it did not start (the message holds its log).
        """
        if shutil.which(self.executable) is None:
            raise FileNotFoundError(f"{self.executable} not found (apt-get install redis-server)")
        self.directory = Path(tempfile.mkdtemp(prefix="redis-test-"))
        log = ""
        # A server started again (after `stop`) comes back on its port, as a restarted Redis would.
        again = self.port
        for attempt in range(_START_ATTEMPTS):
            self.port = again if again and attempt == 0 else _free_port()
            log_file = self.directory / f"redis-{self.port}.log"
            options = {
                "--bind": self.host,
                "--port": str(self.port),
                "--save": "",
                "--appendonly": "no",
                "--dir": str(self.directory),
                "--logfile": str(log_file),
            }
            self._process = subprocess.Popen(
                [self.executable, *(part for pair in options.items() for part in pair), *self.args],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready():
                return self
            self._terminate()
            log = log_file.read_text() if log_file.exists() else ""
        self.stop()
        raise RuntimeError(f"redis-server did not start on 127.0.0.1:\n{log}")

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (for SIGSTOP / SIGCONT in tests), else None."""
        return None if self._process is None else self._process.pid

    def _wait_ready(self) -> bool:
        assert self._process is not None
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                return False
            if self._pings():
                return True
            time.sleep(_POLL_INTERVAL)
        return False

    def _pings(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        self._terminate()
        if self.directory is not None:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
