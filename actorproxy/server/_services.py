"""Services a `Server` runs, and the order their dependencies put them in.

Rules:
- A service names itself and describes its subtree (`child_spec()`); a service that listens also takes the
  server's `ListenFds`, can bind its endpoints before the event loop starts, and begins its drain
  (stop accepting, ask connections to finish) when the server drains.
- `start_order` is a topological order of the dependencies (Pingora 0.6's `ServiceHandle.add_dependency`),
  otherwise the order the services were added. A dependency cycle, or a dependency on a service that was
  never added, is a `ServiceDependencyError` naming the services.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol, runtime_checkable

from actorproxy.proxy import ListenFds
from actors import ActorProxyError, ActorSystem
from supervisors import ChildSpec

__all__ = ["ListeningService", "Service", "ServiceDependencyError", "ServiceHandle", "start_order"]


class Service(Protocol):
    """Anything the server can run: it names itself and describes its subtree."""

    name: str

    def child_spec(self) -> ChildSpec: ...


@runtime_checkable
class ListeningService(Protocol):
    """A service with listening sockets (a proxy service)."""

    name: str

    def child_spec(self) -> ChildSpec: ...

    def use_listen_fds(self, fds: ListenFds) -> None:
        """Borrow listening sockets from the server's table (and register those bound later)."""
        ...

    def bind_listeners(self, fds: ListenFds) -> None:
        """Bind every endpoint not in `fds` yet, now; raise OSError naming the endpoint on failure."""
        ...

    async def begin_drain(self, system: ActorSystem) -> None:
        """Stop accepting and ask every connection to finish (the first step of a drain, taken by every
        listening service at once); the drain itself is the actor system's shutdown."""
        ...


class ServiceDependencyError(ActorProxyError, ValueError):
    """The services' dependencies cannot be met: a cycle, or a service that was never added."""


class ServiceHandle:
    """A service added to a `Server`, to declare what it depends on (Pingora's `ServiceHandle`).

    Returned by `Server.add_service`; `service` is the object that was added.
    """

    __slots__ = ("_dependencies", "_server", "service")

    def __init__(self, server: Any, service: Service) -> None:
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


def start_order(handles: Sequence[ServiceHandle]) -> list[Service]:
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
