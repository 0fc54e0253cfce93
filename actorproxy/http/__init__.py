"""HTTP/1.1 for the proxy: errors, message heads, the h11 codec, peers, sessions and the phases."""

from ._codec import ClientConnection, ServerConnection
from ._codecs import CODEC_ENV, Codec, available_codecs, register_codec, select_codec
from ._error import Error, ErrorSource, ErrorType, RetryType, status_for
from ._h1base import DEFAULT_MAX_HEAD_SIZE, DEFAULT_READ_SIZE, ProtocolError
from ._header import Headers, RequestHeader, ResponseHeader
from ._peer import HttpPeer, PeerOptions, TcpKeepalive
from ._phases import IDEMPOTENT_METHODS, BodyChunk, ProxyHttp
from ._session import RETRY_BUFFER_SIZE, Session

__all__ = [
    "CODEC_ENV",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "IDEMPOTENT_METHODS",
    "RETRY_BUFFER_SIZE",
    "BodyChunk",
    "ClientConnection",
    "Codec",
    "Error",
    "ErrorSource",
    "ErrorType",
    "Headers",
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
