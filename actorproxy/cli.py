"""`actorproxy`: the command line.

    actorproxy -c proxy.yaml [-d] [-t] [-u]     run the proxy declared in proxy.yaml (SIGHUP reloads it)
    actorproxy check -c proxy.yaml              check the file as the server would, then exit
    actorproxy demo [--listen HOST:PORT]        the demo: a load balancer over three demo upstreams
    actorproxy settings -c proxy.yaml COMMAND   the settings file and its secrets (`settings --help`)
    actorproxy store -c proxy.yaml VERB ...     the configured store: get, put, forget, flush, stats

The shared options (-c/--conf, -d/--daemon, -t/--test, -u/--upgrade) are the server's own
(`actorproxy.Server.from_args`), and so is everything after parsing: loading the file, daemon mode,
upgrades, signals. Exit status: 0 when the server stopped cleanly or a check passed; 1 for a configuration
that cannot be used (the message names the key path) or a server that failed; 2 for a usage error.
Once every listener is open, the command prints where it listens, one line per listener, on stdout.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterable, Sequence

from actorproxy.admin import AdminService
from actorproxy.ca import ca_command
from actorproxy.config import DEFAULT_ADMIN_LISTEN, ConfigError, ServerConf, load_conf
from actorproxy.declared import build_proxy
from actorproxy.demo import DEMO_LISTEN, add_demo
from actorproxy.dns import dns_command
from actorproxy.metrics import PrometheusService
from actorproxy.proxy import HttpProxyService
from actorproxy.server import Server, Service, background_service
from actorproxy.settings import redact
from actorproxy.settings_cli import settings_main
from actorproxy.sites import serve_sites_command, sites_command
from actorproxy.store import store_command
from supervisors import ShutdownWatch

__all__ = ["listening_urls", "main"]

#: Where the demo serves its Prometheus page (Pingora's example port).
DEMO_METRICS = "127.0.0.1:6192"

USAGE = """\
usage: actorproxy -c FILE [-d] [-t] [-u]   run the proxy declared in FILE (SIGHUP reloads it)
       actorproxy check -c FILE            check FILE as the server would, then exit
       actorproxy demo [--listen ADDR]     a load balancer over three demo upstreams (default {listen})
       actorproxy settings -c FILE CMD     get, set, has, all, forget, tree, key:generate, encrypt, decrypt
       actorproxy store -c FILE VERB ...   the store FILE configures: get, put, forget, flush, stats
       actorproxy dns setup [--apply]      the resolver configuration for the local DNS server's zones
       actorproxy ca init | trust [--apply] the local CA of the sites: create it, trust it
       actorproxy serve-sites FILE | DIR   the sites of FILE (or DIR parked) with DNS, a local CA and HTTPS
       actorproxy sites [FILE | DIR]       the sites and their state
"""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the `actorproxy` command with `argv` (default: the process's arguments); return the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    match args[:1]:
        case ["check"]:
            return check(args[1:])
        case ["demo"]:
            return demo(args[1:])
        case ["settings"]:
            return settings_main(args[1:])
        case ["store"]:
            return store_command(args[1:])
        case ["dns"]:
            return dns_command(args[1:])
        case ["ca"]:
            return ca_command(args[1:])
        case ["sites"]:
            return sites_command(args[1:])
        case ["serve-sites"]:
            return serve_sites_command(args[1:])
        case ["-h"] | ["--help"]:
            print(USAGE.format(listen=DEMO_LISTEN))
            Server.from_args(["--help"])  # the server's options; exits
            return 0
        case _:
            return serve(args)


def _logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _fail(message: object, status: int = 1) -> int:
    print(f"actorproxy: {message}", file=sys.stderr)
    return status


def serve(args: Sequence[str]) -> int:
    """`actorproxy -c FILE ...`: run the declared proxy until a signal stops it."""
    _logging()
    server = Server.from_args(args)  # exits 1 on a file that cannot be loaded, naming the key path
    path = server.conf_path
    if path is None:
        return _fail("no configuration file: run `actorproxy -c FILE`, or `actorproxy demo`", 2)
    if not server.configuration.services:
        return _fail(f"{path}: no services declared; nothing to serve")
    try:
        handle = build_proxy(server)
    except ConfigError as exc:
        return _fail(ConfigError(exc.problems, path))
    services = [declared.service for declared in handle.services.values()]
    _announce(server, services, "{name}: listening on {url}")
    _announce_pages(server, server.add_configured_services())
    server.bootstrap()  # -t: says the file is valid and exits 0; -u: takes the running server's sockets
    server.run_forever()
    return 0


def check(args: Sequence[str]) -> int:
    """`actorproxy check -c FILE`: load FILE, build the proxy it declares (without running it), report."""
    parser = argparse.ArgumentParser(
        prog="actorproxy check", description="Check a configuration file as the server would, then exit."
    )
    parser.add_argument("file", nargs="?", help="the configuration file (or -c)")
    parser.add_argument("-c", "--conf", help="the configuration file (YAML)")
    options = parser.parse_args(args)
    path = options.conf or options.file
    if path is None or (options.conf and options.file):
        parser.error("give one configuration file, with -c FILE or as FILE")
    try:
        conf = load_conf(path)
        # Building checks what loading cannot: certificates that load, a resolver for DNS discovery.
        build_proxy(Server(conf), conf)
    except ConfigError as exc:
        return _fail(exc if exc.source else ConfigError(exc.problems, path))
    print(f"ok: {path}")
    for line in summary(conf):
        print(f"  {redact(line)}")
    return 0


def summary(conf: ServerConf) -> list[str]:
    """One line per declared service and upstream cluster: what a check reports."""
    lines = []
    for service in conf.services:
        listeners = ", ".join(
            f"tls://{listener.address}" if listener.tls else listener.address or f"unix:{listener.path}"
            for listener in service.listeners
        )
        lines.append(f"service {service.name}: {listeners}; {len(service.routes)} routes")
    for upstream in conf.upstreams:
        discovery = upstream.discovery
        found = f"{len(discovery.static)} backends" if discovery.static is not None else discovery.kind
        check = upstream.health_check
        health = "no health check"
        if check is not None:
            every = "once" if check.frequency is None else f"every {check.frequency:g} s"
            health = f"{'tcp' if check.tcp is not None else 'http'} health check {every}"
        lines.append(f"upstream {upstream.name}: {found}, {upstream.algorithm}, {health}")
    if not conf.services:
        lines.append("no services: `actorproxy -c` would have nothing to serve")
    return lines


def demo(args: Sequence[str]) -> int:
    """`actorproxy demo`: the demo load balancer in front of three demo upstreams, until a signal."""
    parser = argparse.ArgumentParser(
        prog="actorproxy demo",
        description="Round robin over three demo upstreams on 127.0.0.1, health-checked every second."
        " The server's options (-c, -d, ...) may follow.",
    )
    parser.add_argument(
        "--listen", default=DEMO_LISTEN, help=f"host:port to listen on (default {DEMO_LISTEN}; port 0: any)"
    )
    (
        parser.add_argument(
            "--metrics",
            default=DEMO_METRICS,
            help=f"host:port of the Prometheus page (default {DEMO_METRICS}; 'off': none)",
        ),
    )
    parser.add_argument(
        "--admin",
        default=DEFAULT_ADMIN_LISTEN,
        help=f"host:port of the admin page (default {DEFAULT_ADMIN_LISTEN}; loopback only; off: none)",
    )
    options, rest = parser.parse_known_args(args)
    _logging()
    server = Server.from_args(rest)
    try:
        proxy = add_demo(server, listen=options.listen)
    except ValueError as exc:
        return _fail(f"--listen: {exc}", 2)
    _announce(server, [proxy], "demo load balancer listening; try: curl -i {url}/")
    pages: list[object] = []
    if options.metrics != "off":
        try:
            pages.append(server.add_prometheus_service(options.metrics))
        except ValueError as exc:
            return _fail(f"--metrics: {exc}", 2)
    if options.admin != "off":
        try:
            pages.append(server.add_admin_service(options.admin))
        except ConfigError as exc:
            return _fail(f"--admin: {exc}", 2)
    _announce_pages(server, pages)
    server.bootstrap()
    server.run_forever()
    return 0


def _announce_pages(server: Server, services: Iterable[object]) -> None:
    for service in services:
        if isinstance(service, PrometheusService):
            _announce(server, [service], "metrics page at {url}" + service.path)
        elif isinstance(service, AdminService):
            template = "admin page: {url}/"
            _announce(server, [service.http], template, name="announce admin", after=[service])


def listening_urls(service: HttpProxyService) -> list[str]:
    """Where `service` listens once its listeners are open: `http://host:port`, `https://...`, `unix:PATH`."""
    urls = []
    for index, endpoint in enumerate(service.endpoints):
        if endpoint.path is not None:
            urls.append(f"unix:{endpoint.path}")
            continue
        bound = service.bound.get(index)
        if bound is None:
            continue  # not listening in this process: the admin in a worker other than worker 0
        host, port = bound[:2]
        host = f"[{host}]" if ":" in host else host
        urls.append(f"{'https' if endpoint.ssl_context is not None else 'http'}://{host}:{port}")
    return urls


class _Announcement:
    """A background task that prints where `services` listen; it runs once they are all listening."""

    def __init__(self, services: Iterable[HttpProxyService], template: str) -> None:
        self.services = list(services)
        self.template = template

    async def start(self, shutdown: ShutdownWatch) -> None:
        for service in self.services:
            for url in listening_urls(service):
                # One write a line: the workers of `threads: N` share stdout, and print()'s separate write of
                # the newline could land after another worker's line.
                sys.stdout.write(self.template.format(name=service.name, url=url) + "\n")
                sys.stdout.flush()
        # Done, but a task that returns ends its service, which the log would report: wait for the drain.
        await shutdown.wait()


def _announce(
    server: Server,
    services: Sequence[HttpProxyService],
    template: str,
    *,
    name: str | None = None,
    after: Sequence[Service] | None = None,
) -> None:
    # A service started after the proxy services (or `after`) is started once they are ready: their listeners
    # are open.
    if name is None:
        name = "announce " + ", ".join(service.name for service in services)
    announcement = background_service(name, _Announcement(services, template))
    server.add_service(announcement, depends_on=services if after is None else after)


if __name__ == "__main__":
    sys.exit(main())
