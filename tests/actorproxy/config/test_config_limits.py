"""`rate_limit` on routes, `trusted_proxies` on services, `rate_limit_table`: what the file accepts, and every
refusal naming its key."""

from __future__ import annotations

import textwrap

import pytest

from actorproxy.config import ConfigError, RateLimitConf, ServerConf, parse_key_source, parse_rate


def conf(rate_limit: str, *, service: str = "", top: str = "") -> ServerConf:
    text = textwrap.dedent(
        f"""
        services:
          - name: gw
            listeners: [{{address: 127.0.0.1:0}}]
            routes:
              - upstream: app
                rate_limit: {rate_limit}
        upstreams:
          - {{name: app, discovery: {{static: [127.0.0.1:9]}}}}
        """
    )
    text = text.replace("    routes:", f"    {service}\n    routes:") if service else text
    return ServerConf.from_yaml(text + top)


def problems(**kwargs: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        conf(**kwargs)
    return [str(problem) for problem in caught.value.problems]


def test_a_full_rate_limit_reads_as_written() -> None:
    loaded = conf(
        "{key: [client_ip, 'header:X-Api-Key'], rate: 6000/min, burst: 50, inflight: 8, status: 503}",
        service="trusted_proxies: [10.0.0.0/8, '2001:db8::1']",
    )
    limit = loaded.services[0].routes[0].rate_limit
    assert limit == RateLimitConf(
        key=("client_ip", "header:X-Api-Key"), rate="6000/min", burst=50, inflight=8, status=503
    )
    assert loaded.services[0].trusted_proxies == ("10.0.0.0/8", "2001:db8::1")
    assert ServerConf.from_mapping(loaded.to_mapping()) == loaded


def test_a_single_key_source_is_a_string() -> None:
    assert conf("{key: 'query:token', rate: 1/s}").services[0].routes[0].rate_limit == RateLimitConf(
        key=("query:token",), rate="1/s"
    )
    assert RateLimitConf(key="host", rate="1/s").key == ("host",)


def test_each_bad_value_is_named_by_its_key() -> None:
    found = problems(
        rate_limit="{key: clientip, rate: 100 per second, burst: 0, backend: memcached, colour: red}"
    )
    where = "services[0].routes[0].rate_limit"
    known = "key, rate, burst, inflight, status, backend, on_redis_error"
    assert f"{where}.colour: unknown key (expected one of {known})" in found
    assert f"{where}.key: unknown key source 'clientip' (did you mean 'client_ip'?)" in found
    assert any(p.startswith(f"{where}.rate: expected '<count>/<unit>'") for p in found)
    assert f"{where}.burst: expected an int >= 1 or null, got 0" in found
    assert any(p.startswith(f"{where}.backend: expected one of local, redis") for p in found)


def test_one_bad_source_in_a_list_is_named_by_its_index() -> None:
    assert problems(rate_limit="{key: [client_ip, 'header:'], rate: 1/s}") == [
        "services[0].routes[0].rate_limit.key[1]: header: needs a name after the colon (header:<name>),"
        " got 'header:'"
    ]


def test_a_limit_needs_a_rate_or_an_inflight_bound_and_a_burst_needs_a_rate() -> None:
    assert problems(rate_limit="{burst: 3}") == [
        "services[0].routes[0].rate_limit.burst: a burst needs a rate",
        "services[0].routes[0].rate_limit: a rate limit needs a rate, an inflight limit, or both",
    ]


def test_the_redis_backend_needs_the_redis_section() -> None:
    assert problems(rate_limit="{rate: 1/s, backend: redis}") == [
        "services[0].routes[0].rate_limit.backend: redis needs the top-level redis section"
        " (redis: {url: redis://host:port/db})"
    ]
    assert conf("{rate: 1/s, backend: redis}", top="redis: {url: 'redis://127.0.0.1:6379/0'}").redis


def test_a_trusted_proxy_is_an_address_or_a_network() -> None:
    with pytest.raises(ConfigError) as caught:
        conf("{rate: 1/s}", service="trusted_proxies: [10.0.0.0/8, lb.internal]")
    assert [str(p) for p in caught.value.problems] == [
        "services[0].trusted_proxies[1]: not an IP address or network (CIDR): 'lb.internal'"
    ]


@pytest.mark.parametrize(
    ("text", "parsed"),
    [("client_ip", ("client_ip", "")), ("header:X-Key", ("header", "x-key")), ("query:q", ("query", "q"))],
)
def test_key_sources_parse(text: str, parsed: tuple[str, str]) -> None:
    assert parse_key_source(text) == parsed


def test_rates_parse_into_count_and_period() -> None:
    assert [parse_rate(t) for t in ("100/s", "6000/min", "2/h", "5/d")] == [
        (100, 1.0),
        (6000, 60.0),
        (2, 3600.0),
        (5, 86400.0),
    ]
