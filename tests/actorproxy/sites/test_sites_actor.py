"""The sites actor on a clock the test moves: a directory added to a park folder becomes a site (route, DNS
name) at the next look, one removed stops being one, and the status file follows."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import trio
import trio.testing

from actorproxy.config import ParkConf, ServerConf, SitesServerConf
from actorproxy.dns import LocalNames, NameKind
from actorproxy.http import RequestHeader
from actorproxy.sites import GetSites, SitesProxy, SitesRuntime, SitesService
from actors import open_actor_system

INTERVAL = 2.0


def host(name: str) -> RequestHeader:
    return RequestHeader.build("GET", "/", [("Host", name)])


async def look(clock: trio.testing.MockClock) -> None:
    """Move past the next look at the park folder and let it finish (it reads the folder in a thread)."""
    clock.jump(INTERVAL)
    await trio.testing.wait_all_tasks_blocked()


async def test_park_folders_are_read_while_the_server_runs(
    tmp_path: Path, mock_clock: trio.testing.MockClock
) -> None:
    # A clock that moves only when the test jumps it: the folder is read in a worker thread, which
    # autojump would take for idleness.
    park = tmp_path / "park"
    (park / "one").mkdir(parents=True)
    conf = ServerConf(park=(ParkConf(path="park"),))
    settings = SitesServerConf(park_interval=INTERVAL, state_dir="state")
    names = LocalNames(["test"])
    app = SitesProxy(start_timeout=1)
    runtime = SitesRuntime(conf, tmp_path, "test", settings, app, names.publish)
    service = SitesService(runtime)
    async with open_actor_system("sites-test") as system:
        await system.spawn(service.child_spec().start, name=service.name)
        table = system.whereis("sites/table")
        assert table is not None
        assert [row["name"] for row in await table.ask(GetSites())] == ["one.test"]
        assert names.kind("one.test") is NameKind.SITE and app.routing.match(host("one.test")) is not None
        (park / "two").mkdir()
        await look(mock_clock)
        assert [row["name"] for row in await table.ask(GetSites())] == ["one.test", "two.test"]
        assert names.kind("two.test") is NameKind.SITE
        assert app.routing.match(host("two.test")) is not None
        status = json.loads((tmp_path / "state" / "sites.json").read_text())
        assert [row["name"] for row in status["sites"]] == ["one.test", "two.test"]
        shutil.rmtree(park / "one")
        await look(mock_clock)
        assert [row["name"] for row in await table.ask(GetSites())] == ["two.test"]
        assert names.kind("one.test") is NameKind.MISSING and app.routing.match(host("one.test")) is None
