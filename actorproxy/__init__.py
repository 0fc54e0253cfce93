"""actorproxy: a programmable HTTP reverse proxy and load balancer on a tree of supervised trio actors.

This package is the kernel: actors, refs, mailboxes, exit reasons, the actor system and its registry,
dead letters and events. `supervisors` builds OTP supervision on it; `actors` builds the proxy on both.
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
from .config import ServerConf
from .http import (
    BodyChunk,
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    HttpPeer,
    PeerOptions,
    ProxyHttp,
    RequestHeader,
    ResponseHeader,
    RetryType,
    Session,
)

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
    "BodyChunk",
    "DeadLetter",
    "DeadLetters",
    "Error",
    "ErrorSource",
    "ErrorType",
    "EventStream",
    "ExitKind",
    "ExitReason",
    "Headers",
    "HttpPeer",
    "MailboxConfig",
    "MailboxFull",
    "NameTaken",
    "Overflow",
    "PeerOptions",
    "ProxyHttp",
    "Registry",
    "RequestHeader",
    "ResponseHeader",
    "RetryType",
    "ServerConf",
    "Session",
    "StartFailed",
    "StartTimeout",
    "Timers",
    "TreeNode",
    "UnhandledMessage",
    "open_actor_system",
]

__version__ = "0.1.0"
