"""The envelope of an ask: the message and a one-shot reply slot.

Rules:
- A slot is answered at most once. Answering a slot whose caller already gave up (timeout or cancellation)
  returns False and never raises: the replier records a dead letter and carries on.
- The caller parks on the slot with `wait_task_rescheduled`; the replier wakes it with `reschedule`, so a
  round trip costs two task switches and nothing else.
"""

from __future__ import annotations

from typing import Any

from outcome import Error, Outcome, Value
from trio.lowlevel import Abort, Task, current_task, reschedule, wait_task_rescheduled

__all__ = ["Ask"]


class Ask:
    """An ask waiting in a mailbox, then in a handler, until it is answered or abandoned."""

    __slots__ = ("_abandoned", "_outcome", "_task", "message")

    def __init__(self, message: Any) -> None:
        self.message = message
        self._task: Task | None = None
        self._outcome: Outcome[Any] | None = None
        self._abandoned = False

    @property
    def answered(self) -> bool:
        return self._outcome is not None

    @property
    def abandoned(self) -> bool:
        return self._abandoned

    def _settle(self, outcome: Outcome[Any]) -> bool:
        if self._abandoned or self._outcome is not None:
            return False
        self._outcome = outcome
        task = self._task
        if task is not None:
            self._task = None
            reschedule(task)
        return True

    def reply(self, value: Any) -> bool:
        """Answer with `value`; False if the caller is gone (the reply is a dead letter)."""
        return self._settle(Value(value))

    def fail(self, error: BaseException) -> bool:
        """Answer by raising `error` in the caller; False if the caller is gone."""
        return self._settle(Error(error))

    def abandon(self) -> None:
        """The caller stops waiting; a later answer is refused."""
        if self._outcome is None:
            self._abandoned = True

    def _abort(self, _: Any) -> Abort:
        self._task = None
        return Abort.SUCCEEDED

    async def wait(self) -> Any:
        """Park until answered; return the value or raise the error."""
        if self._outcome is None:
            self._task = current_task()
            await wait_task_rescheduled(self._abort)
        assert self._outcome is not None
        return self._outcome.unwrap()
