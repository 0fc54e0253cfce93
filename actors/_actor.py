"""The `Actor` base class: override `receive`, and the lifecycle hooks you need."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ._errors import UnhandledMessage

if TYPE_CHECKING:
    from ._context import ActorContext
    from ._exit import ExitReason
    from ._ref import ActorRef
    from ._system import ActorSystem
    from ._timers import Timers

__all__ = ["Actor"]


class Actor:
    """An actor: state plus a `receive` that handles one message at a time.

    Lifecycle: `on_start` runs first (the actor counts as started once it returns); then `run`, which by
    default hands each mailbox message to `receive` until a stop is requested; then `on_stop(reason)`,
    shielded and bounded by a deadline, however the actor ended. An exception escaping any of them is a
    crash, for the supervisor to handle. `receive`'s return value answers an ask.

    Actors with a loop of their own (an accept loop, a connection) override `run` and wrap blocking work in
    `with self.context.cancel_on_stop():` so a stop request interrupts it.
    """

    context: ActorContext

    #: Seconds `on_start` may take (None: no limit). Supervisors wait for their whole subtree instead.
    start_timeout: float | None = 5.0
    #: Grace between a stop request and a kill when the owner does not say otherwise (OTP's worker default).
    shutdown_timeout: float = 5.0
    #: Counted as a supervisor by `count_children`.
    is_supervisor: bool = False

    @property
    def ref(self) -> ActorRef:
        """This incarnation's ref."""
        return self.context.ref

    @property
    def system(self) -> ActorSystem:
        return self.context.system

    @property
    def timers(self) -> Timers:
        """Keyed timers delivering messages to `receive`; cancelled when this incarnation ends."""
        return self.context.timers

    async def on_start(self) -> None:
        """Prepare the actor; raising here fails the start (the spawner or supervisor sees it)."""

    async def receive(self, message: Any) -> Any:
        """Handle one message; the return value is the reply when the message was asked."""
        raise UnhandledMessage(self.context.path, message)

    async def run(self) -> None:
        """The actor's body; by default, serve the mailbox until a stop is requested."""
        await self.context.serve_mailbox()

    def on_stop_request(self) -> None:
        """Called at once (synchronously) when a stop is requested, before the request is handled.

        Actors with a loop of their own can cancel what they wait on here instead of entering a
        `cancel_on_stop()` scope for every wait.
        """

    async def on_stop(self, reason: ExitReason) -> None:
        """Release what the actor holds; runs shielded, with a deadline, after any exit."""

    async def _main(self, started: Callable[[], None]) -> None:
        # Supervisors override this to own a nursery for the whole incarnation and signal started only
        # once their children are up; plain actors start, signal, then run.
        await self.on_start()
        started()
        await self.run()
