"""The virtual server's sites: `myapp.test` in a browser reaches the app you work on, over HTTPS.

A site is a host name answered by static files (`root:`), another HTTP server (`proxy:`) or a process the
server starts on a free port and supervises (`run:`); every directory of a `park:` folder is a site too,
found while the server runs. `add_virtual_server` adds the sites, the DNS server, the CA's certificates and
the HTTP/HTTPS proxy to a `Server`; `actorproxy serve-sites` does it from a file or a folder. See
docs/virtual-server.md.
"""

from ._actor import GetSites, ScanSites, SitesActor, SitesRuntime, SitesService
from ._app import SiteRoute, SitesProxy, build_routing, route_for
from ._command import serve_sites_command, sites_command
from ._definitions import SITE_FILE, SiteDefinition, SiteKind, configured_sites, merge_sites, scan_park
from ._process import (
    ProcessSettings,
    ProcessStatus,
    RunningSite,
    SiteProcessActor,
    SiteProcessFailed,
    free_port,
)
from ._serve import VirtualServer, add_virtual_server
from ._static import INDEX_FILES, ByteRange, StaticFiles, parse_range, resolve_request_path
from ._status import STATUS_FILE, read_status, site_row, write_status

__all__ = [
    "INDEX_FILES",
    "SITE_FILE",
    "STATUS_FILE",
    "ByteRange",
    "GetSites",
    "ProcessSettings",
    "ProcessStatus",
    "RunningSite",
    "ScanSites",
    "SiteDefinition",
    "SiteKind",
    "SiteProcessActor",
    "SiteProcessFailed",
    "SiteRoute",
    "SitesActor",
    "SitesProxy",
    "SitesRuntime",
    "SitesService",
    "StaticFiles",
    "VirtualServer",
    "add_virtual_server",
    "build_routing",
    "configured_sites",
    "free_port",
    "merge_sites",
    "parse_range",
    "read_status",
    "resolve_request_path",
    "route_for",
    "scan_park",
    "serve_sites_command",
    "site_row",
    "sites_command",
    "write_status",
]
