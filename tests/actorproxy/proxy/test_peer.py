"""HttpPeer: address forms and their normalization, bad addresses, options validation, the reuse key."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs
import pytest

from actorproxy.config import DEFAULT_CONNECTION_TIMEOUT
from actorproxy.proxy._peer import HttpPeer, PeerOptions, TcpKeepalive, parse_bind_to


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        ("Example.COM:443", ("example.com", 443)),
        ("localhost:1", ("localhost", 1)),
        ("[::1]:8080", ("::1", 8080)),
        ("[0:0::1]:8080", ("::1", 8080)),
        (("10.0.0.1", 80), ("10.0.0.1", 80)),
        (("2001:DB8::1", 80), ("2001:db8::1", 80)),
        (("::1", 80, 0, 0), ("::1", 80)),  # a getaddrinfo IPv6 sockaddr
        ("/run/app.sock", "/run/app.sock"),
        ("unix:/run/app.sock", "/run/app.sock"),
        ("unix:relative.sock", "relative.sock"),
        (Path("/run/app.sock"), "/run/app.sock"),
    ],
)
def test_accepted_addresses_are_normalized(address: Any, expected: Any) -> None:
    assert HttpPeer(address).address == expected


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("127.0.0.1", "expected 'host:port'"),
        ("127.0.0.1:", "port '' is not a number"),
        ("127.0.0.1:http", "port 'http' is not a number"),
        ("127.0.0.1:+80", "is not a number"),
        ("127.0.0.1:0", "out of range"),
        ("127.0.0.1:65536", "out of range"),
        (":80", "the host is empty"),
        ("::1:80", "needs brackets"),
        ("[::1]80", r"expected '\[ipv6\]:port'"),
        ("[nothost]:80", "not an IPv6 address"),
        ("bad host:80", "neither an IP address nor a host name"),
        ("-bad.example:80", "neither an IP address nor a host name"),
        ("unix:", "path is empty"),
        (("127.0.0.1", "80"), r"expected a \(host: str, port: int\) tuple"),
        (("127.0.0.1", True), r"expected a \(host: str, port: int\) tuple"),
        (("127.0.0.1",), "tuple"),
        (8080, "expected 'host:port'"),
        (None, "expected 'host:port'"),
    ],
)
def test_bad_addresses_raise_value_error_naming_the_value(address: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        HttpPeer(address)
    assert repr(address) in str(caught.value) or address is None


@attrs.frozen
class FakeBackend:
    addr: Any
    weight: int = 1


@attrs.frozen
class FakeSocketAddr:
    host: str
    port: int


def test_backend_like_objects_are_accepted_through_addr_or_host_and_port() -> None:
    assert HttpPeer(FakeBackend("127.0.0.1:9001")).address == ("127.0.0.1", 9001)
    assert HttpPeer(FakeBackend(FakeSocketAddr("::1", 9002))).address == ("::1", 9002)
    assert HttpPeer(FakeSocketAddr("Host.example", 9003)).address == ("host.example", 9003)
    assert HttpPeer(FakeBackend("unix:/tmp/b.sock")).address == "/tmp/b.sock"


def test_an_addr_cycle_is_a_value_error_not_a_recursion_error() -> None:
    class Loop:
        @property
        def addr(self) -> Loop:
            return Loop()

    with pytest.raises(ValueError, match=r"\.addr"):
        HttpPeer(Loop())


def test_peer_attributes() -> None:
    peer = HttpPeer("[::1]:8443", tls=True, sni="api.example")
    assert peer.scheme == "https" and peer.tls and not peer.is_unix
    assert (peer.host, peer.port) == ("::1", 8443)
    assert peer.sni == "api.example"
    assert peer.label() == "[::1]:8443"
    assert repr(peer) == "<HttpPeer https://[::1]:8443 sni='api.example'>"
    plain = HttpPeer("unix:/run/a.sock")
    assert plain.scheme == "http" and plain.is_unix and plain.host is None and plain.port is None
    assert plain.label() == "unix:/run/a.sock"
    assert HttpPeer.new_uds("/run/a.sock").address == "/run/a.sock"


def test_each_peer_gets_its_own_default_options() -> None:
    one, two = HttpPeer("a.example:80"), HttpPeer("a.example:80")
    one.options.connection_timeout = 2.0
    assert two.options.connection_timeout == DEFAULT_CONNECTION_TIMEOUT
    assert one.options == PeerOptions(connection_timeout=2.0)


def test_options_are_validated_on_assignment() -> None:
    options = PeerOptions()
    with pytest.raises(ValueError, match="connection_timeout"):
        options.connection_timeout = -1.0
    with pytest.raises(ValueError, match="idle_timeout"):
        options.idle_timeout = float("nan")
    with pytest.raises(ValueError, match="client_cert"):
        options.client_cert = ("only-a-cert.pem",)  # type: ignore[assignment]
    with pytest.raises(ValueError, match="bind_to"):
        options.bind_to = "not-an-ip"
    with pytest.raises(ValueError, match="count"):
        TcpKeepalive(idle=10.0, interval=5.0, count=0)
    options.idle_timeout = 0.0  # 0 is valid: never reuse
    assert options.idle_timeout == 0.0


@pytest.mark.parametrize(
    ("bind_to", "expected"),
    [
        ("10.1.2.3", ("10.1.2.3", 0)),
        ("10.1.2.3:4000", ("10.1.2.3", 4000)),
        ("::1", ("::1", 0)),
        ("[::1]:4000", ("::1", 4000)),
    ],
)
def test_bind_to_forms(bind_to: str, expected: tuple[str, int]) -> None:
    assert parse_bind_to(bind_to) == expected


def test_client_cert_is_stored_in_the_options() -> None:
    peer = HttpPeer("a.example:443", tls=True)
    peer.client_cert = ("c.pem", "k.pem")
    assert peer.options.client_cert == ("c.pem", "k.pem") == peer.client_cert


# -- reuse key: Pingora's "Same Peer" list -------------------------------------------------------------------


def _peer(**changes: Any) -> HttpPeer:
    address = changes.pop("address", "10.0.0.1:443")
    tls = changes.pop("tls", True)
    sni = changes.pop("sni", "a.example")
    return HttpPeer(address, tls=tls, sni=sni, options=PeerOptions(**changes))


def test_equal_settings_give_equal_hashable_keys() -> None:
    one = _peer(client_cert=("c.pem", "k.pem"), alternative_cn="alt")
    two = _peer(address=("10.0.0.1", 443), client_cert=("c.pem", "k.pem"), alternative_cn="alt")
    assert one.reuse_key() == two.reuse_key()
    assert hash(one.reuse_key()) == hash(two.reuse_key())


@pytest.mark.parametrize(
    "changes",
    [
        {"address": "10.0.0.2:443"},
        {"address": "10.0.0.1:444"},
        {"tls": False},
        {"sni": "b.example"},
        {"client_cert": ("c.pem", "k.pem")},
        {"verify_cert": False},
        {"verify_hostname": False},
        {"alternative_cn": "alt"},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_each_same_peer_attribute_changes_the_key(changes: dict[str, Any]) -> None:
    assert _peer(**changes).reuse_key() != _peer().reuse_key()


@pytest.mark.parametrize(
    "changes",
    [
        {"connection_timeout": 1.0},
        {"total_connection_timeout": 1.0},
        {"read_timeout": 1.0},
        {"write_timeout": 1.0},
        {"idle_timeout": 0.0},
        {"ca": "/etc/ca.pem"},
        {"bind_to": "127.0.0.2"},
        {"tcp_keepalive": TcpKeepalive(idle=60.0, interval=5.0, count=3)},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_settings_outside_the_list_share_the_key(changes: dict[str, Any]) -> None:
    assert _peer(**changes).reuse_key() == _peer().reuse_key()


def test_the_key_follows_options_changed_after_construction() -> None:
    peer = _peer()
    before = peer.reuse_key()
    peer.options.verify_hostname = False
    assert peer.reuse_key() != before
