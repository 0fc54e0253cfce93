"""HTTP/1.1: the interface every codec provides (`ServerSide`, `ClientSide`), two codecs behind it (h11, the
reference, and httptools, the fast one), the strict rules in front of both, and the choice between them."""

from ._base import DEFAULT_MAX_HEAD_SIZE, DEFAULT_READ_SIZE, ProtocolError
from ._h11 import H11ClientConnection, H11ServerConnection
from ._protocols import ClientSide, ServerSide
from ._rules import trust_if_writable
from ._select import CODEC_ENV, Codec, available_codecs, register_codec, select_codec

__all__ = [
    "CODEC_ENV",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "ClientSide",
    "Codec",
    "H11ClientConnection",
    "H11ServerConnection",
    "ProtocolError",
    "ServerSide",
    "available_codecs",
    "register_codec",
    "select_codec",
    "trust_if_writable",
]
