"""`background_service(name, task)`: Pingora's helper, for a load balancer or any background task.

A `LoadBalancer` gets its own service (`actorproxy.lb.LoadBalancerService`: a `LoadBalancerActor` ready after
the first discovery and health round); any other task, an object implementing the
`supervisors.BackgroundService` trait (`start(shutdown)` or `start_with_ready_notifier(shutdown,
ready_notifier)`), runs as a `supervisors.GenBackgroundService`. The name is used as given, without
Pingora's "BG " prefix (it is the service's actor path and registry name; see `supervisors._background`).
"""

from __future__ import annotations

from typing import Any, TypeVar, overload

from actorproxy.lb import LoadBalancer, LoadBalancerService
from supervisors import GenBackgroundService

__all__ = ["background_service"]

TaskT = TypeVar("TaskT")


# A LoadBalancer matches both signatures; the first, more specific one is the one that applies.
@overload
def background_service(name: str, task: LoadBalancer) -> LoadBalancerService: ...  # type: ignore[overload-overlap]


@overload
def background_service(name: str, task: TaskT) -> GenBackgroundService[TaskT]: ...


def background_service(name: str, task: Any) -> LoadBalancerService | GenBackgroundService[Any]:
    """Run `task` as a service named `name`; `.task()` hands it back, for the proxy application to use.

    Raises:
        TypeError: `task` is neither a `LoadBalancer` nor has `start` or `start_with_ready_notifier`.
    """
    if isinstance(task, LoadBalancer):
        return LoadBalancerService(name, task)
    return GenBackgroundService(name, task)
