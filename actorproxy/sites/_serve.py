"""`add_virtual_server`: the whole virtual server added to a `Server`: sites, DNS, the CA's certificates, and
one proxy service listening on HTTP and HTTPS.

    Server
    ├── SitesService "sites"              the table (park folders read live) and the `run` processes
    ├── DnsService "dns"                  the zones answered from the table, the rest forwarded
    ├── CertificateService "certificates" a certificate per site name, prepared and renewed
    └── HttpProxyService "sites-proxy"    http and https listeners (SNI picks the certificate)

Rules:
- Missing sections take their defaults (`dns:`, `ca:`, `sites_server:`); relative paths are taken from
  `base` (the configuration file's directory). The CA is created on first use (the user then trusts it once
  with `actorproxy ca trust`); its certificates go in its `certs/` directory.
- Only names the sites table has get a certificate (see `SiteCertificates`); `localhost` is the default.
- The DNS server and the certificates start once the table was read; the proxy once the certificates of the
  known names are ready.
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import attrs

from actorproxy.ca import CertificateService, LocalCA, PrepareCertificates, SiteCertificates, ca_path
from actorproxy.config import CaConf, DnsConf, ServerConf, SitesServerConf
from actorproxy.dns import DnsService, LocalNames, NameKind
from actorproxy.proxy import HttpProxyService
from actorproxy.server import Server
from actors import ActorDead, MailboxFull

from ._actor import SitesRuntime, SitesService
from ._app import SitesProxy

__all__ = ["VirtualServer", "add_virtual_server"]

logger = logging.getLogger("actorproxy.sites")

PROXY_NAME = "sites-proxy"


@attrs.frozen(eq=False)
class VirtualServer:
    """The services of a virtual server, once added to a `Server` (to reach their state and addresses)."""

    sites: SitesService
    dns: DnsService
    certificates: CertificateService
    proxy: HttpProxyService
    ca: LocalCA
    ca_created: bool

    @property
    def app(self) -> SitesProxy:
        return self.sites.runtime.app


def add_virtual_server(
    server: Server, conf: ServerConf | None = None, *, base: Path | None = None, ca_dir: Path | None = None
) -> VirtualServer:
    """Add the virtual server `conf` declares (default: the server's configuration) to `server`.

    Args:
        server: the server to run it.
        conf: the configuration; the server's when omitted.
        base: the directory relative paths start from; the current one when omitted.
        ca_dir: the CA's directory, overriding `ca.path`.

    Raises:
        CaError: the CA exists but cannot be used.
        OSError: the CA or the default certificate cannot be written.
    """
    conf = server.configuration if conf is None else conf
    base = (base or Path.cwd()).resolve()
    dns_conf = conf.dns or DnsConf()
    sites_conf = conf.sites_server or SitesServerConf()
    ca_conf = conf.ca or CaConf()
    names = LocalNames(dns_conf.zones)
    app = SitesProxy(start_timeout=sites_conf.start_timeout)

    directory = ca_dir if ca_dir is not None else ca_path(conf, base)
    ca, created = LocalCA.load_or_create(directory, dns_conf.zones)
    if created:
        logger.info("created a local CA in %s; trust it with `actorproxy ca trust --apply`", directory)

    def accept(name: str) -> bool:
        return names.zone_of(name) is not None and names.kind(name) is NameKind.SITE

    certificates = SiteCertificates(
        ca,
        directory / "certs",
        validity_period=ca_conf.validity_period,
        renewal_period=ca_conf.renewal_period,
        accept=accept,
    )
    cert_service = CertificateService(
        certificates, names.names, renew_check_interval=ca_conf.renew_check_interval
    )

    def on_names(site_names: list[str]) -> None:
        names.publish(site_names)
        system = server.system
        actor = system.whereis(f"{cert_service.name}/actor") if system is not None else None
        if actor is not None:
            # A nudge: a full or restarting actor prepares the names at its next round anyway.
            with contextlib.suppress(MailboxFull, ActorDead):
                actor.tell_nowait(PrepareCertificates())

    zone = dns_conf.zones[0] if dns_conf.zones else "test"
    runtime = SitesRuntime(conf, base, zone, sites_conf, app, on_names)
    sites = SitesService(runtime)
    dns = DnsService(dns_conf, names)
    proxy = HttpProxyService(app, name=PROXY_NAME, conf=conf)
    if sites_conf.http is not None:
        proxy.add_tcp(sites_conf.http)
    if sites_conf.https is not None:
        cert, key = certificates.default_files()
        proxy.add_tls(sites_conf.https, str(cert), str(key), sni_callback=certificates.sni_callback)
    server.add_service(sites)
    server.add_service(dns, depends_on=[sites])
    server.add_service(cert_service, depends_on=[sites])
    server.add_service(proxy, depends_on=[sites, cert_service])
    return VirtualServer(sites, dns, cert_service, proxy, ca, created)
