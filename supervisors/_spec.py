"""Child specifications: what a supervisor starts, and how it treats the child's exits.

The vocabulary is OTP's (`supervisor` documentation): restart types permanent / transient / temporary,
shutdown brutal / grace seconds / infinity, significant children for auto-shutdown.
"""

from __future__ import annotations

import enum
import math
import random
from collections.abc import Callable
from typing import Any

import attrs

from actors import Actor, ExitReason, MailboxConfig

__all__ = ["BRUTAL", "INFINITY", "AutoShutdown", "Backoff", "ChildSpec", "Restart", "Strategy"]

#: Shutdown value: cancel the child at once, without a stop request (OTP's brutal_kill).
BRUTAL = 0.0
#: Shutdown value: wait for the child however long it takes (OTP's infinity; the default for supervisors).
INFINITY = math.inf


class Restart(enum.Enum):
    """When a child that exited on its own is restarted."""

    PERMANENT = "permanent"  # always
    TRANSIENT = "transient"  # only after an abnormal exit (not normal, not shutdown)
    TEMPORARY = "temporary"  # never; the child is forgotten when it exits

    def should_restart(self, reason: ExitReason) -> bool:
        if self is Restart.PERMANENT:
            return True
        if self is Restart.TRANSIENT:
            return not reason.is_normal
        return False


class Strategy(enum.Enum):
    """Which children a crash takes down with it."""

    ONE_FOR_ONE = "one_for_one"  # only the child that exited
    ONE_FOR_ALL = "one_for_all"  # every child: all stopped in reverse order, all restarted in order
    REST_FOR_ONE = "rest_for_one"  # the child and those started after it


class AutoShutdown(enum.Enum):
    """Whether a supervisor ends when its significant children end (OTP 24's auto_shutdown)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


@attrs.frozen(kw_only=True)
class Backoff:
    """Delay between a child's exit and its restart, doubling from `min_delay` up to `max_delay`.

    Args:
        min_delay: first delay, seconds.
        max_delay: ceiling, seconds.
        jitter: each delay is scaled by a random factor in [1 - jitter, 1 + jitter].
        reset_after: a child that ran this long without exiting starts again from `min_delay`.
    """

    min_delay: float = attrs.field(default=0.1, validator=attrs.validators.gt(0))
    max_delay: float = 30.0
    jitter: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    reset_after: float = 60.0

    def __attrs_post_init__(self) -> None:
        if self.max_delay < self.min_delay:
            raise ValueError("Backoff.max_delay must be >= min_delay")


class BackoffState:
    """The running delay of one child under a `Backoff` policy."""

    __slots__ = ("_next", "policy", "rng")

    def __init__(self, policy: Backoff, rng: random.Random | None = None) -> None:
        self.policy = policy
        self.rng = rng or random.Random()
        self._next = policy.min_delay

    def next_delay(self, ran_for: float) -> float:
        """The delay before the next restart of a child that ran `ran_for` seconds before exiting."""
        policy = self.policy
        if ran_for >= policy.reset_after:
            self._next = policy.min_delay
        delay = self._next
        self._next = min(delay * 2, policy.max_delay)
        if policy.jitter:
            delay *= 1 + self.rng.uniform(-policy.jitter, policy.jitter)
        return delay


def _check_significant(instance: ChildSpec, attribute: Any, value: bool) -> None:
    if value and instance.restart is Restart.PERMANENT:
        raise ValueError(f"child {instance.id!r}: a significant child must be transient or temporary")


@attrs.frozen(kw_only=True)
class ChildSpec:
    """How to start one child and what to do when it exits.

    Args:
        id: unique among the supervisor's children; also the last part of the child's path.
        start: makes a fresh actor for each incarnation (an Actor subclass or any callable returning one;
            a dynamic supervisor passes `start_child`'s arguments to it).
        restart: permanent, transient or temporary.
        shutdown: grace seconds between the stop request and the kill; `BRUTAL` or `INFINITY`. None: the
            actor class decides (5 s for workers, infinity for supervisors).
        start_timeout: seconds the child may take to start. None: the actor class decides.
        significant: the child's own exit may end the supervisor (see `AutoShutdown`).
        backoff: delay restarts of this child.
        name: register each incarnation under this name.
        mailbox: the child's mailbox size and overflow policy.
    """

    id: str
    start: Callable[..., Actor]
    restart: Restart = Restart.PERMANENT
    shutdown: float | None = attrs.field(
        default=None, validator=attrs.validators.optional(attrs.validators.ge(0))
    )
    start_timeout: float | None = None
    significant: bool = attrs.field(default=False, validator=_check_significant)
    backoff: Backoff | None = None
    name: str | None = None
    mailbox: MailboxConfig | None = None
