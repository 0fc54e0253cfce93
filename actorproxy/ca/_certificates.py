"""`SiteCertificates`: a TLS context per site name, for the listener's SNI callback.

Rules:
- The listener's context holds the `localhost` certificate (for clients that send no server name) and
  `sni_callback`, which swaps in the context of the name the client asked for. A name's context is taken
  from memory; else from its files on disk (`certs/<name>.pem` and `certs/<name>-key.pem`, the key 0600);
  else a certificate is issued by the local CA, written, and kept. A certificate with less than
  `renewal_period` seconds left is issued anew.
- Only names `accept` approves get a certificate (the sites and the names under a wildcard site); any other
  name gets the `localhost` certificate, which the client will refuse. So a client cannot make the server
  issue, store and keep certificates for names without end.
- The SNI callback runs inside the TLS handshake, on the event loop, where nothing can be awaited. The
  certificates of the names known in advance are therefore prepared off the event loop (`prepare`, in a
  worker thread, by `CertificateActor`), and the callback issues synchronously only for a name seen for the
  first time under a wildcard site: one P-256 key, one signature and two small files, about a
  millisecond, once per name.
- `prepare` builds entries without touching the table; `install` puts them in, on the event loop. The table
  is only ever changed there.
"""

from __future__ import annotations

import datetime
import logging
import os
import ssl
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
from cryptography import x509

from actorproxy.server import write_atomically

from ._authority import IssuedCertificate, LocalCA

__all__ = ["CertificateStatistics", "SiteCertificates"]

logger = logging.getLogger("actorproxy.ca")

#: The name of the certificate served to clients that send no server name.
DEFAULT_NAME = "localhost"


@attrs.frozen
class _Entry:
    context: ssl.SSLContext = attrs.field(eq=False)
    not_after: datetime.datetime


@attrs.frozen(kw_only=True)
class CertificateStatistics:
    """How many certificates are held, and what happened to them so far."""

    names: int
    issued: int
    loaded: int
    refused: int
    #: Rounds of preparation done by the `CertificateActor` (0 when read from the certificates directly).
    rounds: int = 0


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert_path, key_path)
    return context


class SiteCertificates:
    """Certificates by site name, issued on first use, kept in memory and on disk (see the module rules).

    Args:
        ca: the local CA that signs them.
        directory: where they are kept (made if missing).
        validity_period: seconds a new certificate is valid.
        renewal_period: a certificate with less than this left is issued anew.
        accept: which names (lower case, no final dot) may get a certificate; None: every name.
    """

    def __init__(
        self,
        ca: LocalCA,
        directory: str | os.PathLike[str],
        *,
        validity_period: float,
        renewal_period: float,
        accept: Callable[[str], bool] | None = None,
    ) -> None:
        self.ca = ca
        self.directory = Path(directory)
        self.validity_period = validity_period
        self.renewal_period = datetime.timedelta(seconds=renewal_period)
        self.accept = accept
        self._entries: dict[str, _Entry] = {}
        self.issued = 0
        self.loaded = 0
        self.refused = 0

    def __repr__(self) -> str:
        return f"<SiteCertificates {self.directory} names={len(self._entries)}>"

    def statistics(self) -> CertificateStatistics:
        return CertificateStatistics(
            names=len(self._entries), issued=self.issued, loaded=self.loaded, refused=self.refused
        )

    def names(self) -> list[str]:
        """The names that have a certificate in memory."""
        return sorted(self._entries)

    def not_after(self, name: str) -> datetime.datetime | None:
        """When the certificate held for `name` expires; None when none is held."""
        entry = self._entries.get(name)
        return None if entry is None else entry.not_after

    # -- files ---------------------------------------------------------------------------------------------

    def files(self, name: str) -> tuple[Path, Path]:
        """The certificate and key files of `name`."""
        stem = name.replace("*", "_wildcard")
        return self.directory / f"{stem}.pem", self.directory / f"{stem}-key.pem"

    def _fresh(self, not_after: datetime.datetime, now: datetime.datetime) -> bool:
        return not_after - now > self.renewal_period

    def _load_or_issue(self, name: str, now: datetime.datetime) -> _Entry:
        """The entry of `name` from its files, or from a new certificate (blocking: files and crypto)."""
        cert_path, key_path = self.files(name)
        try:
            not_after = x509.load_pem_x509_certificate(cert_path.read_bytes()).not_valid_after_utc
        except (OSError, ValueError):
            not_after = None
        if not_after is not None and self._fresh(not_after, now) and key_path.exists():
            try:
                entry = _Entry(_server_context(cert_path, key_path), not_after)
            except (OSError, ssl.SSLError) as exc:
                logger.warning("%s: cannot use %s (%s); issuing a new certificate", name, cert_path, exc)
            else:
                self.loaded += 1
                return entry
        issued = self.ca.issue(name, validity_period=self.validity_period, now=now)
        self._write(issued)
        self.issued += 1
        logger.info("issued a certificate for %s, valid until %s", name, f"{issued.not_after:%Y-%m-%d %H:%M}")
        return _Entry(_server_context(cert_path, key_path), issued.not_after)

    def _write(self, issued: IssuedCertificate) -> None:
        cert_path, key_path = self.files(issued.name)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(key_path, issued.key_pem, 0o600)
        write_atomically(cert_path, issued.cert_pem, 0o644)

    # -- off the event loop --------------------------------------------------------------------------------

    def prepare(self, names: Iterable[str], *, now: datetime.datetime | None = None) -> dict[str, Any]:
        """Entries for `names` and for the held names due for renewal, made without touching the table.

        Blocking (files and crypto): run it in a worker thread, then `install` the result.
        """
        now = now or _now()
        wanted = {name.rstrip(".").lower() for name in names} | {DEFAULT_NAME}
        wanted |= {name for name, entry in self._entries.items() if not self._fresh(entry.not_after, now)}
        entries: dict[str, Any] = {}
        for name in sorted(wanted):
            entry = self._entries.get(name)
            if entry is None or not self._fresh(entry.not_after, now):
                entries[name] = self._load_or_issue(name, now)
        return entries

    def install(self, entries: dict[str, Any]) -> None:
        """Put entries made by `prepare` in the table (on the event loop)."""
        self._entries.update(entries)

    # -- in the handshake ----------------------------------------------------------------------------------

    def context_for(self, name: str, *, now: datetime.datetime | None = None) -> ssl.SSLContext | None:
        """The context of `name`, issued now if needed; None when `accept` refuses the name."""
        name = name.rstrip(".").lower()
        now = now or _now()
        entry = self._entries.get(name)
        if entry is not None and self._fresh(entry.not_after, now):
            return entry.context
        if self.accept is not None and name != DEFAULT_NAME and not self.accept(name):
            self.refused += 1
            return None
        entry = self._load_or_issue(name, now)
        self._entries[name] = entry
        return entry.context

    def sni_callback(self, ssl_object: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        """`ssl.SSLContext.sni_callback`: switch the connection to the certificate of `server_name`."""
        if not server_name:
            return
        chosen = self.context_for(server_name)
        if chosen is not None:
            ssl_object.context = chosen

    def default_files(self) -> tuple[Path, Path]:
        """The files of the `localhost` certificate, issued if needed (blocking), for the listener."""
        if DEFAULT_NAME not in self._entries:
            self.install({DEFAULT_NAME: self._load_or_issue(DEFAULT_NAME, _now())})
        return self.files(DEFAULT_NAME)
