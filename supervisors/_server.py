"""`Server`: the root of a proxy process; runs every service's subtree and drains them on signals."""

from __future__ import annotations

import argparse
import logging
import signal
from collections.abc import Sequence
from typing import Protocol

import trio

from actorproxy import ActorSystem, ServerConf, open_actor_system

from ._spec import ChildSpec

__all__ = ["Server", "Service"]

logger = logging.getLogger("actorproxy.server")


class Service(Protocol):
    """Anything the server can run: it names itself and describes its subtree."""

    name: str

    def child_spec(self) -> ChildSpec: ...


class Server:
    """Holds the configuration and the services; `run_forever` serves until SIGINT or SIGTERM."""

    def __init__(self, conf: ServerConf | None = None, options: argparse.Namespace | None = None) -> None:
        self.configuration = conf or ServerConf()
        self.options = options
        self.services: list[Service] = []
        self.system: ActorSystem | None = None

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> Server:
        """Parse Pingora's options: -c/--conf, -d/--daemon, -t/--test, -u/--upgrade."""
        parser = argparse.ArgumentParser(prog="actorproxy")
        parser.add_argument("-c", "--conf", help="configuration file (YAML)")
        parser.add_argument("-d", "--daemon", action="store_true", help="run in the background")
        parser.add_argument("-t", "--test", action="store_true", help="validate the configuration and exit")
        parser.add_argument(
            "-u", "--upgrade", action="store_true", help="take over listeners from a running server"
        )
        options = parser.parse_args(argv)
        return cls(ServerConf(daemon=options.daemon), options)

    def bootstrap(self) -> None:
        """Prepare the process before services start (upgrade sockets and daemon mode come later)."""

    def add_service(self, service: Service) -> None:
        self.services.append(service)

    def add_services(self, services: Sequence[Service]) -> None:
        self.services.extend(services)

    async def serve(self, *, task_status: trio.TaskStatus[ActorSystem] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service in order, report the system as started, then wait for SIGINT/SIGTERM."""
        async with open_actor_system("server") as system:
            self.system = system
            for service in self.services:
                await system.spawn(service.child_spec().start, name=service.name)
            with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
                task_status.started(system)
                async for signum in signals:
                    logger.info("received %s, shutting down", signal.Signals(signum).name)
                    if signum == signal.SIGINT:
                        raise KeyboardInterrupt
                    break

    def run_forever(self) -> None:
        """Serve until a signal: SIGTERM drains gracefully, SIGINT (Ctrl-C) stops fast."""
        try:
            trio.run(self.serve)
        except KeyboardInterrupt:
            logger.info("stopped")
        except BaseExceptionGroup as group:
            if group.subgroup(KeyboardInterrupt) is None or group.subgroup(Exception) is not None:
                raise
            logger.info("stopped")
