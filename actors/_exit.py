"""Why an actor stopped.

Four kinds, as OTP distinguishes them: `normal` (its work returned), `shutdown` (it stopped because it was
asked to), `killed` (it was cancelled, at its grace deadline or brutally) and `crashed` (an exception escaped,
kept in the reason). Restart rules read only the kind.
"""

from __future__ import annotations

import enum
from typing import ClassVar

import attrs

__all__ = ["ExitKind", "ExitReason"]


class ExitKind(enum.Enum):
    """The four ways an actor can end."""

    NORMAL = "normal"
    SHUTDOWN = "shutdown"
    KILLED = "killed"
    CRASHED = "crashed"


@attrs.frozen
class ExitReason:
    """An actor's exit reason; `error` is set only for `crashed`."""

    NORMAL: ClassVar[ExitReason]
    SHUTDOWN: ClassVar[ExitReason]
    KILLED: ClassVar[ExitReason]

    kind: ExitKind
    error: BaseException | None = attrs.field(default=None, eq=False)

    @classmethod
    def crashed(cls, error: BaseException) -> ExitReason:
        """The reason for an actor that raised `error`."""
        return cls(ExitKind.CRASHED, error)

    @property
    def is_normal(self) -> bool:
        """True for `normal` and `shutdown`: the exits a transient child is not restarted after."""
        return self.kind is ExitKind.NORMAL or self.kind is ExitKind.SHUTDOWN

    def __str__(self) -> str:
        if self.error is None:
            return self.kind.value
        return f"{self.kind.value}: {self.error!r}"


ExitReason.NORMAL = ExitReason(ExitKind.NORMAL)
ExitReason.SHUTDOWN = ExitReason(ExitKind.SHUTDOWN)
ExitReason.KILLED = ExitReason(ExitKind.KILLED)
