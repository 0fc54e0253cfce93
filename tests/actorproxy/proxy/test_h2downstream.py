"""`grpc_timeout`: the deadline a gRPC request's `grpc-timeout` field gives (gRPC over HTTP/2)."""

from __future__ import annotations

import pytest

from actorproxy.http import RequestHeader
from actorproxy.proxy._h2downstream import grpc_timeout


def request(**fields: str) -> RequestHeader:
    header = RequestHeader.build("POST", "/svc/Method")
    for name, value in fields.items():
        header.insert_header(name.replace("_", "-"), value)
    return header


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("1H", 3600.0), ("2M", 120.0), ("3S", 3.0), ("250m", 0.25), ("5000u", 0.005), ("7n", 7e-9)],
)
def test_units(value: str, seconds: float) -> None:
    timeout = grpc_timeout(request(content_type="application/grpc+proto", grpc_timeout=value))
    assert timeout == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "S", "10", "10s", "123456789S", "-1S", "1.5S"])
def test_a_malformed_value_is_no_deadline(value: str) -> None:
    assert grpc_timeout(request(content_type="application/grpc", grpc_timeout=value)) is None


def test_only_grpc_requests_have_one() -> None:
    assert grpc_timeout(request(content_type="application/json", grpc_timeout="1S")) is None
    assert grpc_timeout(request(grpc_timeout="1S")) is None
    assert grpc_timeout(request(content_type="application/grpc")) is None
