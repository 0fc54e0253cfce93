"""The actor kernel: actors, refs, mailboxes, exit reasons, the actor system and its registry, dead letters,
timers and events.

It depends on trio and attrs only. `supervisors` builds OTP supervision on it; `actorproxy` builds the proxy
on both. `actors.testing` is the actor test kit.
"""

from ._actor import Actor
from ._context import CLEANUP_TIMEOUT, ActorContext
from ._deadletters import DeadLetter, DeadLetters
from ._errors import (
    ActorDead,
    ActorProxyError,
    AskFailed,
    AskTimeout,
    MailboxFull,
    NameTaken,
    StartFailed,
    StartTimeout,
    UnhandledMessage,
)
from ._events import EventStream
from ._exit import ExitKind, ExitReason
from ._mailbox import DEFAULT_MAILBOX_CAPACITY, MailboxConfig, Overflow
from ._messages import ActorExited
from ._ref import DEFAULT_ASK_TIMEOUT, ActorRef
from ._registry import Registry
from ._statistics import ActorStatistics, TreeNode
from ._system import ActorFactory, ActorSystem, open_actor_system
from ._timers import Timers

__all__ = [
    "CLEANUP_TIMEOUT",
    "DEFAULT_ASK_TIMEOUT",
    "DEFAULT_MAILBOX_CAPACITY",
    "Actor",
    "ActorContext",
    "ActorDead",
    "ActorExited",
    "ActorFactory",
    "ActorProxyError",
    "ActorRef",
    "ActorStatistics",
    "ActorSystem",
    "AskFailed",
    "AskTimeout",
    "DeadLetter",
    "DeadLetters",
    "EventStream",
    "ExitKind",
    "ExitReason",
    "MailboxConfig",
    "MailboxFull",
    "NameTaken",
    "Overflow",
    "Registry",
    "StartFailed",
    "StartTimeout",
    "Timers",
    "TreeNode",
    "UnhandledMessage",
    "open_actor_system",
]
