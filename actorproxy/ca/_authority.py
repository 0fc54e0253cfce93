"""`LocalCA`: the root certificate authority of the virtual server, and the site certificates it signs.

Rules:
- Keys are ECDSA P-256 (quick to make: a certificate can be issued during a TLS handshake) and
  signatures SHA-256.
- The root is valid ten years and may sign only end-entity certificates (path length 0). It carries name
  constraints: it can vouch for names under its zones, `localhost` and loopback addresses, and nothing
  else, so a stolen key cannot impersonate any real site. A zone added later needs a new root
  (`actorproxy ca init --force`).
- A site certificate names one host (its only subject alternative name), is for server authentication
  only, and lives `validity_period` seconds (never past the root's own end).
- Files: `rootCA.pem` and `rootCA-key.pem` in the CA's directory (mkcert's names); the key is written with
  mode 0600 before it holds a byte. Loading checks that the key and the certificate belong together.
"""

from __future__ import annotations

import datetime
import getpass
import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path

import attrs
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from actorproxy.server import write_atomically

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "CaError",
    "IssuedCertificate",
    "LocalCA",
    "default_ca_path",
]

CA_CERT_FILE = "rootCA.pem"
CA_KEY_FILE = "rootCA-key.pem"
# Ten years, as mkcert's roots.
ROOT_VALIDITY = datetime.timedelta(days=3650)
# Certificates start an hour in the past, so a clock a little behind still accepts them.
BACKDATE = datetime.timedelta(hours=1)
# What the root may vouch for besides its zones.
ALWAYS_PERMITTED = ("localhost",)
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")


class CaError(Exception):
    """The CA cannot be used: its files are missing, unreadable, or do not belong together."""


def default_ca_path() -> Path:
    """Where the CA lives unless configured: $ACTORPROXY_CAROOT, else the user's data directory."""
    root = os.environ.get("ACTORPROXY_CAROOT")
    if root:
        return Path(root)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "actorproxy" / "ca"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


@attrs.frozen
class IssuedCertificate:
    """A site certificate: its PEM (leaf, then the root), its key's PEM, and when it expires."""

    name: str
    cert_pem: bytes
    key_pem: bytes
    not_after: datetime.datetime


class LocalCA:
    """A root certificate and key that sign site certificates (see the module rules).

    Build one with `LocalCA.create` or `LocalCA.load`.
    """

    def __init__(
        self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, path: Path | None = None
    ) -> None:
        self.cert = cert
        self.key = key
        self.path = path

    def __repr__(self) -> str:
        return (
            f"<LocalCA {self.cert.subject.rfc4514_string()} until {self.cert.not_valid_after_utc:%Y-%m-%d}>"
        )

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def fingerprint(self) -> str:
        """The root certificate's SHA-256 fingerprint, hex."""
        return self.cert.fingerprint(hashes.SHA256()).hex()

    @classmethod
    def create(cls, zones: Iterable[str] = ("test",), *, now: datetime.datetime | None = None) -> LocalCA:
        """A new root for `zones` (not written anywhere; see `save`)."""
        now = now or _now()
        key = ec.generate_private_key(ec.SECP256R1())
        label = f"actorproxy local CA {getpass.getuser()}@{socket.gethostname()}"
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "actorproxy local CA"),
                x509.NameAttribute(NameOID.COMMON_NAME, label[:64]),
            ]
        )
        permitted: list[x509.GeneralName] = [
            x509.DNSName(zone.strip(".").lower()) for zone in (*zones, *ALWAYS_PERMITTED)
        ]
        permitted += [x509.IPAddress(ipaddress.ip_network(network)) for network in LOOPBACK_NETWORKS]
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(now + ROOT_VALIDITY)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.NameConstraints(permitted_subtrees=permitted, excluded_subtrees=None), critical=True
            )
            .sign(key, hashes.SHA256())
        )
        return cls(cert, key)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the root's certificate and key (mode 0600) into the directory `path` (made if missing)."""
        directory = Path(path)
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_atomically(directory / CA_KEY_FILE, _pem_key(self.key), 0o600)
        write_atomically(directory / CA_CERT_FILE, self.cert_pem, 0o644)
        self.path = directory

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> LocalCA:
        """The root in the directory `path`.

        Raises:
            CaError: the files are missing or unreadable, or the key is not the certificate's.
        """
        directory = Path(path)
        try:
            cert = x509.load_pem_x509_certificate((directory / CA_CERT_FILE).read_bytes())
            key = serialization.load_pem_private_key((directory / CA_KEY_FILE).read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise CaError(
                f"no CA in {directory} (run `actorproxy ca init`): {exc.filename} is missing"
            ) from None
        except (OSError, ValueError) as exc:
            raise CaError(f"the CA in {directory} cannot be read: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePrivateKey) or key.public_key() != cert.public_key():
            raise CaError(f"{directory / CA_KEY_FILE} is not the key of {directory / CA_CERT_FILE}")
        return cls(cert, key, directory)

    @classmethod
    def load_or_create(
        cls, path: str | os.PathLike[str], zones: Iterable[str] = ("test",)
    ) -> tuple[LocalCA, bool]:
        """The root in `path`, or a new one saved there; the flag says whether it was created."""
        if (Path(path) / CA_CERT_FILE).exists():
            return cls.load(path), False
        ca = cls.create(zones)
        ca.save(path)
        return ca, True

    def issue(
        self, name: str, *, validity_period: float, now: datetime.datetime | None = None
    ) -> IssuedCertificate:
        """A certificate for the host `name` (or an IP literal), valid `validity_period` seconds."""
        now = now or _now()
        key = ec.generate_private_key(ec.SECP256R1())
        public = key.public_key()
        try:
            alternative: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(name))
        except ValueError:
            alternative = x509.DNSName(name)
        not_after = min(now + datetime.timedelta(seconds=validity_period), self.cert.not_valid_after_utc)
        issuer_key_id = self.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name[:64])]))
            .issuer_name(self.cert.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - BACKDATE)
            .not_valid_after(not_after)
            .add_extension(x509.SubjectAlternativeName([alternative]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_key_id), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        chain = cert.public_bytes(serialization.Encoding.PEM) + self.cert_pem
        return IssuedCertificate(name, chain, _pem_key(key), cert.not_valid_after_utc)
