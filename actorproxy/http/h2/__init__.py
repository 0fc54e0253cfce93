"""HTTP/2 for the proxy on the `h2` package: a client's connection served stream by stream behind the
`ServerSide` contract (`H2ServerConnection`, `H2ServerStream`), multiplexed upstream connections behind
`ClientSide` (`H2ClientConnection`, `H2ClientStream`), RFC 9113 §8's checks and the h1 <-> h2 translation
(`_rules`), and the flood limits (`_frames`). See docs/http2.md."""

from ._client import H2ClientConnection, H2ClientStream
from ._connection import CANCEL, H2Connection, H2Stream
from ._frames import CONNECTION_PREFACE, FloodError, FrameScanner, GoAway, Rate
from ._rules import (
    CONNECTION_SPECIFIC,
    MalformedStream,
    request_from_h2,
    request_to_h2,
    response_from_h2,
    response_to_h2,
    trailers_from_h2,
    trailers_to_h2,
)
from ._server import HIGH_WATER, H2ServerConnection, H2ServerStream

__all__ = [
    "CANCEL",
    "CONNECTION_PREFACE",
    "CONNECTION_SPECIFIC",
    "HIGH_WATER",
    "FloodError",
    "FrameScanner",
    "GoAway",
    "H2ClientConnection",
    "H2ClientStream",
    "H2Connection",
    "H2ServerConnection",
    "H2ServerStream",
    "H2Stream",
    "MalformedStream",
    "Rate",
    "request_from_h2",
    "request_to_h2",
    "response_from_h2",
    "response_to_h2",
    "trailers_from_h2",
    "trailers_to_h2",
]
