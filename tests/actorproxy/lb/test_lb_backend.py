"""Backend: address normalization and errors, weight checks, ext ignored by equality, order, HttpPeer."""

from __future__ import annotations

import random
from typing import Any

import pytest

from actorproxy.lb import Backend
from actorproxy.proxy import HttpPeer


@pytest.mark.parametrize(
    ("addr", "expected", "text"),
    [
        ("127.0.0.1:9001", ("127.0.0.1", 9001), "127.0.0.1:9001"),
        ("Backend.Example:80", ("backend.example", 80), "backend.example:80"),
        ("[0:0::1]:8080", ("::1", 8080), "[::1]:8080"),
        (("10.0.0.1", 80), ("10.0.0.1", 80), "10.0.0.1:80"),
        ("/run/app.sock", "/run/app.sock", "unix:/run/app.sock"),
        ("unix:/run/app.sock", "/run/app.sock", "unix:/run/app.sock"),
    ],
)
def test_addresses_are_normalized(addr: Any, expected: Any, text: str) -> None:
    backend = Backend(addr)
    assert backend.addr == expected
    assert backend.weight == 1
    assert str(backend) == backend.addr_str == text


def test_constructor_forms_agree() -> None:
    assert Backend("127.0.0.1:9001", weight=2) == Backend.new_with_weight("127.0.0.1:9001", 2)
    assert Backend("127.0.0.1:9001", 2).weight == 2
    assert Backend.new("127.0.0.1:9001") == Backend(("127.0.0.1", 9001))


@pytest.mark.parametrize(
    ("addr", "message"),
    [
        ("127.0.0.1", "'127.0.0.1': expected 'host:port'"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:70000", "out of range"),
        ("::1:80", "needs brackets"),
        ("unix:", "the Unix socket path is empty"),
        ("unix:relative.sock", "'unix:relative.sock': a Unix socket path must be absolute"),
        (42, "42: expected 'host:port'"),
    ],
)
def test_bad_addresses_name_the_value(addr: Any, message: str) -> None:
    with pytest.raises(ValueError, match=r"^Backend address: ") as info:
        Backend(addr)
    assert message in str(info.value)


@pytest.mark.parametrize("weight", [0, -1, 1.5, True, "2"])
def test_bad_weights_are_rejected(weight: Any) -> None:
    with pytest.raises(ValueError, match=rf"Backend weight: must be an int >= 1, got {weight!r}"):
        Backend("127.0.0.1:80", weight=weight)


def test_ext_takes_no_part_in_equality_hash_or_order() -> None:
    plain = Backend("127.0.0.1:80")
    annotated = Backend("127.0.0.1:80", ext={"zone": "a"})
    assert plain == annotated
    assert hash(plain) == hash(annotated)
    assert not plain < annotated and not annotated < plain
    assert len({plain, annotated}) == 1
    assert annotated.ext == {"zone": "a"}
    # The weight is part of identity, as in Pingora.
    assert Backend("127.0.0.1:80", weight=2) != plain


def test_sort_order_is_tcp_then_unix_ips_numerically_then_weight() -> None:
    expected = [
        Backend("10.0.0.2:80"),
        Backend("10.0.0.2:80", weight=3),
        Backend("10.0.0.2:81"),
        Backend("10.0.0.10:80"),
        Backend("[::1]:80"),
        Backend("alpha.example:80"),
        Backend("beta.example:80"),
        Backend("/run/a.sock"),
        Backend("/run/b.sock"),
    ]
    for seed in range(5):
        shuffled = expected[:]
        random.Random(seed).shuffle(shuffled)
        assert sorted(shuffled) == expected
    assert expected[0] <= expected[0] and expected[1] > expected[0] and expected[1] >= expected[0]


def test_http_peer_takes_a_backend_or_its_addr() -> None:
    for backend in (Backend("127.0.0.1:9001", weight=2), Backend("[::1]:443"), Backend("unix:/run/a.sock")):
        by_addr = HttpPeer(backend.addr, tls=False, sni="")
        by_backend = HttpPeer(backend, tls=False, sni="")
        assert by_addr.address == by_backend.address == backend.addr
        assert by_backend.label() == str(backend)
        assert by_addr.reuse_key() == by_backend.reuse_key()
