"""HTTP for the proxy, sans-IO: errors, request and response heads, forwarding rules, and the HTTP/1.1 wing
(`h1`: codecs and their strict checks). No actors and no sockets here."""

from ._codings import CODING_LEVELS, ContentCoding
from ._compression import COMPRESSION_ERROR, PREFERENCE, ResponseCompression, accepted_codings
from ._error import Error, ErrorSource, ErrorType, RetryType, status_for
from ._forward import (
    HOP_BY_HOP,
    MAX_FORWARDS_METHODS,
    allowed_methods,
    answer_here,
    forward_request,
    forward_response,
    has_body,
    has_looped,
    is_upgrade_request,
    remove_hop_by_hop,
)
from ._header import Headers, RequestHeader, ResponseHeader
from ._host import normalize_host, request_host
from .h1 import (
    CODEC_ENV,
    DEFAULT_MAX_HEAD_SIZE,
    DEFAULT_READ_SIZE,
    ClientSide,
    Codec,
    H11ClientConnection,
    H11ServerConnection,
    ProtocolError,
    ServerSide,
    available_codecs,
    register_codec,
    select_codec,
    trust_if_writable,
)

__all__ = [
    "CODEC_ENV",
    "CODING_LEVELS",
    "COMPRESSION_ERROR",
    "DEFAULT_CONTENT_TYPES",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "HOP_BY_HOP",
    "MAX_FORWARDS_METHODS",
    "MIN_COMPRESS_SIZE",
    "PREFERENCE",
    "ClientSide",
    "Codec",
    "ContentCoding",
    "Error",
    "ErrorSource",
    "ErrorType",
    "H11ClientConnection",
    "H11ServerConnection",
    "Headers",
    "ProtocolError",
    "RequestHeader",
    "ResponseCompression",
    "ResponseHeader",
    "RetryType",
    "ServerSide",
    "accepted_codings",
    "allowed_methods",
    "answer_here",
    "available_codecs",
    "forward_request",
    "forward_response",
    "has_body",
    "has_looped",
    "is_upgrade_request",
    "normalize_host",
    "register_codec",
    "remove_hop_by_hop",
    "request_host",
    "select_codec",
    "status_for",
    "trust_if_writable",
]
