"""`TestProbe`: an actor ref whose messages a test reads and asserts on."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import trio

from .._actor import Actor
from .._exit import ExitReason
from .._mailbox import TIMEOUT, MailboxConfig
from .._messages import ActorExited
from .._ref import ActorRef
from .._reply import Ask
from .._system import ActorSystem

__all__ = ["DEFAULT_EXPECT_TIMEOUT", "TestProbe"]

# Generous for a test on virtual time; on a real clock it bounds how long a failing test hangs.
DEFAULT_EXPECT_TIMEOUT = 3.0

_serial = itertools.count(1)

Match = type | Callable[[Any], bool] | Any


class _ProbeActor(Actor):
    """The probe's stand-in: it has a mailbox but no task; the test reads the mailbox."""


def _matches(match: Match, message: Any) -> bool:
    if match is None:
        return True
    if isinstance(match, type):
        return isinstance(message, match)
    if callable(match):
        return bool(match(message))
    return bool(message == match)


class TestProbe:
    """A ref that records what it is sent, with expectations bounded in (virtual) time.

    Messages asked of the probe are returned like told ones; answer the last one with `reply`.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, system: ActorSystem, name: str | None = None) -> None:
        self._context = system.new_context(
            _ProbeActor(),
            name=name,
            path=f"/probe-{next(_serial)}",
            mailbox=MailboxConfig(capacity=1 << 20),
        )
        self._context.started = True
        self._context.state = "running"
        self.ref: ActorRef = self._context.ref
        self.last_ask: Ask | None = None

    def __repr__(self) -> str:
        return f"<TestProbe {self._context.path}>"

    @property
    def pending(self) -> int:
        """Messages received and not yet read."""
        return len(self._context.mailbox)

    async def receive(self, timeout: float = DEFAULT_EXPECT_TIMEOUT) -> Any:
        """The next message, or AssertionError after `timeout` seconds."""
        message = await self._context.mailbox.get(trio.current_time() + timeout)
        if message is TIMEOUT:
            raise AssertionError(f"{self!r}: no message within {timeout:g} s")
        if type(message) is Ask:
            self.last_ask = message
            return message.message
        return message

    async def expect(
        self, match: Match = None, timeout: float = DEFAULT_EXPECT_TIMEOUT, *, ignore_others: bool = False
    ) -> Any:
        """Return the next message if it matches, else fail.

        Args:
            match: a type (isinstance), a predicate, or a value (==); None accepts anything.
            timeout: seconds to wait.
            ignore_others: skip non-matching messages instead of failing on the first one.
        """
        deadline = trio.current_time() + timeout
        while True:
            remaining = max(deadline - trio.current_time(), 0.0)
            message = await self.receive(remaining)
            if _matches(match, message):
                return message
            if not ignore_others:
                raise AssertionError(f"{self!r}: expected {match!r}, got {message!r}")

    async def expect_no_message(self, duration: float) -> None:
        """Fail if any message arrives within `duration` seconds."""
        message = await self._context.mailbox.get(trio.current_time() + duration)
        if message is not TIMEOUT:
            raise AssertionError(f"{self!r}: expected no message for {duration:g} s, got {message!r}")

    async def expect_terminated(self, ref: ActorRef, timeout: float = DEFAULT_EXPECT_TIMEOUT) -> ExitReason:
        """Watch `ref` and return its exit reason once it exits (fails after `timeout`)."""
        ref.monitor(self.ref)
        exited: ActorExited = await self.expect(
            lambda m: isinstance(m, ActorExited) and m.ref is ref, timeout, ignore_others=True
        )
        return exited.reason

    def reply(self, value: Any) -> None:
        """Answer the last ask the probe received."""
        if self.last_ask is None:
            raise AssertionError(f"{self!r} has received no ask")
        self.last_ask.reply(value)
