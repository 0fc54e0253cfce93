"""The virtual server's sites: `sites:` (declared), `park:` (folders whose directories are sites), `ca:` (the
local certificate authority) and `sites_server:` (where the sites are served, and how their processes run).

A site is a host name (`app.test`, or `*.app.test` for its subdomains) and exactly one way to answer it:
`proxy` (an HTTP server that runs anyway), `root` (static files) or `run` (a command the server starts on a
free port, `{port}` in the command or `$PORT` in its environment). Relative paths are taken from the
directory of the configuration file.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import ClassVar

import attrs

from ._checks import at_least, check_class, doc, parsed_by
from ._frozen import EMPTY, freeze_mapping
from ._rules import LISTEN_ADDRESS, PATH, POSITIVE

__all__ = ["CaConf", "ParkConf", "SiteConf", "SitesServerConf"]

# A site name: two DNS labels or more, or `*.` and labels for every subdomain (as a declared route's host).
_SITE_NAME = re.compile(r"(\*\.[A-Za-z0-9_-]+|[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)(\.[A-Za-z0-9_-]+)*\.?")
_PROXY_URL = re.compile(r"https?://[^/\s]+/?")
# A day in seconds, for the certificate periods below.
DAY = 86400.0
# 90 days: short-lived certificates (as ACME issues) that the server renews itself.
DEFAULT_CERTIFICATE_VALIDITY = 90 * DAY
# Renew a third of the way before expiry (ACME clients' usual rule: at 60 of 90 days).
DEFAULT_CERTIFICATE_RENEWAL = 30 * DAY
# Every hour the certificates are checked for renewal.
DEFAULT_RENEW_CHECK_INTERVAL = 3600.0
# A parked folder is looked at every two seconds (a new directory is a site within that time).
DEFAULT_PARK_INTERVAL = 2.0
# An application gets half a minute to answer on its port (frameworks that compile on start need it).
DEFAULT_SITE_START_TIMEOUT = 30.0
# Grace between SIGTERM and SIGKILL for a site's process (systemd's default is 90 s; a dev server needs less).
DEFAULT_SITE_STOP_TIMEOUT = 5.0
# A crashing application is restarted after 0.5 s, then 1, 2, ... up to 30 s between tries.
DEFAULT_RESTART_MIN_INTERVAL = 0.5
DEFAULT_RESTART_MAX_INTERVAL = 30.0


def _site_name(value: str) -> None:
    if not _SITE_NAME.fullmatch(value):
        raise ValueError(f"expected a host name such as app.test (or *.app.test), got {value!r}")


def _proxy_url(value: str) -> None:
    if not _PROXY_URL.fullmatch(value):
        raise ValueError(f"expected http://host:port or https://host:port, got {value!r}")


def _command(value: str) -> None:
    if not value.strip():
        raise ValueError("expected a command, got an empty string")
    try:
        value.format(port=0)
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(f"only {{port}} may appear in braces (write {{{{ for a brace): {exc}") from None


@attrs.frozen(kw_only=True)
class SiteConf:
    """A site: a host name and exactly one of `proxy`, `root` and `run`."""

    __one_of__: ClassVar[tuple[str, ...]] = ("proxy", "root", "run")

    name: str = attrs.field(
        validator=parsed_by(_site_name, pattern=_SITE_NAME.pattern),
        metadata=doc("The host name, e.g. app.test; *.app.test for every subdomain of app.test."),
    )
    proxy: str | None = attrs.field(
        default=None,
        validator=parsed_by(_proxy_url, "http://host:port"),
        metadata=doc("Send the site's requests to this HTTP server, http://host:port or https://host:port."),
    )
    root: str | None = attrs.field(
        default=None, validator=PATH, metadata=doc("Serve the static files of this directory.")
    )
    run: str | None = attrs.field(
        default=None,
        validator=parsed_by(_command, "a command"),
        metadata=doc(
            "Start this shell command on a free port ({port} in the command, and $PORT) and send the"
            " site's requests to it once the port answers; restarted when it exits."
        ),
    )
    cwd: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc("Working directory of `run`; null: the configuration file's directory."),
    )
    env: Mapping[str, str] = attrs.field(
        default=EMPTY,
        converter=freeze_mapping,
        hash=False,
        metadata=doc("Environment variables added for `run`."),
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)


@attrs.frozen(kw_only=True)
class ParkConf:
    """A folder whose every directory `name` is the site `name.<zone>`, found while the server runs."""

    # A bare string in the file is this field.
    __shorthand__: ClassVar[str] = "path"

    path: str = attrs.field(validator=PATH, metadata=doc("The folder."))
    zone: str | None = attrs.field(
        default=None, metadata=doc("The zone of its sites; null: the first of dns.zones (test).")
    )


@attrs.frozen(kw_only=True)
class CaConf:
    """The local certificate authority that signs the sites' certificates."""

    path: str | None = attrs.field(
        default=None,
        validator=PATH,
        metadata=doc(
            "Directory of the CA's certificate and key and of the issued certificates; null: the user's"
            " data directory (~/.local/share/actorproxy/ca, or $ACTORPROXY_CAROOT)."
        ),
    )
    validity_period: float = attrs.field(
        default=DEFAULT_CERTIFICATE_VALIDITY,
        validator=POSITIVE,
        metadata=doc("Seconds an issued site certificate is valid (90 days)."),
    )
    renewal_period: float = attrs.field(
        default=DEFAULT_CERTIFICATE_RENEWAL,
        validator=POSITIVE,
        metadata=doc("A certificate with less than this many seconds left is issued anew (30 days)."),
    )
    renew_check_interval: float = attrs.field(
        default=DEFAULT_RENEW_CHECK_INTERVAL,
        validator=POSITIVE,
        metadata=doc("Seconds between checks for certificates to renew."),
    )


@attrs.frozen(kw_only=True)
class SitesServerConf:
    """Where `actorproxy serve-sites` serves the sites, and how it runs their processes."""

    http: str | None = attrs.field(
        default="127.0.0.1:8080",
        validator=LISTEN_ADDRESS,
        metadata=doc("host:port of plain HTTP; null: none."),
    )
    https: str | None = attrs.field(
        default="127.0.0.1:8443",
        validator=LISTEN_ADDRESS,
        metadata=doc("host:port of HTTPS, with a certificate per site name from the local CA; null: none."),
    )
    state_dir: str = attrs.field(
        default=".actorproxy",
        validator=PATH,
        metadata=doc("Directory of the sites' logs and of the status `actorproxy sites` reads."),
    )
    park_interval: float = attrs.field(
        default=DEFAULT_PARK_INTERVAL,
        validator=POSITIVE,
        metadata=doc("Seconds between looks at the park folders."),
    )
    start_timeout: float = attrs.field(
        default=DEFAULT_SITE_START_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds a `run` site has to answer on its port before it counts as failed."),
    )
    stop_timeout: float = attrs.field(
        default=DEFAULT_SITE_STOP_TIMEOUT,
        validator=POSITIVE,
        metadata=doc("Seconds between SIGTERM and SIGKILL when a `run` site's process is stopped."),
    )
    restart_min_interval: float = attrs.field(
        default=DEFAULT_RESTART_MIN_INTERVAL,
        validator=POSITIVE,
        metadata=doc("Seconds before the first restart of a process that exited; doubled each time."),
    )
    restart_max_interval: float = attrs.field(
        default=DEFAULT_RESTART_MAX_INTERVAL,
        validator=POSITIVE,
        metadata=doc("The longest wait between restarts, seconds."),
    )
    max_restarts: int = attrs.field(
        default=1000,
        validator=at_least(1),
        metadata=doc("Restarts of one process within ten minutes before its site is given up."),
    )


for _cls in (SiteConf, ParkConf, CaConf, SitesServerConf):
    attrs.resolve_types(_cls)
