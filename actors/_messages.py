"""Messages the kernel itself delivers to actors."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ._exit import ExitReason

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["ActorExited"]


@attrs.frozen
class ActorExited:
    """A monitored actor has exited; delivered on the watcher's control lane."""

    ref: ActorRef
    reason: ExitReason
