"""A proxy server process for the lifecycle tests, driven like a user's script: `Server.from_args()`.

The upstream port comes from UPSTREAM_PORT and the listen address from LISTEN (default 127.0.0.1:0); H2C=1
lets the listener take HTTP/2 with prior knowledge too. Once its
listeners are bound it prints one JSON line: its pid and the bound addresses. Answers carry `x-worker-pid`.
A reload prints "reloaded <pid>".
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from actorproxy.http import ResponseHeader
from actorproxy.proxy import HttpPeer, ProxyHttp, Session, http_proxy_service
from actorproxy.server import Server


def say(line: object) -> None:
    """Print `line` in one write: the worker processes of a server share the pipe, and print's separate
    write of the newline could interleave with another process's line."""
    os.write(1, f"{line}\n".encode())


class App(ProxyHttp):
    async def upstream_peer(self, session: Session, ctx: Any) -> HttpPeer:
        return HttpPeer(("127.0.0.1", int(os.environ["UPSTREAM_PORT"])), tls=False, sni="")

    async def response_filter(self, session: Session, upstream_response: ResponseHeader, ctx: Any) -> None:
        upstream_response.insert_header("x-worker-pid", str(os.getpid()))


def main() -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(process)d %(name)s %(message)s")
    server = Server.from_args()
    server.bootstrap()
    proxy = http_proxy_service(server.configuration, App())
    proxy.add_tcp(os.environ.get("LISTEN", "127.0.0.1:0"), h2c=os.environ.get("H2C") == "1")
    server.add_service(proxy)

    async def reloaded() -> None:
        say(f"reloaded {os.getpid()}")

    server.on_reload(reloaded)
    addresses = server.bind_listeners()
    say(json.dumps({"pid": os.getpid(), "addresses": addresses}))
    server.run_forever()
    say("stopped cleanly")


if __name__ == "__main__":
    main()
