"""Map process signals to the whole-tree shutdown broadcast."""

from __future__ import annotations

import logging
import signal

import trio

from actors import ActorSystem

__all__ = ["shutdown_on_signals"]

logger = logging.getLogger("actorproxy.supervisors")


async def shutdown_on_signals(
    system: ActorSystem,
    signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Wait for one of `signals`, then drain the whole tree gracefully; return the signal number.

    Run it with `nursery.start` so the handlers are installed before you go on. Must run in the main thread.
    """
    with trio.open_signal_receiver(*signals) as received:
        task_status.started()
        async for signum in received:
            logger.info("received %s: shutting down", signal.Signals(signum).name)
            await system.shutdown()
            return signum
    raise AssertionError("signal receiver ended")  # pragma: no cover
