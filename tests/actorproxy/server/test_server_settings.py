"""Server settings that apply to the whole process."""

from __future__ import annotations

import signal
from typing import Any

import trio

from actorproxy.config import ServerConf
from actorproxy.server import Server


async def test_max_blocking_threads_bounds_trio_worker_threads(autojump_clock: Any) -> None:
    server = Server(ServerConf(max_blocking_threads=3))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        assert trio.to_thread.current_default_thread_limiter().total_tokens == 3
        signal.raise_signal(signal.SIGTERM)
