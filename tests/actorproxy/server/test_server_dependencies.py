"""`Server` service dependencies (Pingora 0.6's `ServiceHandle.add_dependency`): start order, errors, drain.

The services are small recording actors that take a while to start, on virtual time, so each log entry says
when a service began starting, when it was ready and when it stopped.
"""

from __future__ import annotations

import signal
from typing import Any

import pytest
import trio
import trio.testing
from helpers import Log

from actorproxy.server import Server, ServiceDependencyError, ServiceHandle
from actors import Actor, ActorSystem, ExitReason
from supervisors import ChildSpec


class Recorder(Actor):
    """Starts in `start_delay` seconds; records the start's beginning and end, and the stop."""

    def __init__(self, name: str, log: Log, start_delay: float) -> None:
        self.name = name
        self.log = log
        self.start_delay = start_delay

    async def on_start(self) -> None:
        self.log.add("starting", self.name)
        await trio.sleep(self.start_delay)
        self.log.add("ready", self.name)

    async def on_stop(self, reason: ExitReason) -> None:
        self.log.add("stop", self.name)


class FakeService:
    def __init__(self, name: str, log: Log, start_delay: float = 1.0) -> None:
        self.name = name
        self.log = log
        self.start_delay = start_delay

    def child_spec(self) -> ChildSpec:
        return ChildSpec(id=self.name, start=lambda: Recorder(self.name, self.log, self.start_delay))


def started(log: Log) -> list[str]:
    return [entry[1] for entry in log if entry[0] == "starting"]


async def serve_then_sigterm(server: Server) -> None:
    """Serve until every service is ready, then drain with SIGTERM, as a real server is stopped."""
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        signal.raise_signal(signal.SIGTERM)


async def test_without_dependencies_services_start_in_add_order(log: Log, autojump_clock: Any) -> None:
    server = Server()
    for name in ("a", "b", "c"):
        server.add_service(FakeService(name, log))
    await serve_then_sigterm(server)
    assert started(log) == ["a", "b", "c"]


async def test_dependencies_decide_the_order_whatever_the_add_order(log: Log, autojump_clock: Any) -> None:
    server = Server()
    proxy = FakeService("proxy", log)
    lb = FakeService("lb", log, start_delay=2.0)
    discovery = FakeService("discovery", log, start_delay=3.0)
    metrics = FakeService("metrics", log)
    proxy_handle = server.add_service(proxy)
    server.add_service(metrics)
    lb_handle = server.add_service(lb, depends_on=[discovery])
    server.add_service(discovery)
    proxy_handle.add_dependency(lb_handle)

    assert [s.name for s in server.start_order()] == ["metrics", "discovery", "lb", "proxy"]
    async with trio.open_nursery() as nursery:
        await nursery.start(server.serve)
        # Each service began starting only once what it depends on was ready.
        entries = dict(zip(log, log.times, strict=True))
        assert entries[("ready", "discovery")] == 4.0
        assert entries[("starting", "lb")] == 4.0
        assert entries[("ready", "lb")] == 6.0
        assert entries[("starting", "proxy")] == 6.0
        nursery.cancel_scope.cancel()


async def test_a_service_may_depend_on_several(log: Log, autojump_clock: Any) -> None:
    server = Server()
    app = server.add_service(FakeService("app", log))
    db = server.add_service(FakeService("db", log))
    cache = server.add_service(FakeService("cache", log))
    app.add_dependencies([cache, db.service])
    app.add_dependency(db)  # declaring one twice changes nothing
    assert [d.name for d in app.dependencies] == ["cache", "db"]
    assert [s.name for s in server.start_order()] == ["db", "cache", "app"]


async def test_shutdown_stops_dependents_first(log: Log, autojump_clock: Any) -> None:
    server = Server()
    proxy = server.add_service(FakeService("proxy", log))
    lb = server.add_service(FakeService("lb", log))
    bg = server.add_service(FakeService("bg", log))
    proxy.add_dependency(lb)
    lb.add_dependency(bg)
    await serve_then_sigterm(server)
    assert started(log) == ["bg", "lb", "proxy"]
    assert [entry[1] for entry in log if entry[0] == "stop"] == ["proxy", "lb", "bg"]


async def test_a_cycle_is_refused_naming_the_services(log: Log) -> None:
    server = Server()
    a = server.add_service(FakeService("a", log))
    b = server.add_service(FakeService("b", log))
    c = server.add_service(FakeService("c", log))
    server.add_service(FakeService("free", log))
    a.add_dependency(b)
    b.add_dependency(c)
    c.add_dependency(a)
    with pytest.raises(ServiceDependencyError, match="service dependency cycle: 'a' -> 'b' -> 'c' -> 'a'"):
        await server.serve()
    assert log == []  # refused before anything started
    assert server.system is None


async def test_a_dependency_never_added_is_refused(log: Log) -> None:
    server = Server()
    ghost = FakeService("ghost", log)
    server.add_service(FakeService("proxy", log), depends_on=[ghost])
    with pytest.raises(
        ServiceDependencyError,
        match="service 'proxy' depends on 'ghost', which was never added to the server",
    ):
        await server.serve()
    assert log == []


def test_a_service_cannot_depend_on_itself(log: Log) -> None:
    server = Server()
    proxy = server.add_service(FakeService("proxy", log))
    with pytest.raises(ServiceDependencyError, match="service 'proxy' cannot depend on itself"):
        proxy.add_dependency(proxy)


def test_a_handle_of_another_server_is_refused(log: Log) -> None:
    other = Server().add_service(FakeService("lb", log))
    proxy = Server().add_service(FakeService("proxy", log))
    with pytest.raises(ServiceDependencyError, match="belongs to another server"):
        proxy.add_dependency(other)


def test_adding_a_service_twice_is_refused(log: Log) -> None:
    server = Server()
    service = FakeService("proxy", log)
    handle = server.add_service(service)
    assert isinstance(handle, ServiceHandle)
    assert handle.service is service
    with pytest.raises(ValueError, match="'proxy' was added to the server already"):
        server.add_service(service)


async def test_serve_reports_the_system_once_every_service_is_ready(log: Log, autojump_clock: Any) -> None:
    server = Server()
    server.add_services([FakeService("a", log, start_delay=2.0), FakeService("b", log, start_delay=3.0)])
    async with trio.open_nursery() as nursery:
        system: ActorSystem = await nursery.start(server.serve)
        assert trio.current_time() == 5.0
        assert [ref.path for ref in system.top_level()] == ["/a", "/b"]
        nursery.cancel_scope.cancel()
