"""HTTP/1.1: two codecs behind one interface (h11, the reference, and httptools, the fast one), the strict
rules in front of both, and the choice between them."""

from ._base import DEFAULT_MAX_HEAD_SIZE, DEFAULT_READ_SIZE, ProtocolError
from ._h11 import ClientConnection, ServerConnection
from ._select import CODEC_ENV, Codec, available_codecs, register_codec, select_codec

__all__ = [
    "CODEC_ENV",
    "DEFAULT_MAX_HEAD_SIZE",
    "DEFAULT_READ_SIZE",
    "ClientConnection",
    "Codec",
    "ProtocolError",
    "ServerConnection",
    "available_codecs",
    "register_codec",
    "select_codec",
]
