"""Upstream clusters from their configuration: one `LoadBalancer` per `UpstreamConf`, not yet running.

Building does no I/O: a DNS discovery reads the resolver configuration only when no name server is given,
a file discovery reads its file at the load balancer's first update. What the records cannot refuse and the
load balancer can (a DNS discovery with name servers on different ports) is reported as a `ConfigError`
naming the key path.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from actorproxy.config import (
    ConfigError,
    DiscoveryConf,
    DnsDiscoveryConf,
    HealthCheckConf,
    PassiveHealthConf,
    Problem,
    UpstreamConf,
)
from actorproxy.lb import (
    Backend,
    Backends,
    Consistent,
    DnsDiscovery,
    FileDiscovery,
    FNVHash,
    HealthCheck,
    HttpHealthCheck,
    LeastConnections,
    LoadBalancer,
    OutlierDetection,
    PowerOfTwoChoices,
    Random,
    RoundRobin,
    ServiceDiscovery,
    TcpHealthCheck,
)

__all__ = ["SELECTION", "build_load_balancer"]

#: The selection of each `algorithm` name.
SELECTION: Mapping[str, Any] = {
    "round_robin": RoundRobin,
    "random": Random,
    "fnv_hash": FNVHash,
    "consistent": Consistent,
    "least_connections": LeastConnections,
    "power_of_two_choices": PowerOfTwoChoices,
}
# RFC 1035 section 4.2: DNS servers listen on port 53.
DNS_PORT = 53


def build_load_balancer(conf: UpstreamConf, *, where: str = "upstreams[0]") -> LoadBalancer:
    """The load balancer of the cluster `conf`, with its health checks and passive health, not running.

    Args:
        conf: the cluster.
        where: the cluster's key path, for errors.

    Raises:
        ConfigError: the cluster cannot be built (the problem names its key path under `where`).
    """
    lb = LoadBalancer(_backends(conf.discovery, f"{where}.discovery"), selection=SELECTION[conf.algorithm])
    lb.update_frequency = conf.update_frequency
    if conf.health_check is not None:
        lb.set_health_check(_health_check(conf.health_check))
        lb.health_check_frequency = conf.health_check.frequency
    if conf.passive_health is not None:
        lb.set_outlier_detection(_outlier_detection(conf.passive_health))
    return lb


def _backends(conf: DiscoveryConf, where: str) -> Backends | ServiceDiscovery:
    if conf.static is not None:
        # A fixed set is known at once: the table starts with it, before the first update.
        return Backends([Backend(backend.addr, backend.weight) for backend in conf.static])
    if conf.dns is not None:
        return _dns_discovery(conf.dns, f"{where}.dns")
    assert conf.file is not None  # DiscoveryConf holds exactly one of the three
    return FileDiscovery(conf.file.path)


def _dns_discovery(conf: DnsDiscoveryConf, where: str) -> DnsDiscovery:
    servers = [_nameserver(text) for text in conf.nameservers]
    ports = {port for _, port in servers}
    if len(ports) > 1:
        raise ConfigError([Problem(f"{where}.nameservers", "every name server must listen on the same port")])
    nameservers = [ip for ip, _ in servers] or None
    nameserver_port = ports.pop() if ports else DNS_PORT
    try:
        if conf.record == "SRV":
            return DnsDiscovery.srv(conf.name, nameservers=nameservers, nameserver_port=nameserver_port)
        assert conf.port is not None  # DnsDiscoveryConf requires it for A and AAAA
        return DnsDiscovery.host(
            conf.name,
            port=conf.port,
            families=(conf.record,),
            nameservers=nameservers,
            nameserver_port=nameserver_port,
        )
    except ValueError as exc:
        raise ConfigError([Problem(where, str(exc))]) from exc


def _nameserver(text: str) -> tuple[str, int]:
    """`ip`, `ip:port` or `[v6]:port` (already checked by `DnsDiscoveryConf`) as (ip, port)."""
    try:
        return str(ipaddress.ip_address(text)), DNS_PORT
    except ValueError:
        host, _, port = text.rpartition(":")
        return host.strip("[]"), int(port)


def _health_check(conf: HealthCheckConf) -> HealthCheck:
    if conf.tcp is not None:
        tcp = conf.tcp
        return TcpHealthCheck(
            consecutive_success=tcp.consecutive_success,
            consecutive_failure=tcp.consecutive_failure,
            connect_timeout=tcp.connect_timeout,
            tls=tcp.tls,
            sni=tcp.sni,
        )
    http = conf.http
    assert http is not None  # HealthCheckConf holds exactly one of the two
    return HttpHealthCheck(
        http.host,
        tls=http.tls,
        sni=http.sni,
        path=http.path,
        expected_status=http.expected_status,
        read_timeout=http.read_timeout,
        connect_timeout=http.connect_timeout,
        reuse_connection=http.reuse_connection,
        port_override=http.port_override,
        consecutive_success=http.consecutive_success,
        consecutive_failure=http.consecutive_failure,
    )


def _outlier_detection(conf: PassiveHealthConf) -> OutlierDetection:
    return OutlierDetection(
        consecutive_failures=conf.consecutive_failures,
        count_server_errors=conf.count_server_errors,
        base_ejection_time=conf.base_ejection_time,
        max_ejection_time=conf.max_ejection_time,
        max_ejection_percent=conf.max_ejection_percent,
    )
