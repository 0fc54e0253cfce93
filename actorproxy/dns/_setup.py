"""The resolver configuration that sends a platform's queries for the local zones to the DNS server.

Rules:
- Linux (systemd-resolved): one drop-in, `/etc/systemd/resolved.conf.d/actorproxy.conf`, naming the server
  (with its port, which systemd-resolved accepts since version 246) and the zones as routing-only domains
  (`~test`), so only those names go to it.
- macOS: one file per zone, `/etc/resolver/<zone>`, with `nameserver` and `port` (resolver(5)).
- Windows: a Name Resolution Policy Table rule per zone, as a PowerShell script to run as Administrator
  (`Add-DnsClientNrptRule`; the NRPT lives in the registry, not in a file). The NRPT has no port: the DNS
  server must then listen on port 53, and the setup says so.
- Nothing is run: `apply_setup` writes the files under a root directory ("/" for the machine, a temporary
  directory in tests), each whole or not at all (a temporary file renamed into place), and the commands that
  make the system read them are printed for the user.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path, PurePosixPath
from typing import Literal

import attrs

__all__ = ["Platform", "ResolverFile", "ResolverSetup", "apply_setup", "current_platform", "resolver_setup"]

#: The platforms a setup is written for.
Platform = Literal["linux", "macos", "windows"]
PLATFORMS: tuple[Platform, ...] = ("linux", "macos", "windows")
# RFC 1035 section 4.2: the port every stub resolver sends to.
DNS_PORT = 53
SYSTEMD_DROP_IN = "/etc/systemd/resolved.conf.d/actorproxy.conf"
MACOS_RESOLVER_DIR = "/etc/resolver"
WINDOWS_SCRIPT = "/ProgramData/actorproxy/nrpt-setup.ps1"
HEADER = "Written by `actorproxy dns setup`: names under {zones} go to actorproxy's DNS server."


@attrs.frozen
class ResolverFile:
    """A file of the setup: its absolute path on the target system, and its text."""

    path: str
    text: str


@attrs.frozen
class ResolverSetup:
    """What makes `platform` ask the DNS server about the zones: files, commands to run after, notes."""

    platform: Platform
    files: tuple[ResolverFile, ...]
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        """The whole setup as text for a terminal."""
        lines = [f"# resolver setup for {self.platform}"]
        for file in self.files:
            lines += ["", f"# {file.path}", file.text.rstrip("\n")]
        if self.commands:
            lines += [
                "",
                "# then run (as root / Administrator):",
                *(f"  {command}" for command in self.commands),
            ]
        lines += [f"# note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"


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


def resolver_setup(platform: Platform, *, host: str, port: int, zones: Iterable[str]) -> ResolverSetup:
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
    if platform == "linux":
        address = f"[{server}]:{port}" if ":" in server else f"{server}:{port}"
        text = f"# {header}\n[Resolve]\nDNS={address}\nDomains={' '.join('~' + name for name in names)}\n"
        return ResolverSetup(
            "linux",
            (ResolverFile(SYSTEMD_DROP_IN, text),),
            ("systemctl restart systemd-resolved",),
            ("check with: resolvectl query app." + names[0],),
        )
    if platform == "macos":
        files = tuple(
            ResolverFile(f"{MACOS_RESOLVER_DIR}/{name}", f"# {header}\nnameserver {server}\nport {port}\n")
            for name in names
        )
        return ResolverSetup(
            "macos", files, (), (f"check with: scutil --dns | grep -A3 'domain   : {names[0]}'",)
        )
    rules = "".join(
        f'Add-DnsClientNrptRule -Namespace ".{name}" -NameServers "{server}" -Comment "actorproxy"\n'
        for name in names
    )
    notes = ["run it in an elevated PowerShell; Remove-DnsClientNrptRule undoes it"]
    if port != DNS_PORT:
        notes.append(
            f"Windows sends DNS queries to port 53 only: set dns.listen to {server}:53 (port {port} is not"
            " reachable through the NRPT)"
        )
    script = f"# {header}\n{rules}"
    command = f"powershell -ExecutionPolicy Bypass -File C:{WINDOWS_SCRIPT.replace('/', chr(92))}"
    return ResolverSetup("windows", (ResolverFile(WINDOWS_SCRIPT, script),), (command,), tuple(notes))


def apply_setup(setup: ResolverSetup, root: str | os.PathLike[str] = "/") -> list[Path]:
    """Write the setup's files under `root`; return the paths written.

    Raises:
        OSError: a file cannot be written (permissions: run as root, or give another root).
    """
    written = []
    for file in setup.files:
        target = Path(root).joinpath(*PurePosixPath(file.path).parts[1:])
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, file.text.encode(), 0o644)
        written.append(target)
    return written


def write_atomically(target: Path, data: bytes, mode: int) -> None:
    """Write `data` to `target` with `mode`: a temporary file beside it, renamed over it once complete."""
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
