"""Building the declared proxy from its configuration: clusters, route plans and services, not running."""

from __future__ import annotations

import typing
from pathlib import Path

import pytest

from actorproxy.config import (
    DEFAULT_READ_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    Algorithm,
    ConfigError,
    HeaderEditsConf,
    PassiveHealthConf,
    RouteConf,
    ServerConf,
    UpstreamConf,
)
from actorproxy.declared import SELECTION, HeaderEdits, Routing, build_load_balancer, build_proxy
from actorproxy.http import RequestHeader
from actorproxy.lb import (
    Backend,
    Consistent,
    DnsDiscovery,
    FileDiscovery,
    HttpHealthCheck,
    LeastConnections,
    OutlierDetection,
    PowerOfTwoChoices,
    TcpHealthCheck,
    Weighted,
)
from actorproxy.server import Server

STATIC = {"static": ["127.0.0.1:9001", {"addr": "127.0.0.1:9002", "weight": 3}, "unix:/run/app.sock"]}


def upstream(**fields: object) -> UpstreamConf:
    data = {"upstreams": [{"name": "app", "discovery": STATIC, **fields}]}
    conf = ServerConf.from_mapping(data)
    return conf.upstreams[0]


def test_every_algorithm_of_the_configuration_has_a_selection() -> None:
    assert set(SELECTION) == set(typing.get_args(Algorithm))


@pytest.mark.parametrize(
    ("algorithm", "selector"),
    [
        ("round_robin", Weighted),
        ("random", Weighted),
        ("fnv_hash", Weighted),
        ("consistent", Consistent),
        ("least_connections", LeastConnections),
        ("power_of_two_choices", PowerOfTwoChoices),
    ],
)
def test_a_cluster_selects_with_its_algorithm(algorithm: str, selector: type) -> None:
    lb = build_load_balancer(upstream(algorithm=algorithm))
    assert isinstance(lb.snapshot.selector, selector)


def test_static_backends_are_known_at_once_with_their_weights() -> None:
    lb = build_load_balancer(upstream())
    assert lb.discovered
    assert lb.snapshot.backends == {
        Backend("127.0.0.1:9001"),
        Backend("127.0.0.1:9002", 3),
        Backend("/run/app.sock"),
    }
    assert (lb.health_check, lb.update_frequency, lb.outlier_detection) == (None, None, None)


def test_health_checks_and_passive_health_are_configured() -> None:
    tcp = build_load_balancer(
        upstream(
            health_check={"tcp": {"connect_timeout": 0.5, "consecutive_failure": 3}, "frequency": 2.5},
            update_frequency=10,
            passive_health={"consecutive_failures": 2, "base_ejection_time": 5},
        )
    )
    assert tcp.health_check == TcpHealthCheck(connect_timeout=0.5, consecutive_failure=3)
    assert (tcp.health_check_frequency, tcp.update_frequency) == (2.5, 10)
    assert tcp.outlier_detection == OutlierDetection(consecutive_failures=2, base_ejection_time=5.0)
    passive = PassiveHealthConf(consecutive_failures=2, base_ejection_time=5.0)
    assert tcp.outlier_detection is not None
    for name in ("count_server_errors", "max_ejection_time", "max_ejection_percent"):
        assert getattr(tcp.outlier_detection, name) == getattr(passive, name)

    http = build_load_balancer(
        upstream(health_check={"http": {"host": "app.internal", "path": "/health", "expected_status": 204}})
    )
    check = http.health_check
    assert isinstance(check, HttpHealthCheck)
    assert (check.host, check.path, check.expected_status) == ("app.internal", "/health", 204)
    assert http.health_check_frequency == 1.0


def test_dns_and_file_discovery() -> None:
    dns = build_load_balancer(
        upstream(discovery={"dns": {"name": "app.internal", "port": 8080, "nameservers": ["127.0.0.1:5353"]}})
    )
    assert isinstance(dns.discovery, DnsDiscovery)
    assert dns.discovery.query == "A app.internal"
    srv = build_load_balancer(
        upstream(
            discovery={"dns": {"name": "_http._tcp.app.internal", "record": "SRV", "nameservers": ["::1"]}}
        )
    )
    assert isinstance(srv.discovery, DnsDiscovery) and srv.discovery.query == "SRV _http._tcp.app.internal"
    files = build_load_balancer(upstream(discovery={"file": {"path": "/etc/backends.yaml"}}))
    assert isinstance(files.discovery, FileDiscovery)
    assert str(files.discovery.path) == "/etc/backends.yaml"
    assert not files.discovered


def test_name_servers_on_different_ports_are_refused_by_key_path() -> None:
    conf = upstream(
        discovery={"dns": {"name": "a.internal", "port": 80, "nameservers": ["10.0.0.1", "10.0.0.2:53535"]}}
    )
    with pytest.raises(ConfigError) as caught:
        build_load_balancer(conf, where="upstreams[3]")
    assert str(caught.value).startswith("upstreams[3].discovery.dns.nameservers: ")


def test_header_edits_remove_first_then_set() -> None:
    edits = HeaderEdits.from_conf(
        HeaderEditsConf(set={"X-Via": "proxy", "x-b": "2"}, remove=("X-Via", "X-A"))
    )
    request = RequestHeader("GET", "/", [("x-via", "client"), ("x-a", "1"), ("X-A", "2"), ("x-b", "1")])
    edits.apply(request)
    assert request.headers.items() == [("x-b", "2"), ("X-Via", "proxy")]
    assert not HeaderEdits.from_conf(HeaderEditsConf())


def test_route_plans_take_timeouts_retries_and_the_hash_key_from_the_conf() -> None:
    hashing = upstream(algorithm="consistent")
    lb = build_load_balancer(hashing)
    routes = (
        RouteConf(
            path_prefix="/a", upstream="app", retries=2, connect_timeout=0.5, total_timeout=2, read_timeout=3
        ),
        RouteConf(upstream="app", write_timeout=4),
    )
    routing = Routing.build(routes, {"app": hashing}, {"app": lb})
    first, second = routing.table.targets()
    assert (first.index, first.upstream, first.lb, first.hash_by_path) == (0, "app", lb, True)
    options = first.options
    assert (options.connection_timeout, options.total_connection_timeout) == (0.5, 2.0)
    assert (options.read_timeout, options.write_timeout) == (3.0, DEFAULT_WRITE_TIMEOUT)
    assert second.options.write_timeout == 4.0 and second.options.read_timeout == DEFAULT_READ_TIMEOUT
    assert [first.retry_allowed(n) for n in (1, 2, 3)] == [True, True, False]
    assert all(second.retry_allowed(n) for n in (1, 16, 100))  # the server's max_retries bounds it
    assert routing.load_balancers() == {lb}


def test_build_proxy_adds_clusters_before_the_services_that_use_them() -> None:
    conf = ServerConf.from_mapping(
        {
            "services": [
                {"name": "a", "listeners": [{"address": "127.0.0.1:0"}], "routes": [{"upstream": "two"}]},
                {"name": "b", "listeners": [{"path": "/tmp/b.sock"}], "routes": [{"upstream": "one"}]},
            ],
            "upstreams": [{"name": "one", "discovery": STATIC}, {"name": "two", "discovery": STATIC}],
        }
    )
    server = Server(conf)
    handle = build_proxy(server)
    assert [service.name for service in server.start_order()] == ["upstream one", "upstream two", "a", "b"]
    assert handle.services["a"].app.routing.table.targets()[0].lb is handle.load_balancer("two")
    assert handle.services["b"].service.endpoints[0].path == "/tmp/b.sock"
    assert handle.conf is conf


def test_a_service_takes_its_timeouts_limits_forwarding_and_connection_limits_from_the_conf() -> None:
    conf = ServerConf.from_mapping(
        {
            "services": [
                {
                    "name": "a",
                    "listeners": [
                        {"address": "127.0.0.1:0", "max_connections": 100, "max_connections_per_client": 5}
                    ],
                    "routes": [{"upstream": "one"}],
                    "request_header_timeout": 5,
                    "request_body_timeout": 7,
                    "keepalive_timeout": 9,
                    "request_timeout": 30,
                    "limits": {"max_header_count": 20, "max_body_size": 1024},
                    "forwarding": {"via": "edge", "x_forwarded": True},
                    "allow_connect_method_proxying": True,
                }
            ],
            "upstreams": [{"name": "one", "discovery": STATIC}],
        }
    )
    service = build_proxy(Server(conf)).services["a"].service
    settings = service.settings
    assert (settings.request_header_timeout, settings.request_body_timeout) == (5, 7)
    assert (settings.keepalive_timeout, settings.request_timeout) == (9, 30)
    assert (settings.limits.max_header_count, settings.limits.max_body_size) == (20, 1024)
    assert settings.limits.max_request_line == 8192  # the default where the file says nothing
    assert (settings.forwarding.via, settings.forwarding.x_forwarded) == ("edge", True)
    assert settings.allow_connect_method_proxying is True
    assert ServerConf.from_mapping({}).proxy_settings().allow_connect_method_proxying is False
    [endpoint] = service.endpoints
    assert (endpoint.max_connections, endpoint.max_connections_per_client) == (100, 5)


def caching_conf(**store: object) -> ServerConf:
    data: dict[str, object] = {
        "services": [
            {
                "name": "a",
                "listeners": [{"address": "127.0.0.1:0"}],
                "routes": [
                    {"path_prefix": "/static", "upstream": "one", "cache": {"key": ["host", "path"]}},
                    {"path_prefix": "/off", "upstream": "one", "cache": {"enabled": False}},
                    {"upstream": "one"},
                ],
            }
        ],
        "upstreams": [{"name": "one", "discovery": STATIC}],
    }
    if store:
        data["store"] = store
    return ServerConf.from_mapping(data)


def test_a_caching_route_gets_its_cache_on_the_store_service_the_proxy_depends_on() -> None:
    server = Server(caching_conf())
    handle = build_proxy(server)
    assert [service.name for service in server.start_order()] == ["upstream one", "store", "a"]
    app = handle.services["a"].app
    cached, off, plain = app.routing.table.targets()
    assert (off.cache, plain.cache) == (None, None)
    assert cached.cache is not None and cached.cache.store is handle.store
    assert cached.cache.namespace == "cache:a:0:" and cached.cache_header == "x-cache"
    assert cached.cache.key_for(RequestHeader("GET", "/static/x?v=1", [("Host", "h")])) == "h/static/x"
    assert handle.store is not None and handle.store.backend.name == "memory"  # no store section
    assert app.cache_phases is True and app.response_caches() == [cached.cache]


def test_the_store_section_is_the_caches_and_no_cache_runs_no_store(tmp_path: Path) -> None:
    handle = build_proxy(Server(caching_conf(backend="sqlite", path=str(tmp_path / "s.db"))))
    assert handle.store is not None and handle.store.backend.name == "sqlite"
    plain = ServerConf.from_mapping(
        {
            "services": [
                {"name": "a", "listeners": [{"address": "127.0.0.1:0"}], "routes": [{"upstream": "one"}]}
            ],
            "upstreams": [{"name": "one", "discovery": STATIC}],
        }
    )
    server = Server(plain)
    handle = build_proxy(server)
    assert handle.store is None and "store" not in [service.name for service in server.services]
    assert handle.services["a"].app.cache_phases is False  # the request path never looks at a cache
