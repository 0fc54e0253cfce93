"""Frozen records describing actors, for `statistics()` and the tree dump."""

from __future__ import annotations

import attrs

from ._exit import ExitReason

__all__ = ["ActorStatistics", "TreeNode"]


@attrs.frozen(kw_only=True)
class ActorStatistics:
    """A snapshot of one actor's mailbox and history."""

    path: str
    actor_type: str
    state: str
    mailbox_size: int
    mailbox_peak: int
    mailbox_capacity: int
    blocked_senders: int
    processed: int
    restarts: int
    last_exit_reason: ExitReason | None
    #: When this incarnation finished starting, on trio's clock (`trio.current_time()`); None until then.
    started_at: float | None = None


@attrs.frozen(kw_only=True)
class TreeNode:
    """One actor of the live tree and its children."""

    statistics: ActorStatistics
    children: tuple[TreeNode, ...] = ()

    def render(self, indent: int = 0) -> list[str]:
        s = self.statistics
        line = (
            f"{'  ' * indent}{s.path} [{s.actor_type}] {s.state} "
            f"mailbox={s.mailbox_size}/{s.mailbox_capacity} peak={s.mailbox_peak} "
            f"processed={s.processed} restarts={s.restarts}"
        )
        if s.last_exit_reason is not None:
            line += f" last_exit={s.last_exit_reason}"
        lines = [line]
        for child in self.children:
            lines.extend(child.render(indent + 1))
        return lines
