"""One limit for the whole server and for many servers: `threads: 2` workers share the table in shared
memory; two `actorproxy -c FILE` processes share Redis; Redis stopped mid-test follows `on_redis_error`.

Limits here are 1/min with a burst of N, so what the test sees is the burst being shared: over a few
seconds the rate adds at most one more request (the stated tolerance).
"""

from __future__ import annotations

import re
import textwrap
from collections import Counter
from pathlib import Path

import httpx
import trio
from processes import START_TIMEOUT, accepted_by, actorproxy_process, has
from upstream import Upstream

from actorproxy.testing import RedisServer

# Connections to open at most while waiting for both workers to have accepted some.
MAX_CONNECTIONS = 200
# A Redis back after a restart is used again within the limiter's retry interval (1 s); generous.
RECONNECT_TIMEOUT = 15.0


def conf(tmp_path: Path, upstream: Upstream, routes: str, top: str = "") -> Path:
    path = tmp_path / f"proxy-{len(list(tmp_path.glob('proxy-*.yaml')))}.yaml"
    text = textwrap.dedent(
        f"""
        upgrade_sock: {tmp_path}/upgrade.sock
        grace_period_seconds: 1
        services:
          - name: edge
            listeners: [{{address: 127.0.0.1:0}}]
            routes:
        """
    )
    text += textwrap.indent(textwrap.dedent(routes), " " * 6)
    text += f'upstreams:\n  - {{name: app, discovery: {{static: ["127.0.0.1:{upstream.port}"]}}}}\n' + top
    path.write_text(text)
    return path


async def test_workers_share_one_limit(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path
) -> None:
    path = conf(
        tmp_path,
        upstreams[0],
        "- {upstream: app, rate_limit: {key: route, rate: 1/min, burst: 5}}\n",
        top="threads: 2\n",
    )
    async with actorproxy_process(nursery, path) as proxy:
        with trio.fail_after(START_TIMEOUT):
            for index in range(2):
                await proxy.stderr.wait_for(has(f"worker {index} started"))
            log = "\n".join(proxy.stderr.lines)
            pids = [int(pid) for pid in re.findall(r"worker \d started \(pid (\d+)\)", log)]
            for pid in pids:
                await proxy.stderr.wait_for(has(f"serving (pid {pid})"))
        port = int(proxy.url.rsplit(":", 1)[1])
        # Connections held open, one request each: 20, or more until the kernel has handed some to both
        # workers.
        streams: list[trio.SocketStream] = []
        statuses = []
        held: Counter[int] = Counter()
        while len(streams) < MAX_CONNECTIONS and (len(streams) < 20 or not all(held[pid] for pid in pids)):
            stream = await trio.open_tcp_stream("127.0.0.1", port)
            streams.append(stream)
            await stream.send_all(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await stream.receive_some(65536)
            statuses.append(int(head.split(b" ", 2)[1]))
            held = accepted_by(pids, [s.socket.getsockname()[1] for s in streams])
        for stream in streams:
            await stream.aclose()
    assert all(held[pid] for pid in pids), held  # both workers served...
    assert statuses.count(200) in (5, 6)  # ...and together admitted the burst once (+1: the rate), not twice


REDIS_ROUTES = """\
- path_prefix: /allow
  upstream: app
  rate_limit: {key: 'header:x-api-key', rate: 1/min, burst: 10, backend: redis}
- path_prefix: /deny
  upstream: app
  rate_limit: {key: 'header:x-api-key', rate: 1/min, burst: 10, backend: redis,
               on_redis_error: deny, status: 503}
"""


async def test_two_proxies_share_a_limit_in_redis_and_follow_on_redis_error_when_it_stops(
    nursery: trio.Nursery, upstreams: list[Upstream], tmp_path: Path, own_redis: RedisServer
) -> None:
    redis = f"redis: {{url: '{own_redis.url}', timeout: 0.25}}\n"
    one = conf(tmp_path, upstreams[0], REDIS_ROUTES, top=redis)
    two = conf(tmp_path, upstreams[0], REDIS_ROUTES, top=redis)
    async with (
        actorproxy_process(nursery, one) as first,
        actorproxy_process(nursery, two) as second,
        httpx.AsyncClient() as client,
    ):

        async def get(n: int, path: str, key: str = "k") -> int:
            url = (first if n % 2 else second).url
            return (await client.get(url + path, headers={"x-api-key": key})).status_code

        statuses = Counter([await get(n, "/allow/x") for n in range(30)])
        # Exactly the burst, give or take the one request the rate adds per minute.
        assert statuses[200] in (10, 11) and statuses[429] == 30 - statuses[200]
        assert await get(0, "/allow/x", key="other") == 200

        await trio.to_thread.run_sync(own_redis.stop)
        allowed = [await get(n, "/allow/x") for n in range(20)]
        denied = [await get(n, "/deny/x") for n in range(20)]
        assert allowed == [200] * 20  # on_redis_error: allow, no request failed
        assert denied == [503] * 20  # on_redis_error: deny, with the route's status
        for proxy in (first, second):
            warnings = [line for line in proxy.stderr.lines if "unavailable" in line]
            assert 1 <= len(warnings) <= 2  # rate-limited: not one line per request

        await trio.to_thread.run_sync(own_redis.start)  # empty: every key has its whole burst again
        with trio.fail_after(RECONNECT_TIMEOUT):
            while 503 in (await get(0, "/deny/x", key="probe"), await get(1, "/deny/x", key="probe")):  # noqa: ASYNC110
                await trio.sleep(0.1)
        # Both proxies count in Redis again, by themselves.
        after = Counter([await get(n, "/deny/x", key="again") for n in range(30)])
        assert after[200] in (10, 11) and after[503] == 30 - after[200]
