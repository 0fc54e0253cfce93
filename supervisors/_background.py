"""Background services (Pingora's `BackgroundService`): user tasks that run beside the proxy services.

A task implements `start(shutdown)` or `start_with_ready_notifier(shutdown, ready_notifier)`, not both.
`GenBackgroundService(name, task)` runs it as a service of `Server`:

    Service supervisor "<name>"          one_for_one, auto-shutdown when the task is done
    └── BackgroundTaskActor "task"       runs `task.start_with_ready_notifier(shutdown, ready_notifier)`

Rules:
- Ready is the start handshake. The actor counts as started when the task calls `notify_ready()` (at once
  for a task that implements only `start`), so the service supervisor, and the server's services that
  depend on this one, start only then. A task that returns or raises before it is ready fails the start,
  with a `StartFailed` naming the service; there is no start timeout by default (Pingora has none), set
  `start_timeout` to bound it.
- Shutdown is a flag before it is a cancel: the `ShutdownWatch` is set when the actor is asked to stop (the
  server drains, the supervisor stops it), so the task can finish cleanly and return. A task still running
  `shutdown_timeout` seconds later is cancelled like any child.
- Restart: Pingora never restarts a background service; its task ends when it returns, and a panic takes
  its thread with it. Here the task runs under a supervisor, and a crash is exactly what a supervisor is for,
  so the default restart type is TRANSIENT: a crash (an exception after ready) runs the task again, through
  the same ready handshake; a clean return is the task's own decision to be done and is not restarted. The
  service supervisor is then done too (auto-shutdown), and the server goes on with the other services.
  Restarts call the same task object again (Pingora shares the task through an `Arc`; `.task()` hands the
  same object to the proxy application), so state the task keeps on itself survives a crash.
- One process, one task: `threads` is Pingora's field, kept for parity; a background service always runs
  as one actor in the server's process (`None` and 1 are the only values).
- Names: Pingora's `background_service` prefixes the name with "BG ". Here the name is the service's actor
  path and registry name under the server (`system.whereis(name)`), and the load balancer's service is not
  prefixed either, so the name is used as given.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

import trio

from actors import Actor, StartFailed

from ._spec import AutoShutdown, ChildSpec, Restart
from ._supervisor import Supervisor

__all__ = [
    "BackgroundService",
    "BackgroundTaskActor",
    "GenBackgroundService",
    "ServiceReadyNotifier",
    "ShutdownWatch",
]

TaskT = TypeVar("TaskT")

# Restarts a crashing task may take before its service gives up (the load balancer's service uses the same).
BACKGROUND_INTENSITY = 10
BACKGROUND_PERIOD = 10.0
# The child id of the task's actor under its service supervisor (its path is "/<service>/task").
TASK_CHILD_ID = "task"


class ShutdownWatch:
    """What a background task receives as `shutdown`: a read-only view of its service's shutdown flag.

    Pingora's is a watch channel whose value turns true; here it is a `trio.Event` the task may only read.
    """

    __slots__ = ("_event",)

    def __init__(self, event: trio.Event) -> None:
        self._event = event

    def __repr__(self) -> str:
        return f"<ShutdownWatch {'set' if self._event.is_set() else 'unset'}>"

    def is_set(self) -> bool:
        """True once the service has been asked to stop."""
        return self._event.is_set()

    async def wait(self) -> None:
        """Wait until the service is asked to stop (returns at once if it already was)."""
        await self._event.wait()


class ServiceReadyNotifier:
    """What a task calls `notify_ready()` on once it is initialized (Pingora's `ServiceReadyNotifier`).

    Args:
        on_ready: called once, on the first `notify_ready()`.
    """

    __slots__ = ("_closed", "_on_ready", "_ready")

    def __init__(self, on_ready: Callable[[], None]) -> None:
        self._on_ready = on_ready
        self._ready = False
        self._closed = False

    def __repr__(self) -> str:
        return f"<ServiceReadyNotifier {'ready' if self._ready else 'not ready'}>"

    @property
    def ready(self) -> bool:
        """True once `notify_ready()` has been called while the task ran."""
        return self._ready

    def notify_ready(self) -> None:
        """Mark the service ready: services depending on it may start. Idempotent.

        A call after the task has ended (a notifier kept past its incarnation) does nothing.
        """
        if self._ready or self._closed:
            return
        self._ready = True
        self._on_ready()

    def close(self) -> None:
        """Ignore later `notify_ready()` calls (the incarnation the notifier belonged to has ended)."""
        self._closed = True


class BackgroundService:
    """The background task interface: subclass it and implement one of the two methods, not both.

    The server calls `start_with_ready_notifier`; by default it notifies readiness at once and calls
    `start`. Either may return at any time or wait for `shutdown`. This is the trait user tasks implement;
    `actorproxy.lb.BackgroundService` is a different thing, the service wrapper that runs a `LoadBalancer`.
    Duck typing works too: any object with either method can be given to `GenBackgroundService`.
    """

    async def start(self, shutdown: ShutdownWatch) -> None:
        """Run the task; it counts as ready as soon as it is called. The default returns at once."""

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        """Run the task and call `ready_notifier.notify_ready()` once initialized (default: at once)."""
        ready_notifier.notify_ready()
        await self.start(shutdown)


def _missing_hooks(task: object) -> str | None:
    """Why `task` cannot run as a background task, or None when it can."""
    if callable(getattr(task, "start_with_ready_notifier", None)) or callable(getattr(task, "start", None)):
        return None
    return f"{task!r} has neither start(shutdown) nor start_with_ready_notifier(shutdown, ready_notifier)"


async def _run_task(task: Any, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier) -> None:
    """Run `task` through Pingora's contract, also for tasks that do not subclass `BackgroundService`."""
    start_with_ready_notifier = getattr(task, "start_with_ready_notifier", None)
    if start_with_ready_notifier is not None:
        await start_with_ready_notifier(shutdown, ready_notifier)
        return
    ready_notifier.notify_ready()
    await task.start(shutdown)


class BackgroundTaskActor(Actor):
    """Runs one incarnation of a background task; started when the task notifies readiness.

    Args:
        task: the task (a `BackgroundService`, or any object with `start` or `start_with_ready_notifier`).
        name: the service's name, for errors.
    """

    #: Time to ready is the task's business: no limit unless the service sets one (Pingora has none).
    start_timeout: float | None = None

    def __init__(self, task: Any, *, name: str) -> None:
        self.task = task
        self.name = name
        self._shutdown = trio.Event()

    def __repr__(self) -> str:
        return f"<BackgroundTaskActor {self.name} {self.task!r}>"

    @property
    def shutdown(self) -> ShutdownWatch:
        """The watch the task received."""
        return ShutdownWatch(self._shutdown)

    def on_stop_request(self) -> None:
        # The task is told before any cancellation; the kill comes only when the shutdown grace runs out.
        self._shutdown.set()

    async def _main(self, started: Callable[[], None]) -> None:
        # The kernel's start handshake is `started()`: handing it to the notifier makes the task's readiness
        # the actor's start, with no extra task or nursery. The task runs in the actor's own task, so a stop
        # request interrupts it only through the watch, and the kill through the actor's cancel scope.
        notifier = ServiceReadyNotifier(started)
        try:
            await _run_task(self.task, self.shutdown, notifier)
        except Exception as exc:
            if notifier.ready:
                raise  # a crash, for the supervisor
            raise StartFailed(
                self.context.path, f"background service {self.name!r} raised before notify_ready(): {exc!r}"
            ) from exc
        finally:
            notifier.close()
        if not notifier.ready and not self.context.stop_requested:
            # (Asked to stop while starting, a task that returns has simply obeyed: the start then ends as
            # a shutdown.)
            raise StartFailed(
                self.context.path, f"background service {self.name!r} returned before notify_ready()"
            )


class GenBackgroundService(Generic[TaskT]):
    """A background task run as a service of `Server` (Pingora's `GenBackgroundService`).

    Args:
        name: the service name (its actor path and registry name under the server).
        task: the task; it must have `start(shutdown)` or
            `start_with_ready_notifier(shutdown, ready_notifier)`.

    Attributes:
        threads: Pingora's field; a background service runs as one actor in one process (None or 1).
        restart: TRANSIENT (a crash restarts the task, a clean return ends the service), PERMANENT (a clean
            return restarts it too) or TEMPORARY (never restarted, as in Pingora).
        start_timeout: seconds the task may take to notify readiness; None: no limit.
        shutdown_timeout: seconds between setting the shutdown watch and cancelling the task.

    Raises:
        TypeError: `task` has neither method.
    """

    def __init__(self, name: str, task: TaskT) -> None:
        why = _missing_hooks(task)
        if why is not None:
            raise TypeError(f"background service {name!r}: {why}")
        self.name = name
        self._task = task
        self.threads: int | None = 1
        self.restart = Restart.TRANSIENT
        self.start_timeout: float | None = None
        self.shutdown_timeout: float = Actor.shutdown_timeout

    def __repr__(self) -> str:
        return f"<GenBackgroundService {self.name} {self._task!r}>"

    def task(self) -> TaskT:
        """The task, to share with other logic (Pingora's `task()`)."""
        return self._task

    def actor_spec(self) -> ChildSpec:
        """The bare `BackgroundTaskActor`, for a supervisor of the user's own."""
        if self.threads not in (None, 1):
            raise ValueError(
                f"background service {self.name!r}: threads={self.threads!r}; a background service runs "
                "as one actor in one process (None or 1)"
            )
        return ChildSpec(
            id=TASK_CHILD_ID,
            start=partial(BackgroundTaskActor, self._task, name=self.name),
            restart=self.restart,
            shutdown=self.shutdown_timeout,
            start_timeout=self.start_timeout,
            significant=self.restart is not Restart.PERMANENT,
        )

    def child_spec(self) -> ChildSpec:
        """The service as a child of the server's root: a supervisor that restarts the task on a crash."""
        spec = self.actor_spec()
        return ChildSpec(
            id=self.name,
            start=lambda: Supervisor(
                [spec],
                intensity=BACKGROUND_INTENSITY,
                period=BACKGROUND_PERIOD,
                auto_shutdown=AutoShutdown.ANY_SIGNIFICANT,
            ),
        )
