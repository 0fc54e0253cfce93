"""`Server.clusters()` (load balancer services and cluster sources) and what `Server.reload()` returns."""

from __future__ import annotations

from actorproxy.lb import LoadBalancer
from actorproxy.server import ReloadOutcome, Server, background_service


def test_clusters_are_the_load_balancer_services_and_the_cluster_sources() -> None:
    server = Server()
    mine = background_service("mine", LoadBalancer.try_from_iter(["127.0.0.1:9001"]))
    declared = background_service("upstream api", LoadBalancer.try_from_iter(["127.0.0.1:9002"]))
    server.add_service(mine)
    server.add_service(declared)
    current = LoadBalancer.try_from_iter(["127.0.0.1:9003"])
    # The source reports the cluster by its own name, and the service it started with is no longer listed.
    server.add_cluster_source(lambda: {"api": current}, replaces=[declared])
    assert server.clusters() == {"mine": mine.lb, "api": current}


async def test_reload_says_what_each_hook_did() -> None:
    server = Server()
    assert await server.reload() == []

    async def quiet() -> None:
        return None

    async def failing() -> None:
        raise RuntimeError("cannot read the file")

    async def reporting() -> ReloadOutcome:
        return ReloadOutcome(hook="mine", ok=True, message="reloaded", details={"added": ["x"]})

    for hook in (quiet, failing, reporting):
        server.on_reload(hook)
    done = await server.reload()
    assert [(o.ok, o.message) for o in done] == [
        (True, "done"),
        (False, "RuntimeError: cannot read the file"),
        (True, "reloaded"),
    ]
    assert done[0].hook.endswith("quiet")
    assert done[2].details == {"added": ["x"]}
