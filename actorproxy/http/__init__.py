"""HTTP for the proxy, sans-IO: errors, request and response heads, forwarding rules, and the HTTP/1.1 wing
(`h1`: codecs and their strict checks). No actors and no sockets here."""

from ._error import Error, ErrorSource, ErrorType, RetryType, status_for
from ._forward import DEFAULT_VIA_PSEUDONYM, Forwarding
from ._header import Headers, RequestHeader, ResponseHeader
from .h1 import (
    CODEC_ENV,
    DEFAULT_LIMITS,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_READ_SIZE,
    ClientSide,
    Codec,
    H11ClientConnection,
    H11ServerConnection,
    HttpLimits,
    ProtocolError,
    ServerSide,
    available_codecs,
    register_codec,
    select_codec,
)

__all__ = [
    "CODEC_ENV",
    "DEFAULT_LIMITS",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "DEFAULT_VIA_PSEUDONYM",
    "ClientSide",
    "Codec",
    "Error",
    "ErrorSource",
    "ErrorType",
    "Forwarding",
    "H11ClientConnection",
    "H11ServerConnection",
    "Headers",
    "HttpLimits",
    "ProtocolError",
    "RequestHeader",
    "ResponseHeader",
    "RetryType",
    "ServerSide",
    "available_codecs",
    "register_codec",
    "select_codec",
    "status_for",
]
