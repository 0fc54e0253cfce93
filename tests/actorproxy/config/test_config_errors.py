"""Every kind of bad configuration names its key path and the reason; all problems come out together."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from actorproxy.config import (
    ConfigError,
    DiscoveryConf,
    ListenerConf,
    Problem,
    RouteConf,
    ServerConf,
    ServiceConf,
    StaticBackendConf,
    UpstreamConf,
)
from actors import ActorProxyError

# A valid proxy that the bad snippets below are spliced into.
SERVICE = "services: [{name: web, listeners: [{address: 127.0.0.1:6191}], routes: [{upstream: web}]}]\n"
UPSTREAM = "upstreams: [{name: web, discovery: {static: [127.0.0.1:9001]}}]\n"


def listener(text: str) -> str:
    listeners = f"[{{address: 127.0.0.1:1}}, {text}]"
    return f"services: [{{name: web, listeners: {listeners}, routes: [{{upstream: web}}]}}]\n"


def route(text: str) -> str:
    return f"services: [{{name: web, listeners: [{{address: 127.0.0.1:1}}], routes: [{text}]}}]\n" + UPSTREAM


def upstream(text: str) -> str:
    return SERVICE + f"upstreams: [{{name: web, discovery: {{static: [127.0.0.1:9001]}}, {text}}}]\n"


def discovery(text: str) -> str:
    return SERVICE + f"upstreams: [{{name: web, discovery: {text}}}]\n"


BAD = [
    # server keys: types and ranges
    ("threads: four", "threads", "expected an int >= 1, got 'four'"),
    ("threads: 0", "threads", "expected an int >= 1, got 0"),
    ("threads: 2.5", "threads", "expected an int >= 1, got 2.5"),
    ("threads: '4'", "threads", "expected an int >= 1, got '4'"),
    ("threads: true", "threads", "expected an int >= 1, got True"),
    ("version: 2", "version", "expected an int equal to 1, got 2"),
    ("daemon: 1", "daemon", "expected a bool, got 1"),
    ("user: 1000", "user", "expected a string or null, got 1000 (quote it in YAML to make it a string)"),
    ("grace_period_seconds: -1", "grace_period_seconds", "expected a number >= 0 or null, got -1"),
    ("graceful_shutdown_timeout_seconds: .nan", "graceful_shutdown_timeout_seconds", "got nan"),
    ("upstream_keepalive_pool_size: -1", "upstream_keepalive_pool_size", "expected an int >= 0, got -1"),
    ("upstream_connect_offload_threadpools: 0", "upstream_connect_offload_threadpools", ">= 1 or null"),
    ("max_retries: -2", "max_retries", "expected an int >= 0, got -2"),
    ("max_blocking_threads: 0", "max_blocking_threads", "expected an int >= 1 or null, got 0"),
    ("daemon_ready_timeout_seconds: 0", "daemon_ready_timeout_seconds", "expected a number > 0 or null"),
    ("client_bind_to_ipv4: 10.0.0.1", "client_bind_to_ipv4", "expected a list, got '10.0.0.1'"),
    ("client_bind_to_ipv4: [10.0.0.1, nope]", "client_bind_to_ipv4[1]", "not an IPv4 address"),
    ("client_bind_to_ipv6: [10.0.0.1]", "client_bind_to_ipv6[0]", "not an IPv6 address (it is IPv4)"),
    ("services: {name: web}", "services", "expected a list"),
    ("services: [web]", "services[0]", "expected a mapping, got 'web'"),
    # services and listeners
    (SERVICE.replace("name: web", "name: 'we b'") + UPSTREAM, "services[0].name", "letters, digits"),
    (listener("{address: 127.0.0.1}"), "services[0].listeners[1].address", "not host:port (no port)"),
    (listener("{address: 'host:http'}"), "services[0].listeners[1].address", "not host:port (port 'http'"),
    (listener("{address: '::1:80'}"), "services[0].listeners[1].address", "not host:port (write an IPv6"),
    (listener("{address: '[x]:80'}"), "services[0].listeners[1].address", "not an IPv6 address"),
    (listener("{address: '127.0.0.1:70000'}"), "services[0].listeners[1].address", "out of 0..65535"),
    (
        listener("{address: 8080}"),
        "services[0].listeners[1].address",
        "expected a string (host:port) or null",
    ),
    (listener("{}"), "services[0].listeners[1]", "expected exactly one of address, path, got none"),
    (listener("{address: '1.2.3.4:1', path: /s}"), "services[0].listeners[1]", "got address and path"),
    (
        listener("{path: /s, permissions: 0o1000}"),
        "services[0].listeners[1].permissions",
        "0..0o777, got 0o1000",
    ),
    (listener("{path: /s, permissions: rw}"), "services[0].listeners[1].permissions", "in 0..0o777 or null"),
    (listener("{address: '1.2.3.4:1', permissions: 0o600}"), "services[0].listeners[1].permissions", "Unix"),
    (listener("{path: /s, tls: {cert: a, key: b}}"), "services[0].listeners[1].tls", "only a TCP listener"),
    (listener("{address: '1.2.3.4:1', tls: {cert: a}}"), "services[0].listeners[1].tls.key", "required"),
    (listener("{adress: '1.2.3.4:1'}"), "services[0].listeners[1].adress", "did you mean 'address'?"),
    (
        SERVICE.replace("routes: [{upstream: web}]", "routes: []") + UPSTREAM,
        "services[0].routes",
        "at least one",
    ),
    (
        SERVICE.replace("listeners: [{address: 127.0.0.1:6191}], ", "") + UPSTREAM,
        "services[0].listeners",
        "missing",
    ),
    # routes
    (route("{upstream: api}"), "services[0].routes[0].upstream", "no upstream named 'api' (known: web)"),
    (route("{upstream: webb}"), "services[0].routes[0].upstream", "did you mean 'web'?"),
    (route("{upstream: web, path_prefix: api}"), "services[0].routes[0].path_prefix", "starts with '/'"),
    (route("{upstream: web, host: 'a b'}"), "services[0].routes[0].host", "not a host name"),
    (route("{upstream: web, retries: -1}"), "services[0].routes[0].retries", ">= 0 or null, got -1"),
    (route("{upstream: web, read_timeout: 0}"), "services[0].routes[0].read_timeout", "> 0 or null, got 0"),
    (route("{upstream: web, header: {x-a: 2}}"), "services[0].routes[0].header['x-a']", "quote it"),
    (
        route("{upstream: web, header: {'a b': x}}"),
        "services[0].routes[0].header['a b']",
        "not a header name",
    ),
    (
        route("{upstream: web, request_headers: {remove: [ok, 'b@d']}}"),
        "services[0].routes[0].request_headers.remove[1]",
        "not a header name",
    ),
    (
        route('{upstream: web, response_headers: {set: {x-a: "a\\nb"}}}'),
        "services[0].routes[0].response_headers.set['x-a']",
        "cannot hold CR, LF or NUL",
    ),
    (route("{upstream: web, path: /x}"), "services[0].routes[0].path", "unknown key (expected one of host,"),
    # upstreams
    (upstream("algorithm: round_robbin"), "upstreams[0].algorithm", "(did you mean 'round_robin'?)"),
    (upstream("algorithm: weighted"), "upstreams[0].algorithm", "expected one of round_robin, random,"),
    (upstream("update_frequency: 0"), "upstreams[0].update_frequency", "> 0 or null"),
    (upstream("health_check: {}"), "upstreams[0].health_check", "exactly one of tcp, http, got none"),
    (upstream("health_check: {tcp: {}, http: {host: a}}"), "upstreams[0].health_check", "got tcp and http"),
    (upstream("health_check: {http: {}}"), "upstreams[0].health_check.http.host", "required, but missing"),
    (upstream("health_check: {http: {host: a, path: x}}"), "upstreams[0].health_check.http.path", "'/'"),
    (upstream("health_check: {http: {host: a, expected_status: 99}}"), "http.expected_status", "in 100..599"),
    (
        upstream("health_check: {tcp: {connect_timeout: -1}}"),
        "upstreams[0].health_check.tcp.connect_timeout",
        "> 0",
    ),
    (upstream("health_check: {tcp: {consecutive_success: 0}}"), "tcp.consecutive_success", ">= 1"),
    (upstream("health_check: {tcp: {}, frequency: 0}"), "upstreams[0].health_check.frequency", "> 0 or null"),
    (upstream("passive_health: {max_ejection_percent: 101}"), "max_ejection_percent", "in 0..100"),
    (
        upstream("passive_health: {base_ejection_time: 60, max_ejection_time: 30}"),
        "upstreams[0].passive_health.max_ejection_time",
        "expected at least base_ejection_time (60), got 30",
    ),
    (SERVICE + "upstreams: [{name: web}]", "upstreams[0].discovery", "required, but missing"),
    (
        SERVICE + UPSTREAM.replace("}}]", "}}, {name: web, discovery: {file: {path: x}}}]"),
        "upstreams[1].name",
        "duplicate of upstreams[0].name ('web')",
    ),
    # discovery
    (discovery("{}"), "upstreams[0].discovery", "expected exactly one of static, dns, file, got none"),
    (discovery("{static: []}"), "upstreams[0].discovery.static", "expected at least one backend"),
    (discovery("{static: null}"), "upstreams[0].discovery", "got none"),
    (discovery("{statik: [127.0.0.1:1]}"), "upstreams[0].discovery.statik", "did you mean 'static'?"),
    (discovery("{static: [127.0.0.1:1], file: {path: x}}"), "upstreams[0].discovery", "got static and file"),
    (discovery("{static: [localhost]}"), "upstreams[0].discovery.static[0].addr", "not host:port (no port)"),
    (discovery("{static: ['1.2.3.4:0']}"), "upstreams[0].discovery.static[0].addr", "out of 1..65535"),
    (
        discovery("{static: [unix:run.sock]}"),
        "upstreams[0].discovery.static[0].addr",
        "not a Unix socket path",
    ),
    (
        discovery("{static: [{addr: '1.2.3.4:1', weight: 0}]}"),
        "static[0].weight",
        "expected an int >= 1, got 0",
    ),
    (
        discovery("{static: ['1.2.3.4:1', '1.2.3.4:1']}"),
        "upstreams[0].discovery.static[1]",
        "duplicate of static[0]",
    ),
    (discovery("{static: [[1]]}"), "upstreams[0].discovery.static[0]", "expected a string or a mapping"),
    (discovery("{dns: {name: a.b}}"), "upstreams[0].discovery.dns.port", "required with A records"),
    (discovery("{dns: {name: a.b, port: 0}}"), "upstreams[0].discovery.dns.port", "in 1..65535 or null"),
    (
        discovery("{dns: {name: a.b, record: SRV, port: 80}}"),
        "upstreams[0].discovery.dns.port",
        "not used with SRV",
    ),
    (discovery("{dns: {name: a.b, port: 80, record: AAA}}"), "discovery.dns.record", "did you mean 'AAAA'?"),
    (
        discovery("{dns: {name: a.b, port: 1, nameservers: [x]}}"),
        "dns.nameservers[0]",
        "not an IP address or ip:port",
    ),
    (
        discovery("{dns: {name: a.b, port: 1, nameservers: ['x:53']}}"),
        "dns.nameservers[0]",
        "not ip:port ('x' is not",
    ),
    (discovery("{file: {path: ''}}"), "upstreams[0].discovery.file.path", "expected a path"),
]


@pytest.mark.parametrize(("text", "path", "reason"), BAD, ids=[f"{p}:{r[:30]}" for _, p, r in BAD])
def test_a_bad_value_names_its_key_path_and_the_reason(text: str, path: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(text, source="conf.yaml")
    matching = [problem for problem in caught.value.problems if problem.path.endswith(path)]
    assert matching, f"no problem at {path}: {caught.value}"
    assert any(reason in problem.reason for problem in matching), str(caught.value)
    assert str(caught.value).startswith("conf.yaml: ")
    assert f"{matching[0].path}: {matching[0].reason}" in str(caught.value)


def test_the_brief_examples_read_exactly() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml("threads: four")
    assert str(caught.value) == "threads: expected an int >= 1, got 'four'"
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(listener("{address: 127.0.0.1}") + UPSTREAM)
    assert caught.value.problems == (Problem("services[0].listeners[1].address", "not host:port (no port)"),)
    text = route("{upstream: web}, {upstream: api}").replace(
        "}}]", "}}, {name: static, discovery: {file: {path: x}}}]"
    )
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(text)
    assert str(caught.value) == "services[0].routes[1].upstream: no upstream named 'api' (known: web, static)"


def test_every_problem_of_one_pass_is_reported() -> None:
    text = "threads: 0\ndaemon: maybe\nmax_retries: -1\n" + discovery("{static: [x, '1.2.3.4:1']}").replace(
        "address: 127.0.0.1:6191", "address: nope"
    )
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml(text, source="conf.yaml")
    assert [problem.path for problem in caught.value.problems] == [
        "daemon",
        "threads",
        "max_retries",
        "services[0].listeners[0].address",
        "upstreams[0].discovery.static[0].addr",
    ]
    assert str(caught.value).startswith("conf.yaml: 5 problems in the configuration:\n  daemon: ")


def test_a_yaml_syntax_error_names_the_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text("threads: 1\nservices:\n  - name: web\n    listeners: [\n")
    with pytest.raises(ConfigError) as caught:
        ServerConf.load_yaml(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: line 5, column 1: ")
    assert caught.value.source == str(path)
    with pytest.raises(
        ConfigError, match=r"^conf.yaml: line 2, column 11: mapping values are not allowed here$"
    ):
        ServerConf.from_yaml("a: b\nthreads: 2: 3\n", source="conf.yaml")


def test_a_key_given_twice_is_refused_with_both_lines() -> None:
    with pytest.raises(ConfigError, match=r"line 3, column 1: duplicate key 'threads' \(first at line 1\)"):
        ServerConf.from_yaml("threads: 1\ndaemon: true\nthreads: 2\n")
    with pytest.raises(ConfigError, match=r"line 1, column 16: duplicate key 'a'"):
        ServerConf.from_yaml("my_app: {a: 1, a: 2}")


def test_the_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="expected a mapping of settings at the top level, got list"):
        ServerConf.from_yaml("- threads: 1")
    with pytest.raises(ConfigError, match="expected a mapping of settings at the top level, got str"):
        ServerConf.from_yaml("threads")


def test_a_file_that_cannot_be_read_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file: No such file or directory") as caught:
        ServerConf.load_yaml(tmp_path / "missing.yaml")
    assert isinstance(caught.value.__cause__, FileNotFoundError)
    (tmp_path / "latin1.yaml").write_bytes(b"user: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        ServerConf.load_yaml(tmp_path / "latin1.yaml")


def test_direct_construction_enforces_the_same_rules() -> None:
    with pytest.raises(ConfigError, match=r"^threads: expected an int >= 1, got 0$"):
        ServerConf(threads=0)
    with pytest.raises(ConfigError, match=r"^client_bind_to_ipv4\[1\]: not an IPv4 address$"):
        ServerConf(client_bind_to_ipv4=("10.0.0.1", "x"))
    with pytest.raises(ConfigError, match="expected exactly one of address, path, got none"):
        ListenerConf()
    with pytest.raises(ConfigError, match=r"no upstream named 'api' \(known: none\)"):
        ServerConf(
            services=(
                ServiceConf(
                    name="s", listeners=(ListenerConf(address="a:1"),), routes=(RouteConf(upstream="api"),)
                ),
            )
        )
    with pytest.raises(ConfigError, match=r"algorithm: expected one of .*got 'fast'"):
        discovery = DiscoveryConf(static=(StaticBackendConf(addr="a:1"),))
        UpstreamConf(name="u", discovery=discovery, algorithm="fast")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="'threads' is a field of its own"):
        ServerConf(extra={"threads": 2})


def test_config_error_is_the_projects_and_a_value_error_and_pickles() -> None:
    with pytest.raises(ConfigError) as caught:
        ServerConf.from_yaml("threads: 0\nmax_retries: -1", source="c.yaml")
    error = caught.value
    assert isinstance(error, ActorProxyError) and isinstance(error, ValueError)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.problems, copy.source, str(copy)) == (error.problems, error.source, str(error))
