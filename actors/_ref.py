"""`ActorRef`: the only handle other code holds on an actor."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import trio

from ._errors import ActorDead, AskTimeout
from ._exit import ExitReason
from ._reply import Ask
from ._statistics import ActorStatistics

if TYPE_CHECKING:
    from ._context import ActorContext

__all__ = ["DEFAULT_ASK_TIMEOUT", "ActorRef"]

# Same default as Akka's ask pattern: long enough for any healthy handler, short enough to surface a hang.
DEFAULT_ASK_TIMEOUT = 5.0


class ActorRef:
    """Send to, ask, watch and stop one actor incarnation.

    A ref is cheap and hashable; it stays valid after the actor exits (sends then become dead letters and asks
    fail with `ActorDead`). A restarted actor has a new ref; look it up by name or ask its supervisor.
    """

    __slots__ = ("_context",)

    def __init__(self, context: ActorContext) -> None:
        self._context = context

    def __repr__(self) -> str:
        return f"<ActorRef {self._context.path}>"

    @property
    def path(self) -> str:
        return self._context.path

    @property
    def name(self) -> str | None:
        return self._context.name

    @property
    def is_alive(self) -> bool:
        return self._context.exit_reason is None

    @property
    def exit_reason(self) -> ExitReason | None:
        """Why the actor exited, or None while it runs."""
        return self._context.exit_reason

    async def tell(self, message: Any) -> None:
        """Send `message`; under the BLOCK policy wait while the mailbox is full (backpressure).

        A message to an actor that has exited becomes a dead letter.

        Raises:
            MailboxFull: the FAIL policy refused it.
        """
        await trio.lowlevel.checkpoint_if_cancelled()
        await self._context.send(message)
        await trio.lowlevel.cancel_shielded_checkpoint()

    def tell_nowait(self, message: Any) -> None:
        """Send `message` without waiting.

        Raises:
            MailboxFull: the mailbox is full and its policy is BLOCK or FAIL.
        """
        self._context.send_nowait(message)

    async def ask(self, message: Any, timeout: float | None = DEFAULT_ASK_TIMEOUT) -> Any:
        """Send `message` and return what the actor's `receive` returned for it.

        The timeout covers waiting for mailbox room as well as for the reply; None waits forever.

        Raises:
            ActorDead: the actor has exited, or exited before answering.
            AskTimeout: no reply within `timeout` (a late reply becomes a dead letter).
            AskFailed: the handler raised; the handler's exception is the `__cause__`.
            MailboxFull: the overflow policy refused or dropped the ask.
        """
        context = self._context
        if context.exit_reason is not None:
            raise ActorDead(context.path)
        ask = Ask(message)
        if timeout is None:
            try:
                await context.send(ask)
                return await ask.wait()
            finally:
                ask.abandon()
        with trio.CancelScope(deadline=trio.current_time() + timeout) as scope:
            try:
                await context.send(ask)
                return await ask.wait()
            finally:
                ask.abandon()
        assert scope.cancelled_caught
        raise AskTimeout(context.path, message, timeout)

    def request_stop(self) -> None:
        """Ask the actor to stop; it handles the request before any queued data."""
        self._context.request_stop()

    async def stop(self) -> ExitReason:
        """Request a stop and wait for the actor to exit; return its exit reason."""
        self._context.request_stop()
        return await self._context.wait_exit()

    async def join(self) -> ExitReason:
        """Wait for the actor to exit, however it ends; return its exit reason."""
        return await self._context.wait_exit()

    def monitor(self, watcher: ActorRef) -> None:
        """Deliver `ActorExited(self, reason)` to `watcher` when this actor exits (at once if it has)."""
        self._context.monitor(watcher._context)

    def statistics(self) -> ActorStatistics:
        """Mailbox size and peak, blocked senders, messages processed, restarts, last exit reason."""
        return self._context.statistics()
