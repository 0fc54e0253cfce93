"""The Pingora guide's examples, as ported to `examples/`, each run on port 0 and driven by httpx.

Effects of the `logging` phase are checked after `wait_all_tasks_blocked`: that phase runs after the response
has gone out, so the client may hold the answer before it ran; once every task is blocked, it has.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import sys
from pathlib import Path
from types import ModuleType

import h11
import httpx
import pytest
import trio
import trio.testing
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str, module_name: str) -> ModuleType:
    """Import `examples/<name>.py` as `module_name` (examples/ is not a package)."""
    spec = importlib.util.spec_from_file_location(module_name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


# The examples import their shared module by its plain name, as `python examples/x.py` would find it.
demo_upstreams = load("demo_upstreams", "demo_upstreams")
load_balancer = load("load_balancer", "guide_example_load_balancer")
gateway = load("gateway", "guide_example_gateway")
ctx_example = load("ctx", "guide_example_ctx")
failover = load("failover", "guide_example_failover")
modify_response = load("modify_response", "guide_example_modify_response")
multi_cluster = load("multi_cluster", "guide_example_multi_cluster")
rate_limiter = load("rate_limiter", "guide_example_rate_limiter")

SCRIPTS = [
    "load_balancer",
    "gateway",
    "ctx",
    "failover",
    "modify_response",
    "multi_cluster",
    "dns_discovery",
    "rate_limiter",
]


# -- load_balancer ---------------------------------------------------------------------------------------


async def test_load_balancer_takes_turns_and_sets_the_upstream_host(nursery: trio.Nursery) -> None:
    url, _ = await load_balancer.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        answers = [await client.get(f"/page/{n}") for n in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    # Round robin over the backends in their sorted order (by address): each takes its turn, twice.
    turns = [a.headers["x-upstream"] for a in answers]
    assert sorted(turns[:3]) == ["one", "three", "two"] and turns[3:] == turns[:3]
    # upstream_request_filter replaced the client's Host (the proxy's address) with the upstreams' name.
    assert {a.json()["host"] for a in answers} == {load_balancer.UPSTREAM_HOST}
    assert [a.json()["path"] for a in answers] == [f"/page/{n}" for n in range(6)]


def test_load_balancer_needs_an_upstream() -> None:
    with pytest.raises(ValueError, match="no upstreams"):
        load_balancer.load_balancer([])


# -- rate_limiter ----------------------------------------------------------------------------------------


class Clock:
    """A clock the test moves by hand, for the example's one-second windows."""

    now = 100.0

    def __call__(self) -> float:
        return self.now


async def test_rate_limiter_answers_429_past_one_request_per_second_per_appid(nursery: trio.Nursery) -> None:
    clock = Clock()
    url, app = await rate_limiter.start(nursery, rate=rate_limiter.Rate(1.0, clock=clock))
    async with httpx.AsyncClient(base_url=url) as client:
        first = await client.get("/", headers={"appid": "1"})
        second = await client.get("/", headers={"appid": "1"})
        other = await client.get("/", headers={"appid": "2"})
        anonymous = [(await client.get("/")).status_code for _ in range(3)]
        clock.now += 1.0  # the next window
        later = await client.get("/", headers={"appid": "1"})
    assert (first.status_code, other.status_code, later.status_code) == (200, 200, 200)
    assert anonymous == [200, 200, 200]
    assert second.status_code == 429
    limit_headers = {
        k: second.headers[k] for k in ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset")
    }
    assert limit_headers == {
        "x-rate-limit-limit": "1",
        "x-rate-limit-remaining": "0",
        "x-rate-limit-reset": "1",
    }
    assert second.headers["connection"] == "close"
    assert app.inflight.get("1") == 0  # every request's guard was let go


# -- gateway ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "upstream"),
    [
        ("/family/", "family"),
        ("/family/photos?size=2", "family"),
        ("/", "main"),
        ("/family", "main"),
        ("/familyfriends/", "main"),
    ],
)
async def test_gateway_routes_family_paths_to_their_own_upstream(
    nursery: trio.Nursery, path: str, upstream: str
) -> None:
    url, _ = await gateway.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["x-upstream"] == upstream
    assert response.json()["path"] == path.partition("?")[0]


async def test_gateway_replaces_server_and_removes_alt_svc(nursery: trio.Nursery) -> None:
    url, app = await gateway.start(nursery)
    host, port = app.default
    async with httpx.AsyncClient() as client:
        direct = await client.get(f"http://{host}:{port}/")
        proxied = await client.get(f"{url}/")
    # The upstream does send both headers, so their absence below is the filter's doing.
    assert direct.headers["server"] == "demo-upstream"
    assert "alt-svc" in direct.headers
    assert proxied.headers.get_list("server") == ["MyGateway"]
    assert "alt-svc" not in proxied.headers
    assert proxied.headers["x-upstream"] == "main"


@pytest.mark.parametrize(
    ("path", "headers", "status"),
    [
        ("/login", {}, 403),
        ("/login/admin", {}, 403),
        ("/login", {"Authorization": "wrong"}, 403),
        ("/login", {"Authorization": "password"}, 200),
        ("/other", {}, 200),
    ],
)
async def test_gateway_refuses_login_without_the_password(
    nursery: trio.Nursery, path: str, headers: dict[str, str], status: int
) -> None:
    url, _ = await gateway.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get(path, headers=headers)
    assert response.status_code == status
    if status == 403:
        # Answered by request_filter: no upstream saw the request.
        assert "x-upstream" not in response.headers
        assert response.content == b""
    else:
        assert response.headers["x-upstream"] == "main"


async def test_gateway_logs_and_counts_every_request(
    nursery: trio.Nursery, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="examples.gateway")
    url, app = await gateway.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        codes = [
            (await client.get("/")).status_code,
            (await client.get("/login")).status_code,
            (await client.get("/family/")).status_code,
        ]
    await trio.testing.wait_all_tasks_blocked()
    assert codes == [200, 403, 200]
    assert app.req_metric == 3
    authority = url.removeprefix("http://")
    lines = [r.getMessage() for r in caplog.records if "response code" in r.getMessage()]
    # Each summary names the request's id (a new one: the client sent none).
    expected = [("/", 200), ("/login", 403), ("/family/", 200)]
    assert len(lines) == len(expected)
    for line, (path, code) in zip(lines, expected, strict=True):
        pattern = rf"GET {re.escape(path)}, Host: {re.escape(authority)}, request id [0-9a-f]{{32}}"
        assert re.fullmatch(pattern + f" response code: {code}", line), line


# -- ctx -------------------------------------------------------------------------------------------------


async def test_ctx_routes_beta_users_and_counts_across_requests(nursery: trio.Nursery) -> None:
    url, app = await ctx_example.start(nursery)
    flags = [False, True, False, True, True]
    async with httpx.AsyncClient(base_url=url) as client:
        # One connection for all: each request starts from a fresh ctx, so a beta request does not make
        # the next one beta.
        answers = [await client.get("/", headers={"beta-flag": "1"} if beta else {}) for beta in flags]
    assert [a.headers["x-upstream"] for a in answers] == ["beta" if beta else "regular" for beta in flags]
    assert app.beta_counter == 3
    assert app.req_counter == 5


# -- failover --------------------------------------------------------------------------------------------


async def test_failover_retries_once_on_the_live_upstream(nursery: trio.Nursery) -> None:
    url, app = await failover.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/")
        # Nothing reaches an upstream before a connect failure, so a POST fails over just as well.
        posted = await client.post("/form", content=b"field=1")
    await trio.testing.wait_all_tasks_blocked()
    assert response.status_code == 200
    assert response.headers["x-upstream"] == "fallback"
    assert posted.status_code == 200
    assert (posted.json()["upstream"], posted.json()["method"], posted.json()["path"]) == (
        "fallback",
        "POST",
        "/form",
    )
    first = failover.MyCtx(tries=1, backoffs=[failover.BACKOFF_BASE])
    assert app.finished == [first, first]


async def test_failover_gives_up_with_502_after_one_retry(nursery: trio.Nursery) -> None:
    url, app = await failover.start(nursery, fallback_alive=False)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/")
    await trio.testing.wait_all_tasks_blocked()
    assert response.status_code == 502
    assert app.finished == [failover.MyCtx(tries=1, backoffs=[failover.BACKOFF_BASE])]


async def test_failover_backs_off_longer_on_each_retry(nursery: trio.Nursery) -> None:
    url, app = await failover.start(nursery, fallback_alive=False, max_tries=3)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/")
    await trio.testing.wait_all_tasks_blocked()
    assert response.status_code == 502
    [ctx] = app.finished
    assert ctx.tries == 3
    base = failover.BACKOFF_BASE
    assert ctx.backoffs == [base, 2 * base, 4 * base]


def test_failover_backoff_is_capped() -> None:
    assert failover.backoff(1) == failover.BACKOFF_BASE
    assert failover.backoff(100) == failover.BACKOFF_MAX
    assert failover.backoff(10_000) == failover.BACKOFF_MAX


# -- modify_response -------------------------------------------------------------------------------------


async def test_modify_response_turns_json_into_chunked_yaml(nursery: trio.Nursery) -> None:
    url, _ = await modify_response.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get("/doc")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in response.headers
    assert response.headers["content-type"] == "application/yaml"
    expected = {"upstream": "json", "method": "GET", "path": "/doc", "host": modify_response.UPSTREAM_HOST}
    # YAML is a superset of JSON: compare the text, so an unconverted body could not pass.
    assert response.text == yaml.safe_dump(expected, sort_keys=False)
    assert response.text.startswith("upstream: json\n")


async def test_modify_response_buffers_a_body_that_arrives_in_pieces(nursery: trio.Nursery) -> None:
    url, _ = await modify_response.start(nursery)
    # Several times the proxy's 64 KiB read size: the body filter sees many pieces before the end.
    pad = 300_000
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.get(f"/big?pad={pad}")
    assert response.status_code == 200
    assert response.headers["transfer-encoding"] == "chunked"
    document = yaml.safe_load(response.text)
    assert document == {
        "upstream": "json",
        "method": "GET",
        "path": "/big",
        "host": modify_response.UPSTREAM_HOST,
        "pad": "x" * pad,
    }
    assert not response.text.lstrip().startswith("{")


async def test_modify_response_head_has_no_body(nursery: trio.Nursery) -> None:
    url, _ = await modify_response.start(nursery)
    async with httpx.AsyncClient(base_url=url) as client:
        response = await client.head("/doc")
        after = await client.get("/doc")
    assert response.status_code == 200
    assert response.content == b""
    assert after.text.startswith("upstream: json\n")


# -- multi_cluster ---------------------------------------------------------------------------------------


async def test_multi_cluster_picks_the_cluster_then_takes_turns_inside_it(nursery: trio.Nursery) -> None:
    url, _ = await multi_cluster.start(nursery)
    requests = [
        ("/one/a", None, "one"),
        ("/", None, "two"),
        ("/one/b", None, "one"),
        ("/x", "one.demo.internal", "one"),
        ("/one/c", "two.demo.internal:8080", "two"),  # the Host names a cluster: it wins over the path
        ("/", "elsewhere.example", "two"),
        ("/one", None, "two"),  # not under /one/
        ("/ONE/", "ONE.demo.internal", "one"),  # host names are case-insensitive, paths are not
    ]
    async with httpx.AsyncClient(base_url=url) as client:
        seen = []
        for path, host, _ in requests:
            response = await client.get(path, headers={"Host": host} if host else {})
            assert response.status_code == 200
            assert response.json()["path"] == path
            seen.append(response.headers["x-upstream"])
    # Each request reached an upstream of the cluster it was routed to.
    assert [upstream.partition("-")[0] for upstream in seen] == [cluster for _, _, cluster in requests]
    # Round robin inside each cluster, over its backends in their sorted order (by address): each backend
    # takes its turn, then again, whatever the other cluster's traffic in between.
    for cluster, names in multi_cluster.CLUSTER_UPSTREAMS.items():
        turns = [upstream for upstream, (_, _, c) in zip(seen, requests, strict=True) if c == cluster]
        assert len(turns) == 4
        assert sorted(turns[:2]) == sorted(names) and turns[2:] == turns[:2]


def test_multi_cluster_needs_an_upstream_per_cluster() -> None:
    with pytest.raises(ValueError, match="at least one upstream"):
        multi_cluster.load_balancer([])


# -- running as scripts ----------------------------------------------------------------------------------


async def test_gateway_main_serves_until_sigterm(
    nursery: trio.Nursery, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(gateway, "LISTEN", "127.0.0.1:0")
    done = trio.Event()

    async def run_main() -> None:
        await gateway.main([])
        done.set()

    nursery.start_soon(run_main)
    await trio.testing.wait_all_tasks_blocked()
    printed = capsys.readouterr().out
    url = printed.split("curl -i ", 1)[1].split("/family/", 1)[0]
    async with httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/family/")).headers["x-upstream"] == "family"
    # SIGTERM drains the server; the demo upstreams stop with it and main returns.
    with trio.fail_after(10):
        os.kill(os.getpid(), signal.SIGTERM)
        await done.wait()


async def test_examples_run_as_scripts() -> None:
    """Each example imports as a script (with `examples/` as the first path entry) and parses its options."""
    results: dict[str, trio.CompletedProcess[bytes]] = {}

    async def run_script(name: str) -> None:
        results[name] = await trio.run_process(
            [sys.executable, str(EXAMPLES / f"{name}.py"), "--help"], capture_stdout=True, check=False
        )

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            for name in SCRIPTS:
                nursery.start_soon(run_script, name)
    for name in SCRIPTS:
        assert results[name].returncode == 0, (name, results[name])
        assert b"--conf" in results[name].stdout, name


def test_demo_upstream_record_names_itself_and_pads_on_request() -> None:
    request = h11.Request(method="GET", target=b"/a?b=1&pad=3", headers=[("Host", "h")])
    assert demo_upstreams.demo_record("x", request) == {
        "upstream": "x",
        "method": "GET",
        "path": "/a",
        "host": "h",
        "pad": "xxx",
    }
