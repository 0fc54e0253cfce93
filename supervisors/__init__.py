"""OTP supervision for actorproxy actors: strategies, restart types, intensity, shutdown, auto-shutdown."""

from ._background import (
    BackgroundService,
    BackgroundTaskActor,
    GenBackgroundService,
    ServiceReadyNotifier,
    ShutdownWatch,
)
from ._daemon import daemonize, drop_privileges, write_pid_file
from ._dynamic import DynamicSupervisor
from ._events import (
    ChildCrashed,
    ChildExited,
    ChildRestarted,
    ChildStarted,
    ChildTerminated,
    RestartFailed,
    SupervisorEscalated,
    SupervisorEvent,
    SupervisorShutdown,
)
from ._intensity import RestartIntensity
from ._listenfds import ListenFds, endpoint_key
from ._messages import (
    ChildCounts,
    ChildInfo,
    Escalation,
    SupervisorError,
    SupervisorStatistics,
    count_children,
    delete_child,
    restart_child,
    start_child,
    start_child_soon,
    supervisor_statistics,
    terminate_child,
    which_children,
)
from ._server import DEFAULT_GRACE_PERIOD, DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT, Server
from ._services import ListeningService, Service, ServiceDependencyError, ServiceHandle
from ._signals import shutdown_on_signals
from ._spec import BRUTAL, INFINITY, AutoShutdown, Backoff, ChildSpec, Restart, Strategy
from ._supervisor import Supervisor
from ._upgrade import UpgradeError, receive_listen_fds, send_listen_fds
from ._workers import WorkerPool

__all__ = [
    "BRUTAL",
    "DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT",
    "DEFAULT_GRACE_PERIOD",
    "INFINITY",
    "AutoShutdown",
    "BackgroundService",
    "BackgroundTaskActor",
    "Backoff",
    "ChildCounts",
    "ChildCrashed",
    "ChildExited",
    "ChildInfo",
    "ChildRestarted",
    "ChildSpec",
    "ChildStarted",
    "ChildTerminated",
    "DynamicSupervisor",
    "Escalation",
    "GenBackgroundService",
    "ListenFds",
    "ListeningService",
    "Restart",
    "RestartFailed",
    "RestartIntensity",
    "Server",
    "Service",
    "ServiceDependencyError",
    "ServiceHandle",
    "ServiceReadyNotifier",
    "ShutdownWatch",
    "Strategy",
    "Supervisor",
    "SupervisorError",
    "SupervisorEscalated",
    "SupervisorEvent",
    "SupervisorShutdown",
    "SupervisorStatistics",
    "UpgradeError",
    "WorkerPool",
    "count_children",
    "daemonize",
    "delete_child",
    "drop_privileges",
    "endpoint_key",
    "receive_listen_fds",
    "restart_child",
    "send_listen_fds",
    "shutdown_on_signals",
    "start_child",
    "start_child_soon",
    "supervisor_statistics",
    "terminate_child",
    "which_children",
    "write_pid_file",
]
