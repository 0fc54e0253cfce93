"""The resolver configuration that sends a platform's queries for the local zones to the DNS server.

Rules:
- Linux (systemd-resolved): one drop-in, `/etc/systemd/resolved.conf.d/actorproxy.conf`, naming the server
  (with its port, which systemd-resolved accepts since version 246) and the zones as routing-only domains
  (`~test`), so only those names go to it.
- macOS: one file per zone, `/etc/resolver/<zone>`, with `nameserver` and `port` (resolver(5)).
- Windows: a Name Resolution Policy Table rule per zone, as a PowerShell script to run as Administrator
  (`Add-DnsClientNrptRule`; the NRPT lives in the registry, not in a file). The NRPT has no port: the DNS
  server must then listen on port 53, and the setup says so.
- The setup is a `SystemSetup`: printed, or applied (files written under a root directory, "/" for the
  machine, a temporary directory in tests; the commands run only on the machine itself).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Literal

from actorproxy.server import SystemFile, SystemSetup

__all__ = ["PLATFORMS", "Platform", "current_platform", "resolver_setup"]

#: The platforms a setup is written for.
Platform = Literal["linux", "macos", "windows"]
PLATFORMS: tuple[Platform, ...] = ("linux", "macos", "windows")
# RFC 1035 section 4.2: the port every stub resolver sends to.
DNS_PORT = 53
SYSTEMD_DROP_IN = "/etc/systemd/resolved.conf.d/actorproxy.conf"
MACOS_RESOLVER_DIR = "/etc/resolver"
WINDOWS_SCRIPT = "/ProgramData/actorproxy/nrpt-setup.ps1"
HEADER = "Written by `actorproxy dns setup`: names under {zones} go to actorproxy's DNS server."


def current_platform() -> Platform:
    """The platform this process runs on (anything not macOS or Windows is treated as Linux)."""
    if sys.platform == "darwin":
        return "macos"
    if sys.platform.startswith(("win", "cygwin")):
        return "windows"
    return "linux"


def _reachable(host: str) -> str:
    # A server listening on every address is reached on loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def resolver_setup(platform: Platform, *, host: str, port: int, zones: Iterable[str]) -> SystemSetup:
    """The setup that sends `zones` to the DNS server at `host`:`port` on `platform`.

    Raises:
        ValueError: an unknown platform, or no zone.
    """
    names = [zone.strip(".").lower() for zone in zones]
    if not names:
        raise ValueError("no zone to set up")
    if platform not in PLATFORMS:
        raise ValueError(f"unknown platform {platform!r} (expected one of {', '.join(PLATFORMS)})")
    server = _reachable(host)
    header = HEADER.format(zones=", ".join(names))
    title = f"resolver setup for {platform}"
    if platform == "linux":
        address = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
        domains = " ".join("~" + name for name in names)
        text = f"# {header}\n[Resolve]\nDNS={address}\nDomains={domains}\n"
        return SystemSetup(
            title,
            (SystemFile(SYSTEMD_DROP_IN, text),),
            ("systemctl restart systemd-resolved",),
            (f"check with: resolvectl query app.{names[0]}",),
        )
    if platform == "macos":
        files = tuple(
            SystemFile(f"{MACOS_RESOLVER_DIR}/{name}", f"# {header}\nnameserver {server}\nport {port}\n")
            for name in names
        )
        return SystemSetup(
            title, files, (), (f"check with: scutil --dns | grep -A3 'domain   : {names[0]}'",)
        )
    rules = "".join(
        f'Add-DnsClientNrptRule -Namespace ".{name}" -NameServers "{server}" -Comment "actorproxy"\n'
        for name in names
    )
    notes = ["Remove-DnsClientNrptRule undoes it"]
    if port != DNS_PORT:
        notes.append(
            f"Windows sends DNS queries to port 53 only: set dns.listen to {server}:53 (port {port} is not"
            " reachable through the NRPT)"
        )
    script = f"# {header}\n{rules}"
    command = "powershell -ExecutionPolicy Bypass -File C:/ProgramData/actorproxy/nrpt-setup.ps1"
    return SystemSetup(title, (SystemFile(WINDOWS_SCRIPT, script),), (command,), tuple(notes))
