"""Background services (Pingora's `BackgroundService`): readiness, the shutdown watch, failures, restarts.

Every test runs the services in a real `Server.serve` on virtual time; a service's log entries carry the
virtual time they were made at.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Log, serving

from actorproxy.lb import LoadBalancer, LoadBalancerService
from actorproxy.server import Server, background_service
from actors import Actor, ActorSystem, StartFailed
from supervisors import (
    BackgroundService,
    BackgroundTaskActor,
    ChildSpec,
    GenBackgroundService,
    Restart,
    ServiceReadyNotifier,
    ShutdownWatch,
    supervisor_statistics,
)


class Probe(Actor):
    """A service's whole subtree: records when it starts and stops."""

    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log

    async def on_start(self) -> None:
        self.log.add("start", self.name)

    async def on_stop(self, reason: Any) -> None:
        self.log.add("stop", self.name)


class ProbeService:
    def __init__(self, name: str, log: Log) -> None:
        self.name = name
        self.log = log

    def child_spec(self) -> ChildSpec:
        return ChildSpec(id=self.name, start=lambda: Probe(self.name, self.log))


class UntilShutdown(BackgroundService):
    """Implements only `start`: runs until the shutdown watch is set, then returns cleanly."""

    def __init__(self, log: Log) -> None:
        self.log = log

    async def start(self, shutdown: ShutdownWatch) -> None:
        self.log.add("running", "task")
        await shutdown.wait()
        self.log.add("returned", "task", shutdown.is_set())


class SlowToReady(BackgroundService):
    """Initializes for `delay` seconds, notifies readiness, then waits for shutdown."""

    def __init__(self, log: Log, delay: float) -> None:
        self.log = log
        self.delay = delay

    async def start_with_ready_notifier(
        self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
    ) -> None:
        self.log.add("initializing", "task")
        await trio.sleep(self.delay)
        ready_notifier.notify_ready()
        ready_notifier.notify_ready()  # idempotent
        self.log.add("ready", "task")
        await shutdown.wait()


class IgnoresShutdown(BackgroundService):
    async def start(self, shutdown: ShutdownWatch) -> None:
        self.shutdown = shutdown
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.cancelled_at = trio.current_time()
            raise


async def test_a_task_with_only_start_is_ready_at_once(log: Log, autojump_clock: Any) -> None:
    task = UntilShutdown(log)
    server = Server()
    bg = server.add_service(GenBackgroundService("bg", task))
    server.add_service(ProbeService("after", log), depends_on=[bg])
    async with serving(server) as system:
        assert log == [("running", "task"), ("start", "after")]
        assert log.times == [0.0, 0.0]
        assert system.whereis("bg") is not None


async def test_a_dependent_starts_only_once_the_task_notifies_ready(log: Log, autojump_clock: Any) -> None:
    server = Server()
    bg = GenBackgroundService("bg", SlowToReady(log, delay=3.0))
    server.add_service(ProbeService("after", log), depends_on=[bg])
    server.add_service(bg)
    async with serving(server):
        assert log == [("initializing", "task"), ("ready", "task"), ("start", "after")]
        assert log.times == [0.0, 3.0, 3.0]
        # The server reports itself started only when every service is.
        assert trio.current_time() == 3.0


async def test_the_watch_is_set_on_a_graceful_shutdown_and_the_task_returns_cleanly(
    log: Log, autojump_clock: Any
) -> None:
    server = Server()
    server.add_service(GenBackgroundService("bg", UntilShutdown(log)))
    async with serving(server) as system:
        await trio.sleep(1)
        await system.shutdown()
        assert log[-1] == ("returned", "task", True)
        assert log.times[-1] == 1.0  # at once: no grace spent, nothing cancelled
        assert system.top_level() == []


async def test_sigterm_sets_the_watch_and_serve_returns(log: Log, autojump_clock: Any) -> None:
    server = Server()
    server.add_service(GenBackgroundService("bg", UntilShutdown(log)))
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        signal.raise_signal(signal.SIGTERM)
    assert log == [("running", "task"), ("returned", "task", True)]


async def test_a_task_ignoring_shutdown_is_cancelled_after_the_shutdown_timeout(autojump_clock: Any) -> None:
    task = IgnoresShutdown()
    service = GenBackgroundService("bg", task)
    service.shutdown_timeout = 2.0
    server = Server()
    server.add_service(service)
    async with serving(server) as system:
        await trio.sleep(1)
        await system.shutdown()
        assert task.shutdown.is_set()
        assert task.cancelled_at == 3.0


async def test_a_task_that_raises_before_ready_fails_the_start_naming_the_service(
    log: Log, autojump_clock: Any
) -> None:
    class Broken(BackgroundService):
        async def start_with_ready_notifier(
            self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
        ) -> None:
            raise OSError("no such file: settings.yaml")

    server = Server()
    server.add_service(GenBackgroundService("settings", Broken()))
    server.add_service(ProbeService("after", log))
    failure = await start_failure(server)
    assert failure.path == "/settings"
    assert "background service 'settings' raised before notify_ready(): OSError" in _chain(failure)
    assert isinstance(failure.__cause__, StartFailed)
    assert isinstance(failure.__cause__.__cause__, OSError)
    assert log == []  # nothing after it started


async def test_a_task_that_returns_before_ready_fails_the_start(autojump_clock: Any) -> None:
    class Quits(BackgroundService):
        async def start_with_ready_notifier(
            self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
        ) -> None:
            await trio.sleep(1)

    server = Server()
    server.add_service(GenBackgroundService("quitter", Quits()))
    failure = await start_failure(server)
    assert trio.current_time() == 1.0
    assert "background service 'quitter' returned before notify_ready()" in _chain(failure)


async def test_a_crash_after_ready_is_restarted_and_waits_for_ready_again(
    log: Log, autojump_clock: Any
) -> None:
    class CrashesOnce(BackgroundService):
        runs = 0

        async def start_with_ready_notifier(
            self, shutdown: ShutdownWatch, ready_notifier: ServiceReadyNotifier
        ) -> None:
            self.runs += 1
            await trio.sleep(0.5)
            ready_notifier.notify_ready()
            log.add("ready", self.runs)
            if self.runs == 1:
                await trio.sleep(1)
                raise RuntimeError("lost the connection to the metrics sink")
            await shutdown.wait()

    task = CrashesOnce()
    server = Server()
    server.add_service(GenBackgroundService("metrics", task))
    async with serving(server) as system:
        await trio.sleep(5)
        ref = system.whereis("metrics")
        assert ref is not None
        stats = await supervisor_statistics(ref)
        assert (stats.crashes, stats.restarts) == (1, 1)
    assert log == [("ready", 1), ("ready", 2)]
    assert log.times == [0.5, 2.0]  # the restart ran the same task object, through the handshake again


async def test_a_clean_return_after_ready_ends_the_service_without_restart(
    log: Log, autojump_clock: Any
) -> None:
    class OneShot(BackgroundService):
        async def start(self, shutdown: ShutdownWatch) -> None:
            log.add("warmed the cache", "task")
            await trio.sleep(1)

    server = Server()
    server.add_service(GenBackgroundService("warmup", OneShot()))
    server.add_service(ProbeService("other", log))
    async with serving(server) as system:
        await trio.sleep(5)
        assert system.whereis("warmup") is None  # the service supervisor shut down with its task
        assert system.whereis("other") is not None
    assert log.count("warmed the cache", "task") == 1


async def test_a_temporary_task_is_never_restarted(autojump_clock: Any) -> None:
    class Crashes(BackgroundService):
        runs = 0

        async def start(self, shutdown: ShutdownWatch) -> None:
            self.runs += 1
            raise RuntimeError("boom")

    task = Crashes()
    service = GenBackgroundService("once", task)
    service.restart = Restart.TEMPORARY  # Pingora's behaviour
    server = Server()
    server.add_service(service)
    async with serving(server) as system:
        await trio.sleep(5)
        assert system.whereis("once") is None
    assert task.runs == 1


def test_task_returns_the_task_and_the_name_is_kept() -> None:
    task = UntilShutdown(Log())
    service = GenBackgroundService("health check", task)
    assert service.task() is task
    assert service.name == "health check"  # no "BG " prefix: the name is the service's actor path
    assert service.threads == 1


def test_more_than_one_thread_is_refused() -> None:
    service = GenBackgroundService("bg", UntilShutdown(Log()))
    service.threads = 4
    with pytest.raises(ValueError, match="one actor in one process"):
        service.child_spec()


async def test_the_default_trait_is_ready_at_once_and_returns() -> None:
    calls: list[str] = []
    notifier = ServiceReadyNotifier(lambda: calls.append("ready"))
    await BackgroundService().start_with_ready_notifier(ShutdownWatch(trio.Event()), notifier)
    notifier.notify_ready()
    assert notifier.ready
    assert calls == ["ready"]


async def test_a_bare_actor_spec_runs_under_the_users_own_supervisor(
    actor_system: ActorSystem, log: Log, autojump_clock: Any
) -> None:
    spec = GenBackgroundService("bg", SlowToReady(log, delay=2.0)).actor_spec()
    ref = await actor_system.spawn(spec.start, name="bg")
    assert trio.current_time() == 2.0  # spawn returned once the task was ready
    assert [node.statistics.actor_type for node in actor_system.tree()] == [BackgroundTaskActor.__name__]
    with trio.fail_after(1):
        await ref.stop()  # the watch ends the task: no kill needed
    assert log[-1] == ("ready", "task")


# -- the `actors.background_service` helper -------------------------------------------------------------


def test_background_service_runs_any_task_with_the_trait() -> None:
    class DuckTyped:  # no base class: having `start` is enough
        async def start(self, shutdown: ShutdownWatch) -> None: ...

    task = DuckTyped()
    service = background_service("duck", task)
    assert isinstance(service, GenBackgroundService)
    assert service.task() is task


def test_background_service_keeps_the_load_balancer_service() -> None:
    lb = LoadBalancer.try_from_iter(["127.0.0.1:9001"])
    service = background_service("lb", lb)
    assert isinstance(service, LoadBalancerService)
    assert service.task() is lb


def test_background_service_names_what_a_task_lacks() -> None:
    with pytest.raises(
        TypeError, match=r"'nothing'.*neither start\(shutdown\) nor start_with_ready_notifier"
    ):
        background_service("nothing", object())


async def start_failure(server: Server) -> StartFailed:
    """The StartFailed `server.serve()` fails with (inside the actor system's exception group)."""
    # On virtual time, a server that comes up instead of failing is caught at once.
    with pytest.raises(ExceptionGroup) as info, trio.fail_after(60):
        await server.serve()
    [failure] = info.value.exceptions
    assert isinstance(failure, StartFailed)
    return failure


def _chain(exc: BaseException | None) -> str:
    parts = []
    while exc is not None:
        parts.append(str(exc))
        exc = exc.__cause__
    return " <- ".join(parts)
