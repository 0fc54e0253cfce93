"""Proxy errors: construction helpers, the retry decision, and the status fail_to_proxy answers with."""

from __future__ import annotations

import pytest

from actorproxy.http import Error, ErrorSource, ErrorType, ProtocolError, RetryType, status_for
from actors import ActorProxyError


def test_explain_because_and_the_cause_chain() -> None:
    root = ConnectionRefusedError(111, "refused")
    connect = Error.because(
        ErrorType.CONNECT_REFUSED, "connecting to 10.0.0.1:80", root, ErrorSource.UPSTREAM
    )
    wrapped = Error.because(ErrorType.http_status(503), "backend pool empty", connect)
    assert isinstance(wrapped, ActorProxyError)
    assert wrapped.source is ErrorSource.UPSTREAM  # taken from the cause
    assert wrapped.__cause__ is connect and wrapped.root_cause() is root
    assert "HTTPStatus(503) context: backend pool empty" in str(wrapped)
    assert "ConnectRefused context: connecting to 10.0.0.1:80" in str(wrapped)
    plain = Error.explain(ErrorType.INVALID_HTTP_HEADER, "No host header detected")
    assert plain.__cause__ is None and plain.retry is RetryType.NEVER


def test_or_err_replaces_a_failure_with_a_typed_error() -> None:
    assert Error.or_err(ErrorType.INTERNAL_ERROR, "parse", lambda: int("42")) == 42
    with pytest.raises(Error) as caught:
        Error.or_err(ErrorType.http_status(400), "missing required headers", lambda: int("x"))
    assert caught.value.etype.status == 400 and isinstance(caught.value.__cause__, ValueError)


def test_retry_is_inherited_and_can_depend_on_reuse() -> None:
    reused_only = Error(ErrorType.CONNECTION_CLOSED, ErrorSource.UPSTREAM, retry=RetryType.REUSED_ONLY)
    assert reused_only.retry_for(reused=True) and not reused_only.retry_for(reused=False)
    inherited = Error.because(ErrorType.READ_ERROR, "reading", reused_only)
    assert inherited.retry is RetryType.REUSED_ONLY
    inherited.set_retry(True)
    assert inherited.retry_for(reused=False)
    inherited.set_retry(False)
    assert not inherited.retry_for(reused=True)


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (Error.new(ErrorType.http_status(403)), 403),
        (Error.new_up(ErrorType.CONNECT_REFUSED), 502),
        (Error.new_up(ErrorType.INVALID_HTTP_HEADER), 502),
        (Error.new_up(ErrorType.READ_TIMEDOUT), 504),
        (Error.new_up(ErrorType.CONNECT_TIMEDOUT), 504),
        (Error.new_down(ErrorType.INVALID_HTTP_HEADER), 400),
        (Error.new_down(ErrorType.READ_TIMEDOUT), 408),
        (Error.new_down(ErrorType.CONNECTION_CLOSED), None),  # the client is gone: nothing to answer
        (Error.new_in(ErrorType.INTERNAL_ERROR), 500),
        (ProtocolError(ErrorType.H1_ERROR, ErrorSource.DOWNSTREAM, status_hint=431, context="head"), 431),
        (ValueError("not ours"), 500),
    ],
)
def test_status_for_maps_like_pingora_with_504_for_upstream_timeouts(
    error: BaseException, status: int | None
) -> None:
    assert status_for(error) == status
