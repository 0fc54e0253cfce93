"""A route's `cache` section: what the file accepts, and every refusal naming its key."""

from __future__ import annotations

import textwrap

import pytest

from actorproxy.config import DEFAULT_CACHE_KEY, CacheConf, ConfigError, ServerConf, parse_cache_key_part


def conf(cache: str) -> ServerConf:
    text = textwrap.dedent(
        f"""
        services:
          - name: gw
            listeners: [{{address: 127.0.0.1:0}}]
            routes:
              - upstream: app
                cache: {cache}
        upstreams:
          - {{name: app, discovery: {{static: [127.0.0.1:9]}}}}
        """
    )
    return ServerConf.from_yaml(text)


def problems(cache: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        conf(cache)
    return [str(problem) for problem in caught.value.problems]


def test_a_full_cache_section_reads_as_written() -> None:
    loaded = conf(
        "{max_size: 1048576, default_ttl: 60, key: [method, host, path, 'header:Accept-Language'],"
        " stale_while_revalidate: 30, stale_if_error: 300, lock_timeout: 2.5, header: x-cache-status,"
        " memory_size: 0, keep_stale: 60, purge_token: abcdefghijklmnop}"
    )
    cache = loaded.services[0].routes[0].cache
    assert cache == CacheConf(
        max_size=1048576,
        default_ttl=60,
        key=("method", "host", "path", "header:Accept-Language"),
        stale_while_revalidate=30,
        stale_if_error=300,
        lock_timeout=2.5,
        header="x-cache-status",
        memory_size=0,
        keep_stale=60,
        purge_token="abcdefghijklmnop",
    )


def test_an_empty_section_takes_the_defaults() -> None:
    cache = conf("{}").services[0].routes[0].cache
    assert cache == CacheConf() and cache.key == DEFAULT_CACHE_KEY and cache.header == "x-cache"


@pytest.mark.parametrize(
    ("cache", "problem"),
    [
        (
            "{key: [metod]}",
            "services[0].routes[0].cache.key[0]: unknown key part 'metod' (did you mean 'method'?)",
        ),
        ("{key: ['header:']}", "services[0].routes[0].cache.key[0]: expected header:<name>, got 'header:'"),
        ("{key: ['cookie:a']}", "services[0].routes[0].cache.key[0]: expected header:<name>, got 'cookie:a'"),
        ("{lock_timeout: 0}", "services[0].routes[0].cache.lock_timeout: expected a number > 0, got 0"),
        ("{max_size: 0}", "services[0].routes[0].cache.max_size: expected an int >= 1 or null, got 0"),
        ("{purge_token: short}", "services[0].routes[0].cache.purge_token: at least 16 characters, got 5"),
        ("{header: 'x cache'}", "services[0].routes[0].cache.header: not a header name: 'x cache'"),
    ],
)
def test_a_bad_value_is_refused_by_its_key_path(cache: str, problem: str) -> None:
    assert problems(cache) == [problem]


def test_key_parts_read_as_names() -> None:
    assert parse_cache_key_part("query") == ("query", "")
    assert parse_cache_key_part("header:X-Tenant") == ("header", "x-tenant")
