"""The DNS discovery example on port 0, driven by httpx: the SRV records' upstreams take turns, and an
upstream removed from DNS gets no more requests once the load balancer has asked again.

Real time and real sockets (a health check is a real connect); the wait for the change is the DNS server's
report of the next query, not a sleep.
"""

from __future__ import annotations

import importlib.util
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType

import httpx
import trio
import trio.testing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    """Import `examples/<name>.py` under its plain name, as `python examples/x.py` would find it."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "")) == EXAMPLES / f"{name}.py":
        return loaded
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# The example imports these two by their plain names.
load("demo_upstreams")
load("load_balancer")
dns_discovery = load("dns_discovery")


async def upstreams_reached(client: httpx.AsyncClient, requests: int) -> Counter[str]:
    seen: Counter[str] = Counter()
    for n in range(requests):
        response = await client.get(f"/page/{n}")
        assert response.status_code == 200
        seen[response.headers["x-upstream"]] += 1
    return seen


async def test_the_srv_records_upstreams_take_turns_and_a_removed_one_gets_nothing(
    nursery: trio.Nursery,
) -> None:
    url, app, zone = await dns_discovery.start(nursery)
    lb = app.upstreams
    assert {backend.addr for backend in lb.snapshot.backends} == {
        ("127.0.0.1", port) for port in zone.ports.values()
    }
    async with httpx.AsyncClient(base_url=url) as client:
        assert await upstreams_reached(client, 6) == {"one": 2, "two": 2, "three": 2}

        zone.publish(["one", "three"])
        # The next SRV query is answered from the changed zone; once every task is blocked again, the load
        # balancer has applied the answer.
        with trio.fail_after(10):
            await zone.dns.wait_for_query(dns_discovery.SERVICE, "SRV")
        await trio.testing.wait_all_tasks_blocked()
        assert {backend.addr for backend in lb.snapshot.backends} == {
            ("127.0.0.1", zone.ports["one"]),
            ("127.0.0.1", zone.ports["three"]),
        }
        assert await upstreams_reached(client, 6) == {"one": 3, "three": 3}

        zone.publish()
        with trio.fail_after(10):
            await zone.dns.wait_for_query(dns_discovery.SERVICE, "SRV")
        await trio.testing.wait_all_tasks_blocked()
        assert set(await upstreams_reached(client, 6)) == {"one", "two", "three"}


async def test_the_example_runs_as_a_script() -> None:
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, str(EXAMPLES / "dns_discovery.py"), "--help"], capture_stdout=True, check=False
        )
    assert result.returncode == 0, result
    assert b"--conf" in result.stdout
