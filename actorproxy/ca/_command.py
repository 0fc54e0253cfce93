"""`actorproxy ca init` and `actorproxy ca trust`: the local CA of the virtual server.

    actorproxy ca init [-c FILE] [--path DIR] [--zone ZONE ...] [--force]
    actorproxy ca trust [-c FILE] [--path DIR] [--platform linux|macos|windows] [--apply [--root DIR]]

The CA's directory is `--path`, else the file's `ca.path`, else the user's data directory; its zones are
`--zone`, else the file's `dns.zones`, else `test`. Exit status: 0 on success, 1 when the CA or a file
cannot be used (the message says which), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from actorproxy.config import ConfigError, ServerConf, load_conf

from ._authority import CA_CERT_FILE, CA_KEY_FILE, CaError, LocalCA, default_ca_path
from ._trust import trust_setup

__all__ = ["ca_command", "ca_path"]

PLATFORMS = ("linux", "macos", "windows")


def ca_path(conf: ServerConf | None, base: Path | None = None) -> Path:
    """The CA directory a configuration names (relative to `base`), or the default one."""
    configured = conf.ca.path if conf is not None and conf.ca is not None else None
    if configured is None:
        return default_ca_path()
    path = Path(configured).expanduser()
    return path if base is None else base / path


def _platform() -> str:
    if sys.platform == "darwin":
        return "macos"
    return "windows" if sys.platform.startswith(("win", "cygwin")) else "linux"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="actorproxy ca", description="The local certificate authority.")
    commands = parser.add_subparsers(dest="command", required=True)
    init = commands.add_parser("init", help="create the root CA (its key is written with mode 0600)")
    trust = commands.add_parser("trust", help="print, or apply, how to make this machine trust the CA")
    for command in (init, trust):
        command.add_argument("-c", "--conf", help="the configuration file (its ca: and dns: sections)")
        command.add_argument("--path", help="the CA's directory")
    init.add_argument("--zone", action="append", help="a zone the CA may vouch for (repeatable)")
    init.add_argument("--force", action="store_true", help="replace an existing CA")
    trust.add_argument("--platform", choices=PLATFORMS, default=_platform(), help="default: this one")
    trust.add_argument("--apply", action="store_true", help="write the files and run the commands")
    trust.add_argument("--root", default="/", help="with --apply: write under this directory, run nothing")
    return parser


def _fail(message: object) -> int:
    print(f"actorproxy: {message}", file=sys.stderr)
    return 1


def ca_command(args: Sequence[str]) -> int:
    """Run `actorproxy ca ...`; return the exit status."""
    options = _parser().parse_args(args)
    try:
        conf = load_conf(options.conf) if options.conf else None
    except ConfigError as exc:
        return _fail(exc)
    base = Path(options.conf).resolve().parent if options.conf else None
    path = Path(options.path) if options.path else ca_path(conf, base)
    if options.command == "init":
        zones = options.zone or (conf.dns.zones if conf is not None and conf.dns is not None else ("test",))
        if (path / CA_CERT_FILE).exists() and not options.force:
            return _fail(
                f"a CA exists in {path} already (--force replaces it, and every browser must trust anew)"
            )
        try:
            ca = LocalCA.create(zones)
            ca.save(path)
        except OSError as exc:
            return _fail(f"ca init: cannot write {path}: {exc.strerror or exc}")
        print(f"created the local CA in {path}: {CA_CERT_FILE}, {CA_KEY_FILE} (0600)")
        print(f"  for {', '.join(zones)}, localhost and loopback addresses; fingerprint {ca.fingerprint}")
        print("  trust it with: actorproxy ca trust --apply")
        return 0
    try:
        ca = LocalCA.load(path)
        setup = trust_setup(ca, options.platform)
    except (CaError, ValueError) as exc:
        return _fail(exc)
    return setup.print_or_apply(apply=options.apply, root=options.root, command="ca trust")
