"""`FrameScanner`: reads HTTP/2 frame heads as the bytes come in, before the `h2` package parses them.

Rules:
- The scanner sees every frame head a peer sends (9 bytes: length, type, flags, stream) and holds back an
  incomplete frame until it is whole (the `h2` package waits for whole frames too, so nothing is delayed).
  That is where the floods the `h2` package does not bound are bounded, per connection:
  - a header block (HEADERS or PUSH_PROMISE and its CONTINUATION frames) larger than `max_header_block`
    bytes, or of more than `MAX_CONTINUATIONS` frames, however small (CONTINUATION flood, CVE-2024-27316);
  - control frames (SETTINGS and PING that are not acknowledgements, PRIORITY, and DATA frames that carry
    nothing and do not end their stream) past `control` (SETTINGS and PING floods, empty-frame floods);
  - a frame longer than `max_frame_size` (nothing is buffered for it).
  Each raises `FloodError` with the code the connection's GOAWAY carries (ENHANCE_YOUR_CALM, or
  FRAME_SIZE_ERROR for an oversized frame).
- GOAWAY frames are taken out of the bytes and returned apart (`GoAway`): the `h2` package closes its state
  machine on one, which would leave the streams the peer promised to finish unable to finish (RFC 9113
  §6.8). The connection handles a GOAWAY itself.
- A server's scanner passes the 24-byte client preface through first; the `h2` package checks it.
"""

from __future__ import annotations

from collections.abc import Callable

import attrs

__all__ = ["CONNECTION_PREFACE", "FloodError", "FrameScanner", "GoAway", "Rate"]

#: RFC 9113 §3.4: what a client sends first.
CONNECTION_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
#: RFC 9113 §7 error codes used here.
NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
FRAME_SIZE_ERROR = 0x6
ENHANCE_YOUR_CALM = 0xB
# Header blocks in one piece are the rule; real clients split one into a few frames at most. The `h2`
# package allows 64; an attacker's empty CONTINUATION frames are counted here well before that.
MAX_CONTINUATIONS = 32

# RFC 9113 §6: frame types and flags.
_DATA, _HEADERS, _PRIORITY, _SETTINGS, _PUSH_PROMISE, _PING, _GOAWAY, _CONTINUATION = 0, 1, 2, 4, 5, 6, 7, 9
_END_STREAM = 0x1
_ACK = 0x1
_END_HEADERS = 0x4
_HEAD = 9


class FloodError(Exception):
    """A peer went past a limit: the connection ends with a GOAWAY carrying `code`."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@attrs.frozen
class GoAway:
    """A GOAWAY the peer sent: streams above `last_stream_id` were not processed (RFC 9113 §6.8)."""

    last_stream_id: int
    error_code: int
    debug: bytes = b""


class Rate:
    """At most `limit` events within each `period` seconds (a fixed window: two numbers, no list)."""

    __slots__ = ("count", "limit", "period", "since")

    def __init__(self, limit: int, period: float) -> None:
        self.limit = limit
        self.period = period
        self.count = 0
        self.since = float("-inf")

    def over(self, now: float) -> bool:
        """Count one event at `now`; True once the window holds more than `limit`."""
        if now - self.since >= self.period:
            self.since = now
            self.count = 0
        self.count += 1
        return self.count > self.limit


class FrameScanner:
    """The frame heads of one peer's bytes, checked as they pass (see the module rules).

    Args:
        server: the peer is a client (its preface comes first).
        max_frame_size: the largest frame payload we announced.
        max_header_block: the largest header block accepted, in bytes as sent.
        control: the rate control frames are held to.
        clock: the time source of `control`.
    """

    __slots__ = (
        "_block",
        "_buf",
        "_clock",
        "_control",
        "_frames",
        "_preface",
        "max_frame_size",
        "max_header_block",
    )

    def __init__(
        self,
        *,
        server: bool,
        max_frame_size: int,
        max_header_block: int,
        control: Rate,
        clock: Callable[[], float],
    ) -> None:
        self._preface = len(CONNECTION_PREFACE) if server else 0
        self._buf = b""
        self.max_frame_size = max_frame_size
        self.max_header_block = max_header_block
        self._control = control
        self._clock = clock
        # The header block under way: its bytes and frames so far (0 frames: none).
        self._block = 0
        self._frames = 0

    def feed(self, data: bytes) -> tuple[bytes, list[GoAway]]:
        """Check `data`; return the whole frames to hand to the `h2` package, and the GOAWAYs taken out.

        Raises:
            FloodError: a limit was passed.
        """
        head = b""
        if self._preface:
            taken = min(self._preface, len(data))
            head, data = data[:taken], data[taken:]
            self._preface -= taken
        view = self._buf + data if self._buf else data
        end = len(view)
        pos = cut = 0
        pieces: list[bytes] = []
        goaways: list[GoAway] = []
        while end - pos >= _HEAD:
            length = int.from_bytes(view[pos : pos + 3], "big")
            kind = view[pos + 3]
            flags = view[pos + 4]
            if length > self.max_frame_size:
                raise FloodError(
                    FRAME_SIZE_ERROR, f"a frame of {length} bytes (at most {self.max_frame_size})"
                )
            if end - pos < _HEAD + length:
                break
            self._check(kind, flags, length)
            if kind == _GOAWAY:
                pieces.append(view[cut:pos])
                goaways.append(_goaway(view[pos + _HEAD : pos + _HEAD + length]))
                cut = pos + _HEAD + length
            pos += _HEAD + length
        self._buf = view[pos:]
        if cut == 0 and pos == end:
            passed = view  # the common case: whole frames, nothing taken out, no copy
        else:
            pieces.append(view[cut:pos])
            passed = b"".join(pieces)
        return (head + passed if head else passed), goaways

    def _check(self, kind: int, flags: int, length: int) -> None:
        if kind in (_HEADERS, _PUSH_PROMISE):
            if not flags & _END_HEADERS:
                self._block = length
                self._frames = 1
            self._check_block(length)
        elif kind == _CONTINUATION:
            self._block += length
            self._frames += 1
            self._check_block(self._block)
            if flags & _END_HEADERS:
                self._frames = 0
                self._block = 0
        elif (
            (kind in (_SETTINGS, _PING) and not flags & _ACK)
            or kind == _PRIORITY
            or (kind == _DATA and length == 0 and not flags & _END_STREAM)
        ) and self._control.over(self._clock()):
            raise FloodError(
                ENHANCE_YOUR_CALM,
                f"more than {self._control.limit} control frames within {self._control.period:g} s",
            )

    def _check_block(self, size: int) -> None:
        if size > self.max_header_block:
            raise FloodError(ENHANCE_YOUR_CALM, f"a header block over {self.max_header_block} bytes")
        if self._frames > MAX_CONTINUATIONS:
            raise FloodError(ENHANCE_YOUR_CALM, f"a header block in more than {MAX_CONTINUATIONS} frames")


def _goaway(payload: bytes) -> GoAway:
    if len(payload) < 8:
        raise FloodError(FRAME_SIZE_ERROR, "a GOAWAY frame shorter than 8 bytes")
    last = int.from_bytes(payload[:4], "big") & 0x7FFFFFFF
    return GoAway(last, int.from_bytes(payload[4:8], "big"), bytes(payload[8:]))
