"""The HTTP/2 keys: a listener's `alpn` and `h2c`, a service's `http2:` section, a cluster's `alpn` and
`max_h2_streams`; their defaults and the errors that name them."""

from __future__ import annotations

import pytest

from actorproxy.config import ConfigError, Http2Settings, ServerConf


def conf(listener: str = "", service: str = "", upstream: str = "") -> ServerConf:
    return ServerConf.from_yaml(
        f"""
services:
  - name: edge
    listeners:
      - address: 127.0.0.1:0
        {listener}
    routes: [{{upstream: up}}]
    {service}
upstreams:
  - name: up
    discovery: {{static: ["127.0.0.1:1"]}}
    {upstream}
"""
    )


def test_defaults() -> None:
    loaded = conf()
    listener = loaded.services[0].listeners[0]
    assert listener.alpn == ("h2", "http/1.1")
    assert listener.h2c is False
    assert loaded.upstreams[0].alpn == "h1"
    assert loaded.upstreams[0].max_h2_streams is None
    settings = loaded.services[0].http2
    assert settings == Http2Settings()
    assert (settings.max_concurrent_streams, settings.initial_window_size) == (100, 1 << 20)
    assert (settings.max_frame_size, settings.max_header_list_size) == (16_384, 65_536)


def test_keys_are_read() -> None:
    loaded = conf(
        listener="h2c: true",
        service="http2: {max_concurrent_streams: 7, initial_window_size: 70000, max_h2_streams: 3}",
        upstream="alpn: h2h1\n    max_h2_streams: 5",
    )
    assert loaded.services[0].listeners[0].h2c is True
    assert loaded.services[0].http2.max_concurrent_streams == 7
    assert loaded.services[0].http2.initial_window_size == 70000
    assert loaded.proxy_settings(loaded.services[0]).http2.max_h2_streams == 3
    assert (loaded.upstreams[0].alpn, loaded.upstreams[0].max_h2_streams) == ("h2h1", 5)


@pytest.mark.parametrize(
    ("where", "text", "message"),
    [
        ("upstream", "alpn: h3", "upstreams[0].alpn: expected one of h1, h2, h2h1, got 'h3'"),
        ("upstream", "max_h2_streams: 0", "upstreams[0].max_h2_streams: expected an int >= 1"),
        ("listener", "alpn: [h3]", "services[0].listeners[0].alpn[0]: expected one of h2, http/1.1"),
        ("listener", "alpn: []", "services[0].listeners[0].alpn: expected at least one protocol"),
        (
            "listener",
            "h2c: true\n        tls: {cert: /a, key: /b}",
            "services[0].listeners[0].h2c: a TLS listener negotiates HTTP/2 by alpn",
        ),
        ("service", "http2: {max_frame_size: 1000}", "services[0].http2.max_frame_size:"),
        ("service", "http2: {initial_window_size: 0}", "services[0].http2.initial_window_size:"),
    ],
)
def test_errors_name_the_key(where: str, text: str, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        conf(**{where: text})
    assert message in str(caught.value)
