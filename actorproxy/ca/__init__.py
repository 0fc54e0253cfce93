"""The local certificate authority of the virtual server, and automatic TLS for the sites.

    ca, created = LocalCA.load_or_create(path, zones=["test"])
    certificates = SiteCertificates(ca, path / "certs", validity_period=..., renewal_period=...)
    cert, key = certificates.default_files()
    proxy.add_tls("127.0.0.1:8443", str(cert), str(key), sni_callback=certificates.sni_callback)

Each site name gets its own certificate, signed by the local CA on first use (by SNI), kept in memory and
on disk, and issued anew before it expires. `actorproxy ca init` creates the CA, `actorproxy ca trust`
makes the machine trust it. See docs/virtual-server.md.
"""

from ._actor import (
    CertificateActor,
    CertificateService,
    GetCertificateStatistics,
    PrepareCertificates,
    RenewCertificates,
)
from ._authority import CA_CERT_FILE, CA_KEY_FILE, CaError, IssuedCertificate, LocalCA, default_ca_path
from ._certificates import DEFAULT_NAME, CertificateStatistics, SiteCertificates
from ._command import ca_command, ca_path
from ._trust import trust_setup

__all__ = [
    "CA_CERT_FILE",
    "CA_KEY_FILE",
    "DEFAULT_NAME",
    "CaError",
    "CertificateActor",
    "CertificateService",
    "CertificateStatistics",
    "GetCertificateStatistics",
    "IssuedCertificate",
    "LocalCA",
    "PrepareCertificates",
    "RenewCertificates",
    "SiteCertificates",
    "ca_command",
    "ca_path",
    "default_ca_path",
    "trust_setup",
]
