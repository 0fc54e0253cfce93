"""`run:` sites' processes, for real: one that exits at once is restarted with back-off and its site
answers 503 naming the log; one that ignores SIGTERM is killed after the grace; output goes to the log."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import trio

from actorproxy.config import ServerConf, SitesServerConf
from actorproxy.sites import GetSites, SitesProxy, SitesRuntime, SitesService
from actors import ActorSystem, TreeNode
from supervisors import terminate_child

# Seconds within which a restart (back-off 0.1 s, then 0.2, ...) or a kill must be seen.
CHANGE_TIMEOUT = 20
POLL_INTERVAL = 0.05


async def start_sites(system: ActorSystem, tmp_path: Path, yaml: str, **settings: object) -> SitesRuntime:
    conf = ServerConf.from_yaml(yaml)
    sites_settings = SitesServerConf(
        state_dir="state",
        restart_min_interval=0.1,
        restart_max_interval=0.2,
        **settings,  # type: ignore[arg-type]
    )
    runtime = SitesRuntime(conf, tmp_path, "test", sites_settings, SitesProxy(start_timeout=1))
    service = SitesService(runtime)
    await system.spawn(service.child_spec().start, name=service.name)
    return runtime


def _walk(nodes: tuple[TreeNode, ...]) -> list[TreeNode]:
    return [found for node in nodes for found in (node, *_walk(node.children))]


async def rows(system: ActorSystem) -> list[dict[str, object]]:
    table = system.whereis("sites/table")
    assert table is not None
    result: list[dict[str, object]] = await table.ask(GetSites())
    return result


async def test_a_process_that_exits_is_restarted_and_its_site_answers_503(
    system: ActorSystem, start_proxy: object, tmp_path: Path
) -> None:
    runtime = await start_sites(
        system, tmp_path, "sites: [{name: dies.test, run: 'echo starting {port}; exit 3'}]"
    )
    # The status and the actor tree (the site's process actor under the processes supervisor, whenever it
    # is not waiting out its back-off) both count the restarts.
    with trio.fail_after(CHANGE_TIMEOUT):
        while True:
            [row] = await rows(system)
            nodes = [n for n in _walk(system.tree()) if n.statistics.path == "/sites/processes/dies.test"]
            if int(row["restarts"]) >= 2 and nodes and nodes[0].statistics.restarts >= 2:  # type: ignore[call-overload]
                break
            await trio.sleep(POLL_INTERVAL)
    assert "exited with status 3" in str(row["last_exit"])
    log = Path(str(row["log"]))
    assert (await trio.Path(log).read_text()).count("starting") >= 2
    url, _ = await start_proxy(runtime.app)  # type: ignore[operator]
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url, headers={"host": "dies.test"})
    assert response.status_code == 503 and str(log) in response.text


async def test_a_process_that_ignores_sigterm_is_killed_after_the_grace(
    system: ActorSystem, tmp_path: Path
) -> None:
    command = "trap '' TERM; exec python3 -m http.server {port} --bind 127.0.0.1"
    await start_sites(
        system, tmp_path, f'sites: [{{name: stubborn.test, run: "{command}"}}]', stop_timeout=0.5
    )
    with trio.fail_after(CHANGE_TIMEOUT):
        while True:
            [row] = await rows(system)
            if row["state"] == "running":
                break
            await trio.sleep(POLL_INTERVAL)
    pid = int(row["pid"])  # type: ignore[call-overload]
    processes = system.whereis("sites/processes")
    assert processes is not None
    started = trio.current_time()
    await terminate_child(processes, "stubborn.test", timeout=CHANGE_TIMEOUT)
    assert trio.current_time() - started >= 0.5  # it waited out the grace: SIGTERM was ignored
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"process {pid} is still running")
