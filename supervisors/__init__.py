"""OTP supervision for actorproxy actors: strategies, restart types, intensity, shutdown, auto-shutdown."""

from ._background import (
    BackgroundService,
    BackgroundTaskActor,
    GenBackgroundService,
    ServiceReadyNotifier,
    ShutdownWatch,
)
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
from ._server import Server, Service, ServiceDependencyError, ServiceHandle
from ._signals import shutdown_on_signals
from ._spec import BRUTAL, INFINITY, AutoShutdown, Backoff, ChildSpec, Restart, Strategy
from ._supervisor import Supervisor
from ._upgrade import UpgradeError, receive_listen_fds, send_listen_fds

__all__ = [
    "BRUTAL",
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
    "count_children",
    "delete_child",
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
]
