"""How to make a platform trust the local CA: a `SystemSetup` per platform, printed or applied.

Rules:
- Debian and Ubuntu: the root goes to `/usr/local/share/ca-certificates/` as a `.crt` (named with the
  start of its fingerprint, so a new root never overwrites an old one silently), then
  `update-ca-certificates` adds it to the system bundle (curl, Python's ssl, most programs).
- macOS: `security add-trusted-cert` puts it in the System keychain as a trusted root (Safari, Chrome,
  curl).
- Windows: `certutil -addstore ROOT` (Edge, Chrome).
- Firefox keeps its own store on every platform, and Chrome on Linux reads the NSS database of the user:
  the notes say how to add the root there. Nothing here touches a browser profile.
"""

from __future__ import annotations

from pathlib import Path

from actorproxy.server import SystemFile, SystemSetup

from ._authority import CA_CERT_FILE, LocalCA

__all__ = ["trust_setup"]

DEBIAN_CA_DIR = "/usr/local/share/ca-certificates"
NSS_NICKNAME = "actorproxy local CA"


def trust_setup(ca: LocalCA, platform: str) -> SystemSetup:
    """What makes `platform` ("linux", "macos", "windows") trust `ca`.

    Raises:
        ValueError: an unknown platform, or a CA that was never saved (its certificate has no path).
    """
    if ca.path is None:
        raise ValueError("the CA has no files yet: save it first (`actorproxy ca init`)")
    cert = Path(ca.path) / CA_CERT_FILE
    title = f"trusting the local CA {ca.fingerprint[:16]} on {platform}"
    firefox = (
        "Firefox has its own store: in about:config set security.enterprise_roots.enabled to true (it then"
        " trusts the system's roots on macOS and Windows), or import the root under Settings > Privacy &"
        " Security > View Certificates > Authorities; on Linux: certutil -A -d sql:<profile directory>"
        f" -t C,, -n '{NSS_NICKNAME}' -i {cert}"
    )
    tools = f"programs with their own bundle: curl --cacert {cert}, SSL_CERT_FILE, NODE_EXTRA_CA_CERTS={cert}"
    if platform == "linux":
        chrome = (
            f"Chrome and Chromium on Linux read ~/.pki/nssdb: certutil -d sql:$HOME/.pki/nssdb -A -t C,,"
            f" -n '{NSS_NICKNAME}' -i {cert} (certutil is in libnss3-tools)"
        )
        name = f"actorproxy-{ca.fingerprint[:16]}.crt"
        return SystemSetup(
            title,
            (SystemFile(f"{DEBIAN_CA_DIR}/{name}", ca.cert_pem.decode()),),
            ("update-ca-certificates",),
            (chrome, firefox, tools),
        )
    if platform == "macos":
        command = f"security add-trusted-cert -d -r trustRoot -k /Library/Keychains/System.keychain {cert}"
        return SystemSetup(title, (), (command,), (firefox, tools))
    if platform == "windows":
        return SystemSetup(title, (), (f"certutil -addstore -f ROOT {cert}",), (firefox, tools))
    raise ValueError(f"unknown platform {platform!r} (expected linux, macos or windows)")
