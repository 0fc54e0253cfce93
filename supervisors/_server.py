"""`Server`: the root of a proxy process; runs every service's subtree and drains them on signals.

Rules:
- A service is ready when its subtree has started: the start handshake of its root actor (a proxy service's
  listeners are bound, a load balancer has run its first discovery and health round, a background task has
  called `notify_ready()`).
- `serve` starts the services one at a time, each once the one before it is ready, in a topological order of
  their dependencies (Pingora 0.6's `ServiceHandle.add_dependency`) that is otherwise the order they were
  added: a service starts only after every service it depends on is ready. Independent services do not
  start concurrently (Pingora's do), so the server takes the sum of their start times to come up; in
  exchange the start order, and so the drain order, is fixed and the same on every run.
- A dependency cycle, or a dependency on a service that was never added, fails `serve` before any service
  starts, with a `ServiceDependencyError` naming the services.
- Shutdown runs in reverse: the actor system drains its top-level actors last started first, so a service
  stops before everything it depends on (the proxy drains while its load balancer still answers).
"""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Iterable, Sequence
from typing import Protocol

import trio

from actorproxy import ActorProxyError, ActorSystem, ServerConf, open_actor_system

from ._spec import ChildSpec

__all__ = ["Server", "Service", "ServiceDependencyError", "ServiceHandle"]

logger = logging.getLogger("actorproxy.server")


class Service(Protocol):
    """Anything the server can run: it names itself and describes its subtree."""

    name: str

    def child_spec(self) -> ChildSpec: ...


class ServiceDependencyError(ActorProxyError, ValueError):
    """The services' dependencies cannot be met: a cycle, or a service that was never added."""


class ServiceHandle:
    """A service added to a `Server`, to declare what it depends on (Pingora's `ServiceHandle`).

    Returned by `Server.add_service`; `service` is the object that was added.
    """

    __slots__ = ("_dependencies", "_server", "service")

    def __init__(self, server: Server, service: Service) -> None:
        self._server = server
        self.service = service
        self._dependencies: list[Service] = []

    def __repr__(self) -> str:
        names = ", ".join(repr(d.name) for d in self._dependencies)
        return f"<ServiceHandle {self.service.name!r} depends on [{names}]>"

    @property
    def name(self) -> str:
        return self.service.name

    @property
    def dependencies(self) -> tuple[Service, ...]:
        """The services this one starts after, in the order they were declared."""
        return tuple(self._dependencies)

    def add_dependency(self, dependency: ServiceHandle | Service) -> None:
        """Start this service only once `dependency` is ready (and stop it before `dependency`).

        `dependency` may be a handle or the service object itself, added to the server before or after
        this call; `serve` checks that it was added.

        Raises:
            ServiceDependencyError: `dependency` is this service, or a handle of another server.
        """
        if isinstance(dependency, ServiceHandle):
            if dependency._server is not self._server:
                raise ServiceDependencyError(
                    f"service {self.name!r} cannot depend on {dependency.name!r}: "
                    "its handle belongs to another server"
                )
            dependency = dependency.service
        if dependency is self.service:
            raise ServiceDependencyError(f"service {self.name!r} cannot depend on itself")
        if not any(d is dependency for d in self._dependencies):
            self._dependencies.append(dependency)

    def add_dependencies(self, dependencies: Iterable[ServiceHandle | Service]) -> None:
        """`add_dependency` for each of `dependencies`."""
        for dependency in dependencies:
            self.add_dependency(dependency)


class Server:
    """Holds the configuration and the services; `run_forever` serves until SIGINT or SIGTERM."""

    def __init__(self, conf: ServerConf | None = None, options: argparse.Namespace | None = None) -> None:
        self.configuration = conf or ServerConf()
        self.options = options
        #: The services in the order they were added.
        self.services: list[Service] = []
        self._handles: dict[int, ServiceHandle] = {}  # by id() of the service
        self.system: ActorSystem | None = None

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> Server:
        """Parse Pingora's options: -c/--conf, -d/--daemon, -t/--test, -u/--upgrade."""
        parser = argparse.ArgumentParser(prog="actorproxy")
        parser.add_argument("-c", "--conf", help="configuration file (YAML)")
        parser.add_argument("-d", "--daemon", action="store_true", help="run in the background")
        parser.add_argument("-t", "--test", action="store_true", help="validate the configuration and exit")
        parser.add_argument(
            "-u", "--upgrade", action="store_true", help="take over listeners from a running server"
        )
        options = parser.parse_args(argv)
        return cls(ServerConf(daemon=options.daemon), options)

    def bootstrap(self) -> None:
        """Prepare the process before services start (upgrade sockets and daemon mode come later)."""

    def add_service(
        self, service: Service, *, depends_on: Iterable[ServiceHandle | Service] = ()
    ) -> ServiceHandle:
        """Run `service` in this server, started once every service in `depends_on` is ready.

        Returns:
            The service's handle, for `add_dependency` (other services may depend on it or on `service`).

        Raises:
            ValueError: `service` was added already.
        """
        if any(s is service for s in self.services):
            raise ValueError(f"service {service.name!r} was added to the server already")
        handle = ServiceHandle(self, service)
        handle.add_dependencies(depends_on)
        self.services.append(service)
        self._handles[id(service)] = handle
        return handle

    def add_services(self, services: Sequence[Service]) -> list[ServiceHandle]:
        """`add_service` for each of `services`, in order; returns their handles."""
        return [self.add_service(service) for service in services]

    def start_order(self) -> list[Service]:
        """The services in the order `serve` starts them: dependencies first, otherwise as added.

        Raises:
            ServiceDependencyError: a dependency cycle, or a dependency on a service never added.
        """
        # A service put in `services` directly (not through `add_service`) has no dependencies.
        handles = self._handles
        return _start_order([handles.get(id(s)) or ServiceHandle(self, s) for s in self.services])

    async def serve(self, *, task_status: trio.TaskStatus[ActorSystem] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service after what it depends on, report the system as started, then wait for
        SIGINT/SIGTERM.

        Raises:
            ServiceDependencyError: the dependencies cannot be met (before any service starts).
            ExceptionGroup: holding the `StartFailed` of a service that failed to start (the actor system's
                nursery wraps it); the services already started are drained first.
        """
        order = self.start_order()
        async with open_actor_system("server") as system:
            self.system = system
            for service in order:
                await system.spawn(service.child_spec().start, name=service.name)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                task_status.started(system)
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    if signum == signal.SIGINT:
                        raise KeyboardInterrupt
                    break

    def run_forever(self) -> None:
        """Serve until a signal: SIGTERM drains gracefully, SIGINT (Ctrl-C) stops fast."""
        try:
            trio.run(self.serve)
        except KeyboardInterrupt:
            logger.info("stopped")
        except BaseExceptionGroup as group:
            if group.subgroup(KeyboardInterrupt) is None or group.subgroup(Exception) is not None:
                raise
            logger.info("stopped")


def _start_order(handles: Sequence[ServiceHandle]) -> list[Service]:
    """A topological order of the services of `handles`, stable by add order (see `Server.start_order`)."""
    added = {id(h.service) for h in handles}
    for handle in handles:
        for dependency in handle.dependencies:
            if id(dependency) not in added:
                raise ServiceDependencyError(
                    f"service {handle.name!r} depends on {dependency.name!r}, "
                    "which was never added to the server"
                )
    placed: set[int] = set()
    order: list[Service] = []
    pending = list(handles)
    while pending:
        # The first service in add order whose dependencies are all placed: O(n^2), for a handful of services.
        ready = next(
            (h for h in pending if all(id(d) in placed for d in h.dependencies)),
            None,
        )
        if ready is None:
            raise ServiceDependencyError(f"service dependency cycle: {_cycle(pending)}")
        pending.remove(ready)
        placed.add(id(ready.service))
        order.append(ready.service)
    return order


def _cycle(pending: Sequence[ServiceHandle]) -> str:
    """One cycle among `pending` (services none of which can start), as "a -> b -> a"."""
    by_service = {id(h.service): h for h in pending}
    path: list[ServiceHandle] = []
    handle = pending[0]
    # Every pending service waits on a pending one, so following the first such dependency must loop.
    while handle not in path:
        path.append(handle)
        handle = next(by_service[id(d)] for d in handle.dependencies if id(d) in by_service)
    loop = [*path[path.index(handle) :], handle]
    return " -> ".join(repr(h.name) for h in loop)
