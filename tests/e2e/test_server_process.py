"""`Server.run_forever` in a real process: it serves, and stops cleanly on SIGINT and SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest
import trio
from upstream import Upstream

SCRIPT = textwrap.dedent(
    """
    import sys
    from actorproxy import HttpPeer, ProxyHttp, Server, http_proxy_service

    class App(ProxyHttp):
        async def upstream_peer(self, session, ctx):
            return HttpPeer(("127.0.0.1", int(sys.argv[1])), tls=False, sni="")

    server = Server.from_args([])
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, App())
    proxy.add_uds(sys.argv[2])
    server.add_service(proxy)
    print("serving", flush=True)
    server.run_forever()
    print("stopped cleanly", flush=True)
    """
)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_run_forever_serves_then_stops_cleanly(
    signum: int, upstreams: list[Upstream], tmp_path: Path
) -> None:
    socket_path = str(tmp_path / "proxy.sock")
    process = await trio.lowlevel.open_process(
        [sys.executable, "-c", SCRIPT, str(upstreams[0].port), socket_path],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout is not None
        line = await process.stdout.receive_some(100)
        assert b"serving" in line
        transport = httpx.AsyncHTTPTransport(uds=socket_path, retries=50)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            with trio.fail_after(10):
                while True:  # the listener binds right after "serving" is printed
                    try:
                        response = await client.get("/echo")
                        break
                    except httpx.ConnectError:
                        await trio.sleep(0.05)
        assert response.status_code == 200
        process.send_signal(signum)
        with trio.fail_after(10):
            code = await process.wait()
        remaining = await process.stdout.receive_some(1000)
        assert code == 0
        assert b"stopped cleanly" in remaining
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
