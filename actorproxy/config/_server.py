"""`ServerConf`: the whole configuration file as one frozen record.

Rules:
- Every key of Pingora's `ServerConf`, with Pingora's default, except the two paths named after the project
  (see `DEFAULT_PID_FILE`). Durations are float seconds where Pingora has whole seconds.
- The file may also declare `services` and `upstreams` (the proxy without Python); each component is handed
  its own section, never the whole record.
- Keys the record does not know are kept, read-only, in `extra` (Pingora's rule for user-defined settings);
  the loader warns about the ones that look like a typo of a known key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar, Final

import attrs

from . import _dump
from ._access import MISSING, lookup
from ._address import parse_ip
from ._admin import AdminConf
from ._checks import DOC, Check, at_least, check_class, did_you_mean, doc, each, equal_to, parsed_by
from ._defaults import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT,
    DEFAULT_MAX_RETRIES,
    DEFAULT_POOL_SIZE,
)
from ._dns import DnsConf
from ._frozen import EMPTY, freeze_mapping
from ._limits import RateLimitTableConf
from ._metrics import MetricsConf
from ._proxy import ProxySettings
from ._read import read_text, record_from_mapping
from ._redis import RedisConf
from ._rules import NON_NEGATIVE, POSITIVE
from ._services import ServiceConf
from ._settings import HooksConf, SettingsConf
from ._sites import CaConf, ParkConf, SiteConf, SitesServerConf
from ._store import StoreConf
from ._upstreams import UpstreamConf
from ._yaml import parse_yaml

__all__ = ["DEFAULT_PID_FILE", "DEFAULT_UPGRADE_SOCK", "PINGORA_RUNTIME_KEYS", "ServerConf"]

# Pingora writes /tmp/pingora.pid and /tmp/pingora_upgrade.sock. The project's own names keep a Pingora
# process and an actorproxy process on one host from taking each other's pid file, and above all from
# handing listening sockets to each other through the upgrade socket.
DEFAULT_PID_FILE = "/tmp/actorproxy.pid"
DEFAULT_UPGRADE_SOCK = "/tmp/actorproxy_upgrade.sock"

#: Keys newer Pingora versions read that tune its Tokio runtime or TLS library and mean nothing here. They
#: are kept in `extra` like any unknown key, but never taken for a typo of a known one.
PINGORA_RUNTIME_KEYS: Final = frozenset(
    {
        "runtime_enable_alt_timer",
        "downstream_tls_offload_threadpools",
        "downstream_tls_offload_thread_per_pool",
        "blocking_threads_ttl_seconds",
        "fast_timeout_to_tokio_threshold_seconds",
        "runtime_metrics_poll_time_histogram",
        "runtime_metrics_poll_time_histogram_scale",
        "runtime_metrics_poll_time_histogram_resolution_micros",
        "runtime_metrics_poll_time_histogram_buckets",
        "s2n_config_cache_size",
    }
)


def _ipv(version: int) -> Check:
    return each(
        parsed_by(lambda value: parse_ip(value, version), f"an IPv{version} address", format=f"ipv{version}")
    )


@attrs.frozen(kw_only=True)
class ServerConf:
    """The configuration file: Pingora's server settings, the declared proxy, and user-defined keys.

    Build one with `load_conf`, `ServerConf.load_yaml`, `from_yaml` or `from_mapping` (which report every
    problem with its key path), or directly with keywords (`ServerConf(threads=4)`), which validates too.
    """

    # Keys of the file that are not fields land in this field.
    __extra__: ClassVar[str] = "extra"

    version: int = attrs.field(
        default=1, validator=equal_to(1), metadata=doc("Version of the file format; 1.")
    )
    daemon: bool = attrs.field(default=False, metadata=doc("Run in the background."))
    error_log: str | None = attrs.field(
        default=None, metadata=doc("File stdout and stderr go to in daemon mode (appended); null: discarded.")
    )
    pid_file: str = attrs.field(
        default=DEFAULT_PID_FILE,
        metadata=doc(
            "File the daemon writes its process id to, removed when it exits (Pingora: /tmp/pingora.pid)."
        ),
    )
    upgrade_sock: str = attrs.field(
        default=DEFAULT_UPGRADE_SOCK,
        metadata=doc(
            "Unix socket the old and new process hand listening sockets over during a graceful upgrade"
            " (Pingora: /tmp/pingora_upgrade.sock)."
        ),
    )
    user: str | None = attrs.field(
        default=None, metadata=doc("User (name or id) to switch to once the listeners are bound.")
    )
    group: str | None = attrs.field(
        default=None, metadata=doc("Group (name or id) to switch to once the listeners are bound.")
    )
    working_directory: str | None = attrs.field(
        default=None, metadata=doc("Directory to change to after daemonizing; null: stay.")
    )
    threads: int = attrs.field(
        default=1,
        validator=at_least(1),
        metadata=doc(
            "Worker processes (Python runs one thread of code at a time per process): 1 serves in the"
            " server's process; N > 1 forks N workers sharing the listening sockets under a master."
        ),
    )
    listener_tasks_per_fd: int = attrs.field(
        default=1, validator=at_least(1), metadata=doc("Accept loops per listening socket.")
    )
    work_stealing: bool = attrs.field(
        default=True,
        metadata=doc(
            "Pingora: a service's threads take each other's tasks. No effect here: a connection stays in"
            " the worker process that accepted it; the shared accept queue spreads new ones."
        ),
    )
    ca_file: str | None = attrs.field(
        default=None,
        metadata=doc("CA bundle that upstream certificates are checked against; null: the system's."),
    )
    grace_period_seconds: float | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Seconds requests in flight get to finish after SIGTERM or SIGQUIT before they are cancelled;"
            f" null: {DEFAULT_GRACE_PERIOD:g} (Pingora's)."
        ),
    )
    graceful_shutdown_timeout_seconds: float | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Seconds the cancellation after the grace period may take;"
            f" null: {DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT:g} (Pingora's)."
        ),
    )
    client_bind_to_ipv4: tuple[str, ...] = attrs.field(
        default=(), validator=_ipv(4), metadata=doc("Source IPv4 addresses for connections to upstreams.")
    )
    client_bind_to_ipv6: tuple[str, ...] = attrs.field(
        default=(), validator=_ipv(6), metadata=doc("Source IPv6 addresses for connections to upstreams.")
    )
    upstream_keepalive_pool_size: int = attrs.field(
        default=DEFAULT_POOL_SIZE,
        validator=NON_NEGATIVE,
        metadata=doc("Idle upstream connections kept for reuse, in total."),
    )
    upstream_connect_offload_threadpools: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Dedicated thread pools for opening upstream connections."),
    )
    upstream_connect_offload_thread_per_pool: int | None = attrs.field(
        default=None, validator=at_least(1), metadata=doc("Threads in each of those pools.")
    )
    upstream_debug_ssl_keylog: bool = attrs.field(
        default=False,
        metadata=doc("Write upstream TLS secrets to the file named by SSLKEYLOGFILE, for debugging."),
    )
    max_retries: int = attrs.field(
        default=DEFAULT_MAX_RETRIES,
        validator=NON_NEGATIVE,
        metadata=doc(
            "Tries of one request in all, the first included, while its failures are retry-able (Pingora's"
            " rule; 0 still makes one)."
        ),
    )
    upgrade_sock_connect_accept_max_retries: int | None = attrs.field(
        default=None,
        validator=NON_NEGATIVE,
        metadata=doc("Attempts, one second apart, to connect or accept on the upgrade socket; null: 5."),
    )
    max_blocking_threads: int | None = attrs.field(
        default=None,
        validator=at_least(1),
        metadata=doc("Most threads running blocking calls at once; null: default."),
    )
    daemon_wait_for_ready: bool = attrs.field(
        default=False, metadata=doc("The daemonizing parent exits only once the child is ready to serve.")
    )
    daemon_ready_timeout_seconds: float | None = attrs.field(
        default=None, validator=POSITIVE, metadata=doc("Seconds that parent waits for the child; null: 600.")
    )
    daemon_notify_timeout_seconds: float | None = attrs.field(
        default=None,
        validator=POSITIVE,
        metadata=doc("Seconds the child keeps retrying to tell the parent it is ready; null: 60."),
    )
    services: tuple[ServiceConf, ...] = attrs.field(
        default=(), metadata=doc("Proxy services declared in the file.")
    )
    upstreams: tuple[UpstreamConf, ...] = attrs.field(
        default=(), metadata=doc("Upstream clusters the services' routes send to.")
    )
    redis: RedisConf | None = attrs.field(
        default=None,
        metadata=doc("The Redis server shared limits and the redis store use; null: none configured."),
    )
    settings: SettingsConf = attrs.field(
        factory=SettingsConf,
        metadata=doc("Where the settings file (named values, secrets, overrides) and its key are."),
    )
    hooks: HooksConf = attrs.field(
        factory=HooksConf, metadata=doc("Commands run after `actorproxy settings` changed a value.")
    )
    rate_limit_table: RateLimitTableConf = attrs.field(
        factory=RateLimitTableConf,
        metadata=doc("Where the routes' local rate limits are counted, shared by the workers."),
    )
    metrics: MetricsConf | None = attrs.field(
        default=None,
        metadata=doc("The Prometheus scrape page (`metrics: {listen: 127.0.0.1:6192}`); null: none."),
    )
    store: StoreConf | None = attrs.field(
        default=None,
        metadata=doc("The embedded store (actorproxy.store); null: none configured."),
    )
    dns: DnsConf | None = attrs.field(
        default=None,
        metadata=doc("The DNS server of `actorproxy serve-sites`; null: its defaults there, none elsewhere."),
    )
    sites: tuple[SiteConf, ...] = attrs.field(
        default=(), metadata=doc("Sites `actorproxy serve-sites` serves (see docs/virtual-server.md).")
    )
    park: tuple[ParkConf, ...] = attrs.field(
        default=(), metadata=doc("Folders whose every directory is a site, found while the server runs.")
    )
    ca: CaConf | None = attrs.field(
        default=None, metadata=doc("The local certificate authority of the sites; null: its defaults.")
    )
    sites_server: SitesServerConf | None = attrs.field(
        default=None,
        metadata=doc("Where `actorproxy serve-sites` listens and how it runs sites; null: its defaults."),
    )
    admin: AdminConf | None = attrs.field(
        default=None,
        metadata=doc("The admin API and live supervision-tree page (actorproxy.admin); null: off."),
    )
    extra: Mapping[str, Any] = attrs.field(
        default=EMPTY,
        converter=freeze_mapping,
        hash=False,
        metadata={DOC: "The file's keys this record does not know (user-defined settings), read-only."},
    )

    def __attrs_post_init__(self) -> None:
        check_class(self)

    def _problems(self) -> Iterator[tuple[str, str]]:
        upstream_names = _unique_names("upstreams", self.upstreams)
        yield from upstream_names.problems
        yield from _unique_names("services", self.services).problems
        listening: dict[str, str] = {}
        for s, service in enumerate(self.services):
            for n, listener in enumerate(service.listeners):
                field = "address" if listener.address is not None else "path"
                where = f"services[{s}].listeners[{n}].{field}"
                what = listener.address or listener.path or ""
                if what in listening:
                    yield where, f"{what!r} is also {listening[what]}"
                listening.setdefault(what, where)
            for r, route in enumerate(service.routes):
                if route.upstream not in upstream_names.first:
                    yield (
                        f"services[{s}].routes[{r}].upstream",
                        _no_upstream(route.upstream, upstream_names.first),
                    )
                limit = route.rate_limit
                if limit is not None and limit.backend == "redis" and self.redis is None:
                    yield (
                        f"services[{s}].routes[{r}].rate_limit.backend",
                        "redis needs the top-level redis section (redis: {url: redis://host:port/db})",
                    )
        if self.store is not None and self.store.backend == "redis" and self.redis is None:
            yield "store.backend", "redis needs the top-level redis section (at least `redis: {url: ...}`)"
        yield from _unique_names("sites", self.sites).problems
        known = set(attrs.fields_dict(ServerConf)) - {self.__extra__}
        for key in self.extra:
            if key in known:
                yield "extra", f"{key!r} is a field of its own, not a user-defined key"

    # -- loading --------------------------------------------------------------------------------------------

    @classmethod
    def load_yaml(cls, path: str | os.PathLike[str], *, env: Mapping[str, str] | None = None) -> ServerConf:
        """Read a YAML file (Pingora's `load_from_yaml`).

        Args:
            path: the file.
            env: environment variables to take `ACTORPROXY__...` overrides from; None: no overrides.

        Raises:
            ConfigError: the file cannot be read, is not valid YAML (file, line and column), or holds a bad
                value (every one, with its key path).
        """
        return cls.from_yaml(read_text(path), env=env, source=os.fspath(path))

    @classmethod
    def from_yaml(
        cls, text: str, *, env: Mapping[str, str] | None = None, source: str | None = None
    ) -> ServerConf:
        """Parse YAML text; `source` names it in errors (a file name). See `load_yaml`."""
        return cls.from_mapping(parse_yaml(text, source), env=env, source=source)

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, env: Mapping[str, str] | None = None, source: str | None = None
    ) -> ServerConf:
        """Build from plain data (as YAML or JSON would give); see `load_yaml`."""
        return record_from_mapping(
            data, cls, env=env, source=source, not_typos=PINGORA_RUNTIME_KEYS, settings_section="settings"
        )

    # -- reading --------------------------------------------------------------------------------------------

    @property
    def grace_period(self) -> float:
        """`grace_period_seconds`, or its default when unset."""
        value = self.grace_period_seconds
        return DEFAULT_GRACE_PERIOD if value is None else value

    @property
    def graceful_shutdown_timeout(self) -> float:
        """`graceful_shutdown_timeout_seconds`, or its default when unset."""
        value = self.graceful_shutdown_timeout_seconds
        return DEFAULT_GRACEFUL_SHUTDOWN_TIMEOUT if value is None else value

    def proxy_settings(self, service: ServiceConf | None = None) -> ProxySettings:
        """The settings of a proxy service run by this server: the server-wide keys (retries, pool size,
        grace period, CA file, source addresses), and `service`'s own when it is declared in the file."""
        settings = ProxySettings(
            max_retries=self.max_retries,
            upstream_keepalive_pool_size=self.upstream_keepalive_pool_size,
            grace_period=self.grace_period,
            ca_file=self.ca_file,
            client_bind_to_ipv4=self.client_bind_to_ipv4,
            client_bind_to_ipv6=self.client_bind_to_ipv6,
        )
        if service is None:
            return settings
        return attrs.evolve(
            settings,
            keepalive_timeout=service.keepalive_timeout,
            request_header_timeout=service.request_header_timeout,
            request_body_timeout=service.request_body_timeout,
            request_timeout=service.request_timeout,
            limits=service.limits,
            forwarding=service.forwarding,
            allow_connect_method_proxying=service.allow_connect_method_proxying,
            access_log=service.access_log,
            request_id_header=service.request_id_header,
            opentelemetry=service.opentelemetry,
            http2=service.http2,
        )

    def get(self, path: str, default: Any = MISSING) -> Any:
        """The value at a dot path: `"threads"`, `"my_app.token"`, `"services.0.name"`, `"upstreams.web"`.

        A part that is not a field is looked up in `extra`; a list is indexed by position or by the `name`
        of its items.

        Raises:
            KeyError: nothing is at `path` and no default was given; the message names the path.
        """
        return lookup(self, path, default)

    # -- writing --------------------------------------------------------------------------------------------

    def to_mapping(self) -> dict[str, Any]:
        """Plain data (dicts, lists, scalars) that `from_mapping` turns back into an equal record, except that
        a secret's value is written `••••`."""
        return _dump.to_mapping(self)

    def to_yaml(self) -> str:
        """The effective configuration as YAML, every default included, secrets redacted."""
        return _dump.to_yaml(self)

    def to_toml(self) -> str:
        """The effective configuration as TOML, secrets redacted; null values left out (TOML has no null)."""
        return _dump.to_toml(self)


@attrs.frozen
class _Names:
    first: dict[str, int]
    problems: list[tuple[str, str]]


def _unique_names(section: str, items: tuple[Any, ...]) -> _Names:
    first: dict[str, int] = {}
    problems = []
    for index, item in enumerate(items):
        if item.name in first:
            problems.append(
                (
                    f"{section}[{index}].name",
                    f"duplicate of {section}[{first[item.name]}].name ({item.name!r})",
                )
            )
        first.setdefault(item.name, index)
    return _Names(first, problems)


def _no_upstream(name: str, known: Mapping[str, int]) -> str:
    listed = ", ".join(known) if known else "none"
    reason = f"no upstream named {name!r} (known: {listed})"
    guess = did_you_mean(name, known)
    return f"{reason}; did you mean {guess!r}?" if guess else reason


attrs.resolve_types(ServerConf)
