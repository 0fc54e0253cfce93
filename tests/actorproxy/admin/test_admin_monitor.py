"""The admin monitor on virtual time: counter samples every second and the rates between them, supervisor
events recorded at once, and the versions the WebSockets wait on."""

from __future__ import annotations

from typing import Any

import trio

from actorproxy.admin import AdminMonitorActor, AdminState, History
from actorproxy.proxy import ProxyCounters
from actors import ActorSystem, ExitReason
from supervisors import ChildCrashed, ChildStarted


def test_history_turns_samples_into_rates_and_forgets_services_that_went() -> None:
    history = History(length=3)
    counters = ProxyCounters()
    for second, requests in enumerate((0, 10, 30, 60)):
        counters.requests = requests
        history.record(float(second), [("edge", counters)])
    # Three samples kept (1, 2, 3): two points between them.
    assert [(p["t"], p["rps"]) for p in history.points()["edge"]] == [(2.0, 20.0), (3.0, 30.0)]
    assert [p["t"] for p in history.points(since=2.0)["edge"]] == [3.0]
    assert history.latest == 3.0
    history.record(4.0, [])
    assert history.points() == {}


async def test_the_monitor_samples_every_second_and_publishes_events_at_once(
    actor_system: ActorSystem, autojump_clock: Any
) -> None:
    state = AdminState()
    counters = ProxyCounters()
    await actor_system.spawn(lambda: AdminMonitorActor(state, lambda: [("edge", counters)]), name="monitor")
    start = trio.current_time()
    await trio.sleep(0.5)  # between samples, so none ties with a change
    for _ in range(3):
        counters.requests += 5
        counters.count_response(500)
        await trio.sleep(1)
    points = state.history.points()["edge"]
    assert [round(p["t"] - start) for p in points] == [1, 2, 3]
    assert [(p["rps"], p["errors_per_second"]) for p in points] == [(5.0, 1.0)] * 3

    version = state.version
    actor_system.events.publish(ChildStarted("/edge/connections", "conn-1", actor_system.whereis("monitor")))  # type: ignore[arg-type]
    actor_system.events.publish(ChildCrashed("/upstream api", "lb", ExitReason.crashed(ValueError("boom"))))
    with trio.fail_after(0.01):  # no sample is due: the crash alone is news
        await state.wait_changed(version, timeout=10)
    # Connection starts are not subscribed to: only the crash is in the log.
    assert [(e["event"], e["path"]) for e in state.events] == [("crashed", "/upstream api/lb")]


async def test_waiting_for_a_change_gives_up_after_the_timeout(autojump_clock: Any) -> None:
    state = AdminState()
    state.publish()
    await state.wait_changed(0, timeout=5)  # the version moved on already: at once
    assert trio.current_time() == 0
    await state.wait_changed(state.version, timeout=5)
    assert trio.current_time() == 5
    state.close()
    assert state.closing
