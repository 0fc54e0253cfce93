"""HTTP/1.1 for the proxy: errors, heads, the codecs and their strict checks, peers, sessions, phases."""

from ._codec import ClientConnection, ServerConnection
from ._codecs import CODEC_ENV, Codec, available_codecs, register_codec, select_codec
from ._error import Error, ErrorSource, ErrorType, RetryType, status_for
from ._forward import DEFAULT_VIA_PSEUDONYM, Forwarding
from ._h1base import DEFAULT_MAX_HEAD_SIZE, DEFAULT_READ_SIZE, ProtocolError
from ._header import Headers, RequestHeader, ResponseHeader
from ._peer import (
    DEFAULT_CONNECTION_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    DEFAULT_TOTAL_CONNECTION_TIMEOUT,
    DEFAULT_WRITE_TIMEOUT,
    HttpPeer,
    PeerOptions,
    TcpKeepalive,
)
from ._phases import IDEMPOTENT_METHODS, BodyChunk, ProxyHttp
from ._session import RETRY_BUFFER_SIZE, Session
from ._strict import DEFAULT_LIMITS, HttpLimits

__all__ = [
    "CODEC_ENV",
    "DEFAULT_CONNECTION_TIMEOUT",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "DEFAULT_READ_TIMEOUT",
    "DEFAULT_TOTAL_CONNECTION_TIMEOUT",
    "DEFAULT_VIA_PSEUDONYM",
    "DEFAULT_WRITE_TIMEOUT",
    "IDEMPOTENT_METHODS",
    "RETRY_BUFFER_SIZE",
    "BodyChunk",
    "ClientConnection",
    "Codec",
    "Error",
    "ErrorSource",
    "ErrorType",
    "Forwarding",
    "Headers",
    "HttpLimits",
    "HttpPeer",
    "PeerOptions",
    "ProtocolError",
    "ProxyHttp",
    "RequestHeader",
    "ResponseHeader",
    "RetryType",
    "ServerConnection",
    "Session",
    "TcpKeepalive",
    "available_codecs",
    "register_codec",
    "select_codec",
    "status_for",
]
