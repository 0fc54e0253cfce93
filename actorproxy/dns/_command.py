"""`actorproxy dns setup`: print (or write, with `--apply`) the resolver configuration for the local zones.

    actorproxy dns setup [-c FILE] [--platform linux|macos|windows] [--apply [--root DIR]]

The DNS server's address and zones come from the file's `dns:` section (its defaults without one). Exit
status: 0 on success, 1 when the file cannot be used or a file cannot be written, 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from actorproxy.config import ConfigError, DnsConf, load_conf

from ._service import DNS_PORT, host_port
from ._setup import PLATFORMS, current_platform, resolver_setup

__all__ = ["dns_command"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorproxy dns", description="The local DNS server's setup.")
    commands = parser.add_subparsers(dest="command", required=True)
    setup = commands.add_parser(
        "setup", help="print or write the resolver configuration that sends the zones to the DNS server"
    )
    setup.add_argument("-c", "--conf", help="the configuration file (its dns: section)")
    setup.add_argument("--platform", choices=PLATFORMS, default=current_platform(), help="default: this one")
    setup.add_argument("--apply", action="store_true", help="write the files (as root) instead of printing")
    setup.add_argument("--root", default="/", help="with --apply: write under this directory (default /)")
    return parser


def dns_command(args: Sequence[str]) -> int:
    """Run `actorproxy dns ...`; return the exit status."""
    options = _parser().parse_args(args)
    try:
        conf = load_conf(options.conf) if options.conf else None
    except ConfigError as exc:
        print(f"actorproxy: {exc}", file=sys.stderr)
        return 1
    dns = (conf.dns if conf is not None else None) or DnsConf()
    host, port = host_port(dns.listen, DNS_PORT)
    setup = resolver_setup(options.platform, host=host, port=port, zones=dns.zones)
    return setup.print_or_apply(apply=options.apply, root=options.root, command="dns setup")
