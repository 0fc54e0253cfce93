"""`actorproxy serve-sites` (the whole virtual server) and `actorproxy sites` (what it serves).

    actorproxy serve-sites [-c FILE | DIR] [--http ADDR] [--https ADDR] [--dns ADDR] [--ca DIR]
                           [--state-dir DIR]
    actorproxy sites [-c FILE | DIR] [--state-dir DIR]

`serve-sites FILE` serves the sites, park folders, DNS and CA the file declares (relative paths from the
file's directory); `serve-sites DIR` parks DIR with every default. Once everything listens it prints one
line per listener and per site, then `ready`. `sites` lists the sites with their state, from the status file
of the running server, or from the configuration when none runs. Exit status: 0, 1 when the configuration
or the CA cannot be used, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs

from actorproxy.admin import AdminService
from actorproxy.ca import CaError
from actorproxy.config import (
    DEFAULT_ADMIN_LISTEN,
    ConfigError,
    DnsConf,
    ParkConf,
    ServerConf,
    SitesServerConf,
    load_conf,
)
from actorproxy.server import Server, background_service
from supervisors import ShutdownWatch

from ._actor import SitesRuntime
from ._app import SitesProxy
from ._serve import VirtualServer, add_virtual_server
from ._status import STATUS_FILE, read_status

__all__ = ["serve_sites_command", "sites_command"]


def _fail(message: object, status: int = 1) -> int:
    print(f"actorproxy: {message}", file=sys.stderr)
    return status


def _source(
    parser: argparse.ArgumentParser, args: Sequence[str]
) -> tuple[argparse.Namespace, ServerConf, Path]:
    """Parse the options; load the configuration (FILE or -c FILE), or park DIR. Exits 1 on a bad file."""
    parser.add_argument("source", nargs="?", help="a configuration file, or a folder to park")
    parser.add_argument("-c", "--conf", help="the configuration file (YAML)")
    options = parser.parse_args(args)
    source = options.conf or options.source
    if source is None or (options.conf and options.source):
        parser.error("give one configuration file (-c FILE or FILE) or one folder to park")
    path = Path(source)
    if path.is_dir():
        return options, ServerConf(park=(ParkConf(path=str(path.resolve())),)), Path.cwd()
    try:
        conf = load_conf(path)
    except ConfigError as exc:
        print(f"actorproxy: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    return options, conf, path.resolve().parent


def _overrides(conf: ServerConf, options: argparse.Namespace) -> ServerConf:
    sites = conf.sites_server or SitesServerConf()
    dns = conf.dns or DnsConf()
    if options.http is not None:
        sites = attrs.evolve(sites, http=options.http or None)
    if options.https is not None:
        sites = attrs.evolve(sites, https=options.https or None)
    if options.dns is not None:
        dns = attrs.evolve(dns, listen=options.dns)
    if options.state_dir is not None:
        sites = attrs.evolve(sites, state_dir=str(Path(options.state_dir).resolve()))
    return attrs.evolve(conf, sites_server=sites, dns=dns)


class _Announcement:
    """Prints where everything listens and the sites, once every service is ready."""

    def __init__(self, virtual: VirtualServer, admin: AdminService | None = None) -> None:
        self.virtual = virtual
        self.admin = admin

    async def start(self, shutdown: ShutdownWatch) -> None:
        virtual = self.virtual
        dns = virtual.dns.address
        if dns is not None:
            print(f"serve-sites: dns {dns[0]}:{dns[1]} (udp, tcp)", flush=True)
        https_port = None
        for index, endpoint in enumerate(virtual.proxy.endpoints):
            host, port = virtual.proxy.bound[index][:2]
            scheme = "https" if endpoint.ssl_context is not None else "http"
            https_port = port if scheme == "https" else https_port
            print(f"serve-sites: {scheme} {scheme}://{host}:{port}", flush=True)
        if virtual.ca.path is not None:
            print(f"serve-sites: ca {virtual.ca.path}/rootCA.pem", flush=True)
        if self.admin is not None:
            print(f"serve-sites: admin {self.admin.url} (the live supervision tree)", flush=True)
        for route in virtual.app.routing.targets():
            definition = route.definition
            where = f"https://{definition.name}:{https_port}/" if https_port else definition.name
            print(f"serve-sites: site {where} ({definition.kind} {definition.target})", flush=True)
        print("serve-sites: ready", flush=True)
        await shutdown.wait()


def serve_sites_command(args: Sequence[str]) -> int:
    """`actorproxy serve-sites`: DNS, CA, TLS and the sites, until a signal stops the server."""
    parser = argparse.ArgumentParser(
        prog="actorproxy serve-sites",
        description="Serve sites under *.test with DNS, a local CA and HTTPS (see docs/virtual-server.md).",
    )
    parser.add_argument("--http", help="host:port of plain HTTP (empty: none)")
    parser.add_argument("--https", help="host:port of HTTPS (empty: none)")
    parser.add_argument("--dns", help="host:port of the DNS server")
    parser.add_argument("--ca", help="the CA's directory")
    parser.add_argument("--state-dir", help="the directory of the sites' logs and status")
    parser.add_argument(
        "--admin",
        default=DEFAULT_ADMIN_LISTEN,
        help=f"host:port of the admin page, where the site processes show in the tree (default"
        f" {DEFAULT_ADMIN_LISTEN}; off: none)",
    )
    options, conf, base = _source(parser, args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        conf = _overrides(conf, options)
    except ConfigError as exc:
        return _fail(exc, 2)
    server = Server(conf)
    try:
        virtual = add_virtual_server(server, conf, base=base, ca_dir=Path(options.ca) if options.ca else None)
    except (CaError, OSError) as exc:
        return _fail(exc)
    admin = None
    if options.admin != "off":
        try:
            admin = server.add_admin_service(options.admin)
        except ConfigError as exc:
            return _fail(f"--admin: {exc}", 2)
    announcement = background_service("announce sites", _Announcement(virtual, admin))
    ready: list[Any] = [virtual.proxy, virtual.dns] + ([admin] if admin is not None else [])
    server.add_service(announcement, depends_on=ready)
    server.run_forever()
    return 0


def sites_command(args: Sequence[str]) -> int:
    """`actorproxy sites`: the sites and their state."""
    parser = argparse.ArgumentParser(prog="actorproxy sites", description="List the sites and their state.")
    parser.add_argument("--state-dir", help="the directory of the sites' logs and status")
    options, conf, base = _source(parser, args)
    settings = conf.sites_server or SitesServerConf()
    if options.state_dir is not None:
        settings = attrs.evolve(settings, state_dir=str(Path(options.state_dir).resolve()))
    status = read_status(base / settings.state_dir / STATUS_FILE)
    if status is not None:
        rows: list[dict[str, Any]] = status["sites"]
        print(f"serving (pid {status['pid']}):")
    else:
        zone = (conf.dns or DnsConf()).zones[0]
        runtime = SitesRuntime(conf, base, zone, settings, SitesProxy(start_timeout=settings.start_timeout))
        rows = [
            {"name": d.name, "kind": d.kind, "target": d.target, "state": "not served"}
            for d in runtime.definitions()
        ]
        print("not running (no server is serving these sites):")
    for row in rows:
        extra = ""
        if row.get("pid") is not None or row.get("restarts"):
            extra = f" pid={row.get('pid')} port={row.get('port')} restarts={row.get('restarts', 0)}"
        if row.get("last_exit"):
            extra += f" last_exit={row['last_exit']!r}"
        print(f"  {row['name']:<28} {row['state']:<10} {row['kind']:<6} {row['target']}{extra}")
    return 0
