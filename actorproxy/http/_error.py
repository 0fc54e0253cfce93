"""Proxy errors, shaped like Pingora's: what failed, whose side, whether a retry may help, and why.

Rules:
- One exception type, `Error` (a subclass of the project's root exception), with an `ErrorType`, an
  `ErrorSource` (upstream, downstream, internal), a retry decision, a cause chain and free-form context.
- Retry is three-valued, as in Pingora: never, always, or only if the connection was reused (a pooled
  connection the peer may have closed meanwhile). A new error takes its cause's retry decision unless told
  otherwise.
- `status_for` maps an error to the status `fail_to_proxy` answers with: `HTTPStatus(c)` gives c, upstream
  timeouts 504, other upstream errors 502, downstream errors 400 (or no response when the client is gone),
  internal errors 500.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import ClassVar, TypeVar

import attrs

from actors import ActorProxyError

__all__ = ["Error", "ErrorSource", "ErrorType", "RetryType", "status_for"]

T = TypeVar("T")


class ErrorSource(enum.Enum):
    """Whose side failed."""

    UPSTREAM = "upstream"
    DOWNSTREAM = "downstream"
    INTERNAL = "internal"
    UNSET = "unset"


class RetryType(enum.Enum):
    NEVER = "never"
    ALWAYS = "always"
    REUSED_ONLY = "reused_only"  # retry only if the failed connection came from the pool


@attrs.frozen
class ErrorType:
    """What failed. Compare with the constants on this class; `ErrorType.http_status(404)` for a status."""

    name: str
    status: int | None = None

    # Pingora's list (pingora-error ErrorType), names kept.
    CONNECT_TIMEDOUT: ClassVar[ErrorType]
    CONNECT_REFUSED: ClassVar[ErrorType]
    CONNECT_NO_ROUTE: ClassVar[ErrorType]
    TLS_WANT_X509_LOOKUP: ClassVar[ErrorType]
    TLS_HANDSHAKE_FAILURE: ClassVar[ErrorType]
    TLS_HANDSHAKE_TIMEDOUT: ClassVar[ErrorType]
    INVALID_CERT: ClassVar[ErrorType]
    HANDSHAKE_ERROR: ClassVar[ErrorType]
    CONNECT_ERROR: ClassVar[ErrorType]
    BIND_ERROR: ClassVar[ErrorType]
    ACCEPT_ERROR: ClassVar[ErrorType]
    SOCKET_ERROR: ClassVar[ErrorType]
    CONNECT_PROXY_FAILURE: ClassVar[ErrorType]
    INVALID_HTTP_HEADER: ClassVar[ErrorType]
    H1_ERROR: ClassVar[ErrorType]
    H2_ERROR: ClassVar[ErrorType]
    INVALID_H2: ClassVar[ErrorType]
    H2_DOWNGRADE: ClassVar[ErrorType]
    READ_ERROR: ClassVar[ErrorType]
    WRITE_ERROR: ClassVar[ErrorType]
    READ_TIMEDOUT: ClassVar[ErrorType]
    WRITE_TIMEDOUT: ClassVar[ErrorType]
    CONNECTION_CLOSED: ClassVar[ErrorType]
    FILE_OPEN_ERROR: ClassVar[ErrorType]
    FILE_CREATE_ERROR: ClassVar[ErrorType]
    FILE_READ_ERROR: ClassVar[ErrorType]
    FILE_WRITE_ERROR: ClassVar[ErrorType]
    INTERNAL_ERROR: ClassVar[ErrorType]
    UNKNOWN_ERROR: ClassVar[ErrorType]

    @classmethod
    def http_status(cls, code: int) -> ErrorType:
        """Pingora's `HTTPStatus(code)`: answer the client with `code`."""
        return cls("HTTPStatus", code)

    @classmethod
    def custom(cls, name: str) -> ErrorType:
        return cls(f"Custom({name})")

    @property
    def is_timeout(self) -> bool:
        return self.name in {"ConnectTimedout", "TLSHandshakeTimedout", "ReadTimedout", "WriteTimedout"}

    def __str__(self) -> str:
        return f"HTTPStatus({self.status})" if self.status is not None else self.name


for _attr, _name in [
    ("CONNECT_TIMEDOUT", "ConnectTimedout"),
    ("CONNECT_REFUSED", "ConnectRefused"),
    ("CONNECT_NO_ROUTE", "ConnectNoRoute"),
    ("TLS_WANT_X509_LOOKUP", "TLSWantX509Lookup"),
    ("TLS_HANDSHAKE_FAILURE", "TLSHandshakeFailure"),
    ("TLS_HANDSHAKE_TIMEDOUT", "TLSHandshakeTimedout"),
    ("INVALID_CERT", "InvalidCert"),
    ("HANDSHAKE_ERROR", "HandshakeError"),
    ("CONNECT_ERROR", "ConnectError"),
    ("BIND_ERROR", "BindError"),
    ("ACCEPT_ERROR", "AcceptError"),
    ("SOCKET_ERROR", "SocketError"),
    ("CONNECT_PROXY_FAILURE", "ConnectProxyFailure"),
    ("INVALID_HTTP_HEADER", "InvalidHTTPHeader"),
    ("H1_ERROR", "H1Error"),
    ("H2_ERROR", "H2Error"),
    ("INVALID_H2", "InvalidH2"),
    ("H2_DOWNGRADE", "H2Downgrade"),
    ("READ_ERROR", "ReadError"),
    ("WRITE_ERROR", "WriteError"),
    ("READ_TIMEDOUT", "ReadTimedout"),
    ("WRITE_TIMEDOUT", "WriteTimedout"),
    ("CONNECTION_CLOSED", "ConnectionClosed"),
    ("FILE_OPEN_ERROR", "FileOpenError"),
    ("FILE_CREATE_ERROR", "FileCreateError"),
    ("FILE_READ_ERROR", "FileReadError"),
    ("FILE_WRITE_ERROR", "FileWriteError"),
    ("INTERNAL_ERROR", "InternalError"),
    ("UNKNOWN_ERROR", "UnknownError"),
]:
    setattr(ErrorType, _attr, ErrorType(_name))


class Error(ActorProxyError):
    """A proxy error: type, source, retry decision, context and cause.

    Build with `Error.new`, `new_up` / `new_down` / `new_in`, `explain`, `because`; convert a foreign
    exception at the I/O boundary with `because` (it becomes the `__cause__`).
    """

    def __init__(
        self,
        etype: ErrorType,
        source: ErrorSource = ErrorSource.UNSET,
        *,
        context: str | None = None,
        cause: BaseException | None = None,
        retry: RetryType | bool | None = None,
    ) -> None:
        self.etype = etype
        self.source = source
        self.context = context
        if cause is not None:
            self.__cause__ = cause
        if retry is None:
            retry = cause.retry if isinstance(cause, Error) else RetryType.NEVER
        self.retry: RetryType = (
            RetryType.ALWAYS if retry is True else RetryType.NEVER if retry is False else retry
        )
        #: A more precise status for protocol errors (431 for an oversized head, 501 for an unknown coding).
        self.status_hint: int | None = None
        super().__init__(self._describe())

    def _describe(self) -> str:
        text = f"{self.etype} context: {self.context}" if self.context else str(self.etype)
        if self.source is not ErrorSource.UNSET:
            text = f"{self.source.value} {text}"
        cause = self.__cause__
        if cause is not None:
            text += f" cause: {cause}" if isinstance(cause, Error) else f" cause: {cause!r}"
        return text

    def __str__(self) -> str:
        return self._describe()

    # -- construction helpers (Pingora's names) -----------------------------------------------------------

    @classmethod
    def new(cls, etype: ErrorType, source: ErrorSource = ErrorSource.UNSET) -> Error:
        return cls(etype, source)

    @classmethod
    def new_up(cls, etype: ErrorType) -> Error:
        return cls(etype, ErrorSource.UPSTREAM)

    @classmethod
    def new_down(cls, etype: ErrorType) -> Error:
        return cls(etype, ErrorSource.DOWNSTREAM)

    @classmethod
    def new_in(cls, etype: ErrorType) -> Error:
        return cls(etype, ErrorSource.INTERNAL)

    @classmethod
    def explain(cls, etype: ErrorType, context: str, source: ErrorSource = ErrorSource.UNSET) -> Error:
        """A new error with no cause and a human-readable context."""
        return cls(etype, source, context=context)

    @classmethod
    def because(
        cls,
        etype: ErrorType,
        context: str,
        cause: BaseException,
        source: ErrorSource | None = None,
    ) -> Error:
        """Wrap `cause` in a new error; the source defaults to the cause's when it is an `Error`."""
        if source is None:
            source = cause.source if isinstance(cause, Error) else ErrorSource.UNSET
        return cls(etype, source, context=context, cause=cause)

    @staticmethod
    def or_err(etype: ErrorType, context: str, call: Callable[[], T]) -> T:
        """Run `call`; if it raises, raise a new error of `etype` caused by what it raised."""
        try:
            return call()
        except Exception as exc:
            raise Error.because(etype, context, exc) from exc

    # -- accessors ----------------------------------------------------------------------------------------

    def set_retry(self, retry: bool) -> None:
        self.retry = RetryType.ALWAYS if retry else RetryType.NEVER

    def retry_for(self, reused: bool) -> bool:
        """Whether this error allows a retry, given whether the failed connection was reused."""
        return self.retry is RetryType.ALWAYS or (self.retry is RetryType.REUSED_ONLY and reused)

    def root_cause(self) -> BaseException:
        error: BaseException = self
        while error.__cause__ is not None:
            error = error.__cause__
        return error

    def with_source(self, source: ErrorSource) -> Error:
        self.source = source
        return self


def status_for(error: BaseException) -> int | None:
    """The status `fail_to_proxy` answers `error` with; None means answer nothing (the client is gone)."""
    if not isinstance(error, Error):
        return 500
    if error.etype.status is not None:
        return error.etype.status
    if error.source is ErrorSource.UPSTREAM:
        return 504 if error.etype.is_timeout else 502
    if error.source is ErrorSource.DOWNSTREAM:
        if error.status_hint is not None:
            return error.status_hint
        if error.etype in (ErrorType.CONNECTION_CLOSED, ErrorType.WRITE_ERROR, ErrorType.READ_ERROR):
            return None
        return 408 if error.etype.is_timeout else 400
    return 500
