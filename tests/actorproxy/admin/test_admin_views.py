"""The admin API's JSON built from live objects: tree nodes, clusters, counters, events, the configuration;
and the latency quantiles read from a request-duration histogram."""

from __future__ import annotations

import attrs
import pytest

from actorproxy.admin import (
    MAX_CHILDREN,
    LatencySample,
    clusters_view,
    config_view,
    counters_view,
    event_view,
    find_backend,
    latency_between,
    node_view,
)
from actorproxy.config import ServerConf
from actorproxy.lb import Backend, LoadBalancer
from actorproxy.proxy import ProxyCounters
from actors import ActorStatistics, ExitReason, TreeNode
from supervisors import ChildCrashed, ChildRestarted


def stats(path: str, **changes: object) -> ActorStatistics:
    base = ActorStatistics(
        path=path,
        actor_type="Worker",
        state="running",
        mailbox_size=2,
        mailbox_peak=5,
        mailbox_capacity=1024,
        blocked_senders=0,
        processed=7,
        restarts=0,
        last_exit_reason=None,
        started_at=10.0,
    )
    return attrs.evolve(base, **changes)


def test_a_node_has_name_kind_state_uptime_restarts_mailbox_and_children() -> None:
    child = TreeNode(
        statistics=stats("/svc/w", restarts=2, last_exit_reason=ExitReason.crashed(ValueError("x")))
    )
    view = node_view(TreeNode(statistics=stats("/svc"), children=(child,)), now=25.5)
    assert (view["name"], view["path"], view["kind"], view["state"]) == ("svc", "/svc", "Worker", "running")
    assert (view["uptime"], view["restarts"], view["mailbox"], view["mailbox_capacity"]) == (15.5, 0, 2, 1024)
    [w] = view["children"]
    assert (w["name"], w["restarts"], w["last_exit_crashed"]) == ("w", 2, True)
    assert w["last_exit"].startswith("crashed")


def test_an_actor_starting_again_after_a_crash_is_restarting_and_has_no_uptime_yet() -> None:
    view = node_view(TreeNode(statistics=stats("/a", state="starting", restarts=1, started_at=None)), now=3.0)
    assert (view["state"], view["uptime"]) == ("restarting", None)
    first = node_view(TreeNode(statistics=stats("/a", state="starting", started_at=None)), now=3.0)
    assert first["state"] == "starting"


def test_a_busy_supervisor_lists_its_first_children_and_counts_the_rest() -> None:
    children = tuple(TreeNode(statistics=stats(f"/c/conn-{n}")) for n in range(MAX_CHILDREN + 7))
    view = node_view(TreeNode(statistics=stats("/c"), children=children), now=11.0)
    assert len(view["children"]) == MAX_CHILDREN
    assert view["hidden_children"] == 7


def test_clusters_show_each_backend_health_and_find_backend_matches_the_listed_address() -> None:
    lb = LoadBalancer.try_from_iter(["127.0.0.1:9002", "127.0.0.1:9001"])
    lb.backends().apply(frozenset([Backend("127.0.0.1:9001"), Backend("127.0.0.1:9002")]), {})
    backend = find_backend(lb, "127.0.0.1:9002")
    assert backend == Backend("127.0.0.1:9002")
    assert find_backend(lb, "127.0.0.1:9003") is None
    lb.set_enable(backend, False)
    [view] = clusters_view({"api": lb})
    assert (view["name"], view["ready"], view["health_check"]) == ("api", 1, None)
    assert [(b["address"], b["enabled"], b["ready"]) for b in view["backends"]] == [
        ("127.0.0.1:9001", True, True),
        ("127.0.0.1:9002", False, False),
    ]


@attrs.define
class Histogram:
    bounds: list[float]
    counts: list[int]
    sum: float = 0.0
    count: int = 0


@attrs.define
class TimedCounters(ProxyCounters):
    """The service counters once the metrics keep a request-duration histogram."""

    request_duration: Histogram = attrs.Factory(lambda: Histogram([0.01, 0.1, 1.0], [0, 0, 0, 0]))


def test_counters_carry_the_latency_histogram() -> None:
    plain = ProxyCounters(requests=3)
    plain.count_response(200)
    plain.count_response(503)
    view = counters_view("edge", plain)
    assert view["responses"] == {"2xx": 1, "5xx": 1}
    assert view["latency"] is not None and view["latency"]["count"] == 0  # nothing timed yet
    timed = TimedCounters(requests=1)
    timed.request_duration = Histogram([0.01, 0.1], [1, 0, 0], sum=0.005, count=1)
    assert counters_view("edge", timed)["latency"] == {
        "bounds": [0.01, 0.1],
        "counts": [1, 0, 0],
        "sum": 0.005,
        "count": 1,
    }


def test_latency_quantiles_are_interpolated_in_their_bucket() -> None:
    before = LatencySample((0.01, 0.1, 1.0), (5, 0, 0, 0), 0.02, 5)
    # 100 more requests: 50 under 10 ms, 40 in (10, 100] ms, 10 in (100 ms, 1 s].
    after = LatencySample((0.01, 0.1, 1.0), (55, 40, 10, 0), 4.02, 105)
    latency = latency_between(before, after)
    assert latency is not None
    assert latency["mean"] == pytest.approx(0.04)
    assert latency["p50"] == pytest.approx(0.01)
    assert latency["p90"] == pytest.approx(0.1)
    assert latency["p99"] == pytest.approx(0.1 + 0.9 * 0.9)


def test_latency_of_the_slowest_bucket_is_its_lower_bound_and_nothing_counted_is_none() -> None:
    before = LatencySample((0.1, float("inf")), (0, 0), 0.0, 0)
    after = LatencySample((0.1, float("inf")), (0, 4), 8.0, 4)
    latency = latency_between(before, after)
    assert latency is not None and latency["p50"] == 0.1 and latency["mean"] == 2.0
    assert latency_between(after, after) is None
    assert latency_between(None, after) is None
    assert latency_between(before, LatencySample((0.2, float("inf")), (0, 4), 8.0, 4)) is None


def test_events_say_what_happened_where() -> None:
    crashed = event_view(ChildCrashed("/upstream api", "lb", ExitReason.crashed(KeyError("k"))), 12.0)
    assert (crashed["event"], crashed["level"], crashed["path"], crashed["t"]) == (
        "crashed",
        "error",
        "/upstream api/lb",
        12.0,
    )
    assert "KeyError" in crashed["detail"]


def test_the_configuration_is_redacted_including_a_literal_admin_token() -> None:
    token = "literal-token-in-the-file-0001"
    conf = ServerConf.from_mapping({"admin": {"listen": "0.0.0.0:6193", "token": token}})
    view = config_view(conf)
    assert view["admin"] == {"listen": "0.0.0.0:6193", "token": "••••"}
    assert token not in str(view)
    assert config_view(ServerConf())["admin"] is None


def test_restarted_events_count_the_restarts() -> None:
    class Ref:
        path = "/a/b"

    view = event_view(ChildRestarted("/a", "b", Ref(), 3), 1.0)  # type: ignore[arg-type]
    assert (view["event"], view["detail"]) == ("restarted", "restart #3")
