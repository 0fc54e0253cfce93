"""`Server`: the root of a proxy process; runs every service's subtree and answers the process signals.

Rules:
- A service is ready when its subtree has started: the start handshake of its root actor (a proxy service's
  listeners are bound, a load balancer has run its first discovery and health round, a background task has
  called `notify_ready()`). `serve` starts the services one at a time, each after every service it depends
  on is ready (see `_services`); independent services keep the order they were added. The start order,
  and so the drain order, is the same on every run.
- Signals, as Pingora answers them:
  - SIGINT: fast shutdown; every actor is cancelled.
  - SIGTERM: graceful shutdown. Every listener stops accepting at once (new connections are refused from
    then on), connections waiting for their next request close, requests in flight finish with keep-alive
    off within `grace_period_seconds`, then whatever is left is cancelled; `graceful_shutdown_timeout_seconds`
    bounds that last step. The process exits 0. Unlike Pingora, which always waits out the grace period, the
    server exits as soon as the drain is done.
  - SIGQUIT: graceful upgrade. The listening sockets go to the new process started with `-u` (over
    `upgrade_sock`), then the server drains as for SIGTERM. Both processes hold the same sockets during the
    handover, so no connection is refused. When nobody takes the sockets, the server keeps serving.
  - SIGHUP: reload. The hooks given to `on_reload` run (`await server.reload()` does the same, and returns
    what each hook did); a hook that fails is logged and the server goes on with what it had.
  - SIGUSR1: reopen the log files (access logs, and `error_log` in daemon mode), as nginx does after
    logrotate moved them.
- `run_forever` prepares the process in Pingora's order: the sockets of an upgrade are received in
  `bootstrap`; then every listening socket is bound, the process detaches (daemon mode), writes its pid
  file and drops privileges; then it serves, in this process or in `threads` worker processes. A process
  that serves first freezes what it holds out of the garbage collector's sight (`gc.freeze`) and raises
  the young generation's threshold (`SERVING_GC_THRESHOLD`).
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs
import trio

from actorproxy.admin import AdminService
from actorproxy.config import (
    DEFAULT_METRICS_PATH,
    ConfigError,
    ServerConf,
    load_conf,
)
from actorproxy.lb import LoadBalancer, LoadBalancerService
from actorproxy.metrics import DEFAULT_SNAPSHOT_INTERVAL, PrometheusService
from actorproxy.proxy import HttpProxyService, ListenFds
from actors import ActorSystem, open_actor_system

from ._daemon import daemonize, drop_privileges, reopen_error_log, write_pid_file
from ._services import ListeningService, Service, ServiceHandle, start_order
from ._upgrade import UpgradeError, receive_listen_fds, send_listen_fds
from ._workers import WorkerPool

__all__ = ["ClusterSource", "ReloadHook", "ReloadOutcome", "Server", "settle_for_serving"]

logger = logging.getLogger("actorproxy.server")

# How long a process started with -u waits for the running server to send its sockets.
UPGRADE_WAIT = 30.0
# Pingora's default for `upgrade_sock_connect_accept_max_retries`.
DEFAULT_UPGRADE_RETRIES = 5
# The garbage collector's thresholds while serving. CPython's (700, 10, 10) start a young collection after
# 700 more container allocations than frees, which a proxy with a few dozen requests in flight crosses and
# recrosses all the time: about one collection per 28 tiny requests, finding nothing (every request's objects
# die by reference counting), some 7% of the CPU of a request. At 10,000 the young generation fills only
# when garbage with cycles builds up (benchmarks/path.py: 98 -> 88 µs of CPU per tiny request).
SERVING_GC_THRESHOLD = (10_000, 10, 10)


def settle_for_serving() -> None:
    """Prepare the garbage collector of a process about to serve: what it holds frozen, fewer collections.

    What exists before serving (modules, configuration) lives as long as the process and leaves the
    collector's sight (`gc.freeze`); young collections wait for `SERVING_GC_THRESHOLD`.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLD)


@attrs.frozen(kw_only=True)
class ReloadOutcome:
    """What one reload hook did: `Server.reload` returns one per hook.

    A hook may return its own (the declared proxy's says which clusters it kept, replaced, added or
    removed); one that returns None succeeded, one that raised failed with the exception as `message`.
    """

    hook: str
    ok: bool
    message: str
    details: Mapping[str, Any] = attrs.field(factory=dict)


#: A reload hook: run on SIGHUP and by `Server.reload()`; it may say what it did.
ReloadHook = Callable[[], Awaitable[ReloadOutcome | None]]
#: Where upstream clusters come from, besides the load balancer services: name -> `LoadBalancer`.
ClusterSource = Callable[[], Mapping[str, LoadBalancer]]


def _hook_name(hook: ReloadHook) -> str:
    return getattr(hook, "__qualname__", None) or repr(hook)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorproxy", description="Run an actorproxy server.")
    parser.add_argument("-c", "--conf", help="the configuration file (YAML)")
    parser.add_argument("-d", "--daemon", action="store_true", help="run in the background")
    parser.add_argument("-t", "--test", action="store_true", help="check the configuration and exit")
    parser.add_argument(
        "-u", "--upgrade", action="store_true", help="take the listening sockets of a running server"
    )
    return parser


class Server:
    """The configuration, the services and the process around them (Pingora's `Server`).

    Args:
        conf: the server's settings; the defaults when omitted.
        options: the parsed command line (`from_args`).
    """

    def __init__(self, conf: ServerConf | None = None, options: argparse.Namespace | None = None) -> None:
        self.configuration = conf or ServerConf()
        self.options = options
        #: The configuration file (`-c`), read again by reload hooks.
        self.conf_path: str | None = getattr(options, "conf", None)
        #: The services in the order they were added.
        self.services: list[Service] = []
        self._handles: dict[int, ServiceHandle] = {}  # by id() of the service
        self._reload_hooks: list[ReloadHook] = []
        self._cluster_sources: list[ClusterSource] = []
        self._replaced_services: set[int] = set()  # id() of services a cluster source reports instead
        self.system: ActorSystem | None = None
        #: The listening sockets of this process, by bind address.
        self.listen_fds = ListenFds()
        #: Set in worker processes (`threads` > 1): which worker this is.
        self.worker: int | None = None
        self._configured = False  # the services the configuration asks for (metrics) were added
        self._counts_reset = False  # the metrics of a previous server were forgotten (a fresh start)

    @classmethod
    def from_args(cls, argv: Sequence[str] | None = None) -> Server:
        """Parse Pingora's options (-c/--conf, -d/--daemon, -t/--test, -u/--upgrade) and load `-c`.

        A configuration that cannot be loaded ends the process with status 1 and the reason, naming the
        key path (`-t` exits the same way; see `bootstrap`).
        """
        options = _parser().parse_args(argv)
        try:
            conf = load_conf(options.conf)
        except ConfigError as exc:
            print(f"actorproxy: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        if options.daemon:
            conf = attrs.evolve(conf, daemon=True)
        return cls(conf, options)

    # -- before serving --------------------------------------------------------------------------------------

    def bootstrap(self) -> None:
        """Prepare the process: `-t` checks and exits; `-u` takes the running server's listening sockets.

        Raises:
            SystemExit: with `-t` (0), or when `-u` finds no server to take over from (1).
        """
        options = self.options
        if options is not None and options.test:
            print(f"actorproxy: configuration {self.conf_path or '(defaults)'} is valid")
            raise SystemExit(0)
        if options is not None and options.upgrade:
            path = self.configuration.upgrade_sock
            logger.info("upgrade: waiting for the running server's sockets on %s", path)
            try:
                sockets = trio.run(lambda: receive_listen_fds(path, timeout=UPGRADE_WAIT))
            except UpgradeError as exc:
                print(f"actorproxy: {exc}", file=sys.stderr)
                raise SystemExit(1) from None
            self.listen_fds.adopt(sockets)
            logger.info("upgrade: took %d listening sockets: %s", len(sockets), ", ".join(sorted(sockets)))

    def add_service(
        self, service: Service, *, depends_on: Iterable[ServiceHandle | Service] = ()
    ) -> ServiceHandle:
        """Run `service` in this server, started once every service in `depends_on` is ready.

        Returns:
            The service's handle, for `add_dependency` (other services may depend on it or on `service`).

        Raises:
            ValueError: `service` was added already.
        """
        if any(s is service for s in self.services):
            raise ValueError(f"service {service.name!r} was added to the server already")
        handle = ServiceHandle(self, service)
        handle.add_dependencies(depends_on)
        self.services.append(service)
        self._handles[id(service)] = handle
        return handle

    def add_prometheus_service(self, addr: str, *, path: str = DEFAULT_METRICS_PATH) -> PrometheusService:
        """Serve the Prometheus page on "host:port" (Pingora's `add_prometheus_service_http`): every
        service, cluster and actor of this server, and prometheus-client's default registry (where your own
        metrics land), summed over the workers.

        Returns:
            The service (a proxy service: add more endpoints with `add_tcp` and the like).
        """
        conf = self.configuration.metrics
        directory = conf.snapshot_directory if conf is not None else None
        service = PrometheusService(
            self,
            addr,
            path=path,
            snapshot_directory=directory or f"{self.configuration.upgrade_sock}.metrics",
            snapshot_interval=conf.snapshot_interval if conf is not None else DEFAULT_SNAPSHOT_INTERVAL,
        )
        self.add_service(service)
        return service

    def add_configured_services(self) -> list[Service]:
        """Add what the configuration asks for beyond the proxy (the metrics page, the admin service), once;
        return what was added. `run_forever` and `serve` call it; call it before to reach those services."""
        if self._configured:
            return []
        self._configured = True
        added: list[Service] = []
        conf = self.configuration
        if conf.metrics is not None and not any(isinstance(s, PrometheusService) for s in self.services):
            added.append(self.add_prometheus_service(conf.metrics.listen, path=conf.metrics.path))
        if conf.admin is not None and not any(isinstance(s, AdminService) for s in self.services):
            added.append(self.add_admin_service())
        return added

    def _count_in_detail(self) -> None:
        """Proxy services count by route, method and status, bytes and durations only when a page shows
        those counts (the metrics page, the admin page): a server without one does not pay for them."""
        if any(isinstance(s, (PrometheusService, AdminService)) for s in self.services):
            for service in self.services:
                if isinstance(service, HttpProxyService):
                    service.counters.detailed = True

    def _reset_counts(self) -> None:
        """A fresh start (not an upgrade) forgets the counts earlier servers left; an upgrade keeps them."""
        if self._counts_reset or (self.options is not None and self.options.upgrade):
            return
        self._counts_reset = True
        for service in self.services:
            if isinstance(service, PrometheusService):
                service.reset_counts()

    def add_services(self, services: Sequence[Service]) -> list[ServiceHandle]:
        """`add_service` for each of `services`, in order; returns their handles."""
        return [self.add_service(service) for service in services]

    def start_order(self) -> list[Service]:
        """The services in the order `serve` starts them: dependencies first, otherwise as added.

        Raises:
            ServiceDependencyError: a dependency cycle, or a dependency on a service never added.
        """
        # A service put in `services` directly (not through `add_service`) has no dependencies.
        handles = self._handles
        return start_order([handles.get(id(s)) or ServiceHandle(self, s) for s in self.services])

    def on_reload(self, hook: ReloadHook) -> None:
        """Run `hook` on SIGHUP and on `reload()`, after the hooks added before it."""
        self._reload_hooks.append(hook)

    def reopen_logs(self) -> None:
        """Open every log file again (SIGUSR1, after logrotate moved them): the services' access logs and,
        in daemon mode, `error_log` (every process: a worker's output is its own copy of the descriptor)."""
        for service in self.services:
            if isinstance(service, HttpProxyService) and service.access_log is not None:
                service.access_log.reopen()
        conf = self.configuration
        if conf.daemon:
            try:
                reopen_error_log(conf.error_log)
            except OSError as exc:
                logger.error("error_log %s cannot be reopened: %s", conf.error_log, exc)
        logger.info("reopened log files (pid %d)", os.getpid())

    async def reload(self) -> list[ReloadOutcome]:
        """Run every reload hook in turn; one that fails is logged and the others still run.

        Returns:
            What each hook did, in order (empty when there is no hook).
        """
        logger.info("reloading (%d hooks)", len(self._reload_hooks))
        outcomes = []
        for hook in self._reload_hooks:
            name = _hook_name(hook)
            try:
                outcome = await hook()
            except Exception as exc:
                logger.exception("a reload hook failed; the server goes on with what it had")
                outcome = ReloadOutcome(hook=name, ok=False, message=f"{type(exc).__name__}: {exc}")
            outcomes.append(outcome or ReloadOutcome(hook=name, ok=True, message="done"))
        return outcomes

    # -- what an operator sees -------------------------------------------------------------------------------

    def add_cluster_source(self, source: ClusterSource, *, replaces: Iterable[Service] = ()) -> None:
        """Report the upstream clusters `source()` returns in `clusters()` (the declared proxy's, which a
        reload replaces); the load balancer services in `replaces` are then reported only through it."""
        self._cluster_sources.append(source)
        self._replaced_services.update(id(service) for service in replaces)

    def clusters(self) -> dict[str, LoadBalancer]:
        """Every upstream cluster by name: each load balancer service's (by service name) not replaced by a
        cluster source, then those of the cluster sources."""
        found: dict[str, LoadBalancer] = {
            service.name: service.lb
            for service in self.services
            if isinstance(service, LoadBalancerService) and id(service) not in self._replaced_services
        }
        for source in self._cluster_sources:
            found.update(source())
        return found

    def add_admin_service(
        self, listen: str | None = None, *, token: str | None = None, name: str = "admin"
    ) -> AdminService:
        """Serve the admin API and the live supervision-tree page (see `actorproxy.admin`).

        Args:
            listen: "host:port"; default: the configuration's `admin.listen`, else loopback port 6193.
            token: what write actions must send in `X-Admin-Token`; default: the configuration's
                `admin.token`. Required when `listen` is not a loopback address.
            name: the service's name (its actor path).

        Returns:
            The service (its `url` once it listens).

        Raises:
            ConfigError: `listen` is not host:port, or a token is missing or too short, naming the key.
        """
        service = AdminService.from_conf(
            self, self.configuration.admin, listen=listen, token=token, name=name
        )
        self.add_service(service)
        return service

    # -- serving ---------------------------------------------------------------------------------------------

    async def serve(self, *, task_status: trio.TaskStatus[ActorSystem] = trio.TASK_STATUS_IGNORED) -> None:
        """Start every service after what it depends on, report the system as started, then answer signals
        until one ends the server (see the module rules).

        Raises:
            ServiceDependencyError: the dependencies cannot be met (before any service starts).
            ExceptionGroup: holding the `StartFailed` of a service that failed to start (the actor system's
                nursery wraps it); the services already started are drained first.
            KeyboardInterrupt: on SIGINT, after every actor was cancelled.
        """
        self.add_configured_services()
        if self.worker is None:
            self._reset_counts()
        self._count_in_detail()
        order = self.start_order()
        fds = self.listen_fds
        blocking = self.configuration.max_blocking_threads
        if blocking is not None:
            # File reads, host-name lookups and other blocking calls run in trio's worker threads.
            trio.to_thread.current_default_thread_limiter().total_tokens = blocking
        for service in order:
            if isinstance(service, ListeningService):
                service.use_listen_fds(fds)
        try:
            async with open_actor_system("server") as system:
                self.system = system
                for service in order:
                    await system.spawn(service.child_spec().start, name=service.name)
                await self._answer_signals(system, task_status)
                await self._drain(system, order)
        finally:
            fds.closing = True
            fds.close_idle()

    async def _answer_signals(self, system: ActorSystem, task_status: trio.TaskStatus[ActorSystem]) -> None:
        signals = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGHUP, signal.SIGUSR1)
        with trio.open_signal_receiver(*signals) as received:
            logger.info("serving (pid %d)", os.getpid())
            task_status.started(system)
            async for signum in received:
                name = signal.Signals(signum).name
                if signum == signal.SIGHUP:
                    logger.info("received SIGHUP")
                    await self.reload()
                    continue
                if signum == signal.SIGUSR1:
                    self.reopen_logs()
                    continue
                if signum == signal.SIGINT:
                    logger.info("received SIGINT: stopping now")
                    raise KeyboardInterrupt
                if signum == signal.SIGQUIT and not await self._hand_over():
                    continue
                logger.info("received %s: draining", name)
                return

    async def _hand_over(self) -> bool:
        fds = self.listen_fds
        if self.worker is None:
            retries = self.configuration.upgrade_sock_connect_accept_max_retries
            try:
                await send_listen_fds(
                    self.configuration.upgrade_sock,
                    fds.fds(),
                    retries=DEFAULT_UPGRADE_RETRIES if retries is None else retries,
                )
            except UpgradeError as exc:
                logger.error("upgrade: %s; still serving", exc)
                return False
            logger.info("upgrade: listening sockets handed over")
        # A worker gets SIGQUIT from its master once the master has handed the sockets over.
        fds.handed_over = True
        return True

    async def _drain(self, system: ActorSystem, order: Sequence[Service]) -> None:
        """Stop accepting everywhere at once, then drain the tree within the configured times."""
        conf = self.configuration
        grace = conf.grace_period
        final = conf.graceful_shutdown_timeout
        self.listen_fds.closing = True
        with trio.move_on_after(grace + final) as scope:
            for service in reversed(order):
                if isinstance(service, ListeningService):
                    await service.begin_drain(system)
            await system.shutdown()
        if scope.cancelled_caught:
            logger.error("the drain took longer than %g s; cancelling what is left", grace + final)
            system.cancel()
        else:
            logger.info("drained")

    # -- the process -----------------------------------------------------------------------------------------

    def bind_listeners(self) -> dict[str, object]:
        """Bind every listening service's sockets now (`run_forever` starts with this; call it before to
        learn the port of a "host:0" endpoint).

        Returns:
            The bound address of every listening socket, by bind key.

        Raises:
            OSError: an address is in use or not allowed; the message names the service and endpoint.
        """
        self.add_configured_services()
        for service in self.start_order():
            if isinstance(service, ListeningService):
                service.bind_listeners(self.listen_fds)
        return self.listen_fds.addresses()

    def run_forever(self) -> None:
        """Serve until a signal ends the server (see the module rules); return once it has stopped.

        Raises:
            SystemExit: 1 when the server could not start or stopped on an error.
        """
        conf = self.configuration
        try:
            self.bind_listeners()
        except OSError as exc:
            print(f"actorproxy: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        try:
            if conf.daemon:
                daemonize(error_log=conf.error_log, working_directory=conf.working_directory)
                write_pid_file(conf.pid_file)
            drop_privileges(conf.user, conf.group)
        except (OSError, ValueError) as exc:
            print(f"actorproxy: {exc}", file=sys.stderr)
            raise SystemExit(1) from None
        if conf.threads > 1:
            self._reset_counts()  # before the workers fork: they all write into the same directory
            pool = WorkerPool(
                conf.threads,
                self._run_worker,
                self.listen_fds,
                upgrade_sock=conf.upgrade_sock,
                upgrade_retries=conf.upgrade_sock_connect_accept_max_retries or DEFAULT_UPGRADE_RETRIES,
                error_log=conf.error_log if conf.daemon else None,
            )
            code = pool.run()
        else:
            code = self._serve_here()
        if code:
            raise SystemExit(code)

    def _run_worker(self, index: int) -> int:
        self.worker = index
        return self._serve_here()

    def _serve_here(self) -> int:
        # What the process holds before it serves (modules, configuration: most of its objects) lives as
        # long as it does: frozen out of the garbage collector's sight, so that its full collections walk
        # only what serving creates (benchmarks/proxy.py, tiny bodies: p99 20 ms -> 11 ms).
        settle_for_serving()
        try:
            trio.run(self.serve)
        except KeyboardInterrupt:
            logger.info("stopped")
        except BaseExceptionGroup as group:
            if group.subgroup(KeyboardInterrupt) is None or group.subgroup(Exception) is not None:
                logger.critical("the server stopped on an error", exc_info=group)
                return 1
            logger.info("stopped")
        else:
            logger.info("stopped (pid %d)", os.getpid())
        return 0
