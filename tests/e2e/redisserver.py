"""A real `redis-server` for tests: on a free loopback port, in a temporary directory, nothing persisted.

`stop()` and `start()` again (same port, same directory) play a Redis that goes away and comes back.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

import trio

# Starting redis-server takes milliseconds; a loaded CI machine may take much longer.
READY_TIMEOUT = 20.0


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One `redis-server` process.

    Args:
        directory: its working directory (nothing is written there: no RDB, no AOF).
    """

    def __init__(self, directory: Path) -> None:
        binary = shutil.which("redis-server")
        assert binary is not None, "redis-server is not installed (.ci/run installs it)"
        self.binary = binary
        self.directory = directory
        self.port = free_port()
        self.process: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        """Start it and wait until it answers PING."""
        self.process = await trio.lowlevel.open_process(
            [
                self.binary,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        with trio.fail_after(READY_TIMEOUT):
            while not await self._pong():
                assert self.process.returncode is None, "redis-server exited at start"
                await trio.sleep(0.02)

    async def _pong(self) -> bool:
        try:
            stream = await trio.open_tcp_stream("127.0.0.1", self.port)
        except OSError:
            return False
        async with stream:
            await stream.send_all(b"PING\r\n")
            return (await stream.receive_some(64)).startswith(b"+PONG")

    async def stop(self) -> None:
        """Stop it (SIGTERM) and wait until it has exited."""
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            with trio.fail_after(READY_TIMEOUT):
                await self.process.wait()
