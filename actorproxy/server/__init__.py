"""The server process: `Server` and the services it runs, worker processes, the graceful upgrade (listening
sockets handed to a new process), daemon mode and privileges, signals, and Pingora's `background_service`."""

from actorproxy.proxy import ListenFds, endpoint_key

from ._background import background_service
from ._daemon import daemonize, drop_privileges, write_pid_file
from ._files import SystemFile, SystemSetup, write_atomically
from ._server import ClusterSource, ReloadHook, ReloadOutcome, Server, settle_for_serving
from ._services import ListeningService, Service, ServiceDependencyError, ServiceHandle
from ._signals import shutdown_on_signals
from ._upgrade import UpgradeError, receive_listen_fds, send_listen_fds
from ._workers import WorkerPool

__all__ = [
    "ClusterSource",
    "ListenFds",
    "ListeningService",
    "ReloadHook",
    "ReloadOutcome",
    "Server",
    "Service",
    "ServiceDependencyError",
    "ServiceHandle",
    "SystemFile",
    "SystemSetup",
    "UpgradeError",
    "WorkerPool",
    "background_service",
    "daemonize",
    "drop_privileges",
    "endpoint_key",
    "receive_listen_fds",
    "send_listen_fds",
    "settle_for_serving",
    "shutdown_on_signals",
    "write_atomically",
    "write_pid_file",
]
