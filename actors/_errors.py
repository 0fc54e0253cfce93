"""The exception hierarchy of the actor kernel.

Every exception the project raises derives from `ActorProxyError`. Kernel errors say which actor (by path)
was involved, so a failure seen far from its source still names it.
"""

from __future__ import annotations

from typing import Any

import trio

__all__ = [
    "ActorDead",
    "ActorProxyError",
    "AskFailed",
    "AskTimeout",
    "MailboxFull",
    "NameTaken",
    "StartFailed",
    "StartTimeout",
    "UnhandledMessage",
]


class ActorProxyError(Exception):
    """Root of every exception raised by actorproxy."""


class ActorDead(ActorProxyError):
    """The target actor has exited (or exited while the message waited in its mailbox)."""

    def __init__(self, path: str) -> None:
        super().__init__(f"actor {path} is not running")
        self.path = path


class AskTimeout(ActorProxyError, TimeoutError):
    """No reply arrived within the ask timeout; a late reply becomes a dead letter."""

    def __init__(self, path: str, message: Any, timeout: float) -> None:
        super().__init__(f"no reply from {path} to {type(message).__name__} within {timeout:g} s")
        self.path = path
        self.message = message
        self.timeout = timeout


class AskFailed(ActorProxyError):
    """The handler of an ask raised; the original exception is the `__cause__`."""

    def __init__(self, path: str, message: Any, error: BaseException) -> None:
        super().__init__(f"{path} failed while handling {type(message).__name__}: {error!r}")
        self.path = path
        self.message = message


class MailboxFull(ActorProxyError, trio.WouldBlock):
    """The mailbox is at capacity and its overflow policy refuses (or dropped) the message."""

    def __init__(self, path: str, capacity: int) -> None:
        super().__init__(f"mailbox of {path} is full ({capacity} messages)")
        self.path = path
        self.capacity = capacity


class NameTaken(ActorProxyError):
    """A live actor is already registered under this name."""

    def __init__(self, name: str) -> None:
        super().__init__(f"an actor named {name!r} is already running")
        self.name = name


class StartFailed(ActorProxyError):
    """An actor could not start; the error of its `on_start` is the `__cause__`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path} failed to start: {reason}")
        self.path = path


class StartTimeout(ActorProxyError, TimeoutError):
    """An actor did not finish starting within its start timeout."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__(f"{path} did not start within {timeout:g} s")
        self.path = path
        self.timeout = timeout


class UnhandledMessage(ActorProxyError):
    """An actor received a message its `receive` does not handle."""

    def __init__(self, path: str, message: Any) -> None:
        super().__init__(f"{path} does not handle {type(message).__name__}: {message!r}")
        self.path = path
        self.message = message
