"""HTTP/2 settings of a proxy service: what it announces in SETTINGS, and the limits that hold its attacks.

Rules:
- One frozen record, `Http2Settings`, read by the service's h2 connections on both sides (a service's
  `http2:` section in YAML, `ProxySettings.http2` in Python). The announced values are RFC 9113 §6.5.2's;
  the limits are ours, each the bound of one known attack (docs/http2.md).
- Every limit is per connection; a client past one gets `GOAWAY ENHANCE_YOUR_CALM` and the connection
  closes (its streams already answered keep their answers).
"""

from __future__ import annotations

import attrs

from ._checks import at_least, between, doc
from ._rules import POSITIVE

__all__ = ["ALPN_CHOICES", "Http2Settings"]

# RFC 9113 §6.5.2: SETTINGS_MAX_FRAME_SIZE lies in 2^14..2^24-1, a window in 1..2^31-1.
_FRAME_SIZE = between(16_384, 16_777_215)
_WINDOW = between(1, 2_147_483_647)
#: The protocols a listener may offer by ALPN, in its order of preference.
ALPN_CHOICES = ("h2", "http/1.1")


@attrs.frozen(kw_only=True)
class Http2Settings:
    """How a service speaks HTTP/2: its SETTINGS, its flow-control windows and its flood limits."""

    max_concurrent_streams: int = attrs.field(
        default=100,
        validator=at_least(1),
        metadata=doc(
            "Streams a client may have open at once on one connection (SETTINGS_MAX_CONCURRENT_STREAMS);"
            " 100, as RFC 9113 §6.5.2 recommends as a floor and h2o and Envoy's guidance use."
        ),
    )
    initial_window_size: int = attrs.field(
        default=1 << 20,
        validator=_WINDOW,
        metadata=doc(
            "Bytes a peer may send on one stream before a WINDOW_UPDATE (SETTINGS_INITIAL_WINDOW_SIZE), and"
            " the connection's window too; 1 MiB, hyper's default (Pingora's h2 crate starts at 65,535)."
        ),
    )
    max_frame_size: int = attrs.field(
        default=16_384,
        validator=_FRAME_SIZE,
        metadata=doc("The largest frame payload accepted (SETTINGS_MAX_FRAME_SIZE); 16 KiB, RFC 9113's."),
    )
    max_header_list_size: int = attrs.field(
        default=65_536,
        validator=at_least(1024),
        metadata=doc(
            "Bytes of a decoded header list (names, values, 32 each: RFC 9113 §6.5.2); a larger one, or a"
            " HEADERS+CONTINUATION block larger than it, ends the connection (HPACK bomb, CONTINUATION"
            " flood); 64 KiB."
        ),
    )
    max_resets: int = attrs.field(
        default=200,
        validator=at_least(1),
        metadata=doc(
            "Streams a client may reset within reset_period before the connection ends with GOAWAY"
            " ENHANCE_YOUR_CALM (Rapid Reset, CVE-2023-44487)."
        ),
    )
    reset_period: float = attrs.field(
        default=10.0, validator=POSITIVE, metadata=doc("Seconds over which max_resets counts.")
    )
    max_control_frames: int = attrs.field(
        default=200,
        validator=at_least(1),
        metadata=doc(
            "SETTINGS, PING and empty DATA or HEADERS-less frames a client may send within"
            " control_period (SETTINGS and PING floods)."
        ),
    )
    control_period: float = attrs.field(
        default=10.0, validator=POSITIVE, metadata=doc("Seconds over which max_control_frames counts.")
    )
    flow_control_timeout: float = attrs.field(
        default=30.0,
        validator=POSITIVE,
        metadata=doc(
            "Seconds a response may wait for the client to open a zero window; then the stream is reset"
            " (a connection whose window stays shut for as long ends)."
        ),
    )
    max_h2_streams: int = attrs.field(
        default=100,
        validator=at_least(1),
        metadata=doc(
            "Upstream: requests carried at once on one h2 connection to a peer, at most the peer's"
            " SETTINGS_MAX_CONCURRENT_STREAMS; a full connection makes the pool open another."
        ),
    )


attrs.resolve_types(Http2Settings)
