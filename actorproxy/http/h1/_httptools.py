"""The httptools codec, on llhttp: `HttptoolsServerConnection` and `HttptoolsClientConnection`.

Rules:
- The interface is `ServerSide` / `ClientSide` (`_protocols.py`); the observable behaviour is the h11
  codec's (`_h11.py`), which stays the reference: the same heads, body pieces, trailers, errors (type,
  source, retry, status hint), keep-alive and reuse decisions, bytes on the wire and byte counts. Where
  llhttp and h11 disagree, h11's verdict is the one given; the codec tests run on both codecs, and a parity
  test feeds both the same malformed input.
- We find where a head ends (h11's rule: the first empty line), count an incomplete head against
  `max_head_size` across reads (431, as h11). The request or status line is matched with h11's grammar:
  llhttp knows a fixed list of methods and versions, h11 takes any token and any digit.digit. A header
  block the strict field grammar passes (every request's, most responses') is split here, line by line
  (`_httptools_fields.py`); llhttp reads the others, only the header block behind a fixed status line, with
  one parser per thread while each head leaves it at the start of a message. Requests go through the strict
  checks (`_strict.py`) first, exactly as in the h11 codec, so both refuse the same requests with the same
  status.
- llhttp never sees a body. Bodies are framed here exactly as h11 frames them (Content-Length, chunked with
  trailers, read to EOF), so bytes past a message stay in our buffer for the next cycle or for `detach`, and
  a response to HEAD, 1xx, 204, 304 or a 2xx to CONNECT is bodiless without a parser flag. httptools (0.9)
  has none to set: its HttpResponseParser has no per-request HEAD switch, and llhttp skips a body only when
  on_headers_complete returns 1, a value httptools keeps for upgrades.
- llhttp is stricter than h11 in places (unknown methods, control characters or obs-fold in field values, bare
  LF line ends, a repeated equal Content-Length, Content-Length with Transfer-Encoding): when it refuses a
  head, h11's grammar reads the head again (in Python) and decides. It is laxer in others (whitespace at the
  end of a value, Transfer-Encoding lists or case, a 21-digit Content-Length, Host): those are checked here on
  every head, as h11 checks them.
- Heads we write are validated, normalised and framed by h11's rules (Host first, Content-Length or chunked,
  `Connection: close`), then joined with the first body piece: one bytes join and one stream write per call.
- The protocol state of each side is a few fields mirroring h11's states (`_our`, `_their`); a write the
  state does not allow is an `INTERNAL` `H1_ERROR`, as with h11. Causes chained to our errors are h11's public
  `RemoteProtocolError` / `LocalProtocolError` with h11's messages, so an error reads the same whichever codec
  raised it. No httptools exception leaves the codec; `trio.Cancelled` propagates untouched.
- The codec's modules: `_httptools_server.py` and `_httptools_client.py` (the two sides),
  `_httptools_base.py` (the buffer, body and write framing they share), `_httptools_fields.py` (llhttp as a
  field parser); h11's rules they apply are in `_rules.py`, the I/O boundary and the errors in `_base.py`.
  This module is the codec's face: importing it needs httptools installed (`_select.py` guards it).
"""

from __future__ import annotations

from ._httptools_client import HttptoolsClientConnection
from ._httptools_server import HttptoolsServerConnection

__all__ = ["HttptoolsClientConnection", "HttptoolsServerConnection"]
