"""Properties of the strict checks and of every codec's server side, over generated and mutated requests.

- No input crashes them: the checks raise only h11's `RemoteProtocolError` with a 4xx/5xx status, a codec
  only the project's `Error` (a `ProtocolError` with a 4xx/5xx status, or the client closing mid-request).
- The verdict does not depend on how the bytes are split into reads.
- What is accepted is forwarded in normalised form: written upstream by a codec's client side and read back
  by a server side (ours, strict, and plain h11 as an upstream would), it is the same request, accepted.
"""

from __future__ import annotations

import itertools
from functools import partial
from typing import Any

import h11
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actorproxy.config import HttpLimits
from actorproxy.http import (
    Codec,
    Error,
    ErrorType,
    Headers,
    ProtocolError,
    RequestHeader,
    available_codecs,
    select_codec,
    status_for,
)
from actorproxy.http.h1._strict import HeadScanner, check_head, check_request, noted_fields
from actorproxy.testing import ScriptedStream, Starved

CODECS = [select_codec(name) for name in available_codecs()]
LIMITS = HttpLimits(max_request_line=256, max_header_bytes=1024, max_header_count=12, max_body_size=4096)
SETTINGS = settings(
    max_examples=150, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


# -- inputs --------------------------------------------------------------------------------------------------

METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "BREW"]
TARGETS = ["/", "/a/b?c=d&e", "/%7Euser", "/a;b", "/x|y{z}", "http://example.com/p", "http://EXAMPLE.com:80/"]
FIELDS = [
    b"Accept: */*",
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64)",
    b"X-Empty:",
    b"X-Ows:  \t spaced \t ",
    b"X-Obs-Text: caf\xe9",
    b"Cookie: a=b; c=d",
    b"Connection: keep-alive",
    b"Accept-Encoding: gzip, br",
    b'X-Quote: "a,b"',
    b"Expect: 100-continue",
]


@st.composite
def valid_requests(draw: st.DrawFn) -> bytes:
    """Requests the checks must accept: varied fields, Content-Length or chunked bodies, trailers."""
    method = draw(st.sampled_from(METHODS))
    target = draw(st.sampled_from(TARGETS))
    version = draw(st.sampled_from([b"1.1", b"1.0"]))
    fields = draw(st.lists(st.sampled_from(FIELDS), max_size=5, unique=True))
    host = draw(st.sampled_from([b"Host: example.com", b"host:example.com:80", b"HOST: example.com"]))
    fields.insert(draw(st.integers(0, len(fields))), host)
    body = draw(st.binary(max_size=40))
    framing = draw(
        st.sampled_from(["none", "length", "chunked"] if version == b"1.1" else ["none", "length"])
    )
    if framing == "none":
        body = b""
    elif framing == "length":
        fields.append(b"Content-Length: %d" % len(body))
    else:
        fields.append(b"Transfer-Encoding: " + draw(st.sampled_from([b"chunked", b"Chunked"])))
    head = b"%s %s HTTP/%s\r\n" % (method.encode(), target.encode(), version)
    head += b"".join(field + b"\r\n" for field in fields) + b"\r\n"
    if framing != "chunked":
        return head + body
    chunks = b""
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        extension = draw(st.sampled_from([b"", b";a=b", b'; n = "q;v"', b";x"]))
        chunks += b"%x%s\r\n%s\r\n" % (size, extension, rest[:size])
        rest = rest[size:]
    trailers = draw(st.sampled_from([b"", b"X-Sum: 1\r\n", b"X-A: b\r\nX-C:  d \r\n"]))
    return head + chunks + b"0\r\n" + trailers + b"\r\n"


NOISE = [
    b"\r",
    b"\n",
    b"\r\n",
    b" ",
    b"\t",
    b":",
    b",",
    b";",
    b"\x00",
    b"\x01",
    b"\x0b",
    b"\x7f",
    b"\xff",
    b"0",
    b"chunked",
    b"Content-Length: 3\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Transfer-Encoding : chunked\r\n",
    b"Host: h\r\n",
    b"Host: other\r\n",
    b"\r\n ",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"0\r\n\r\n",
    b"3\r\nabc\r\n",
    b"Expect: x\r\n",
    b"#",
    b"@",
    b"1;a\rb\r\n",
    b"Content-Length: 5\r\n\r\n",
    b"A" * 300,
]


@st.composite
def mutated_requests(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(valid_requests()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw)))
        if draw(st.booleans()):
            raw[at:at] = draw(st.sampled_from(NOISE))
        else:
            del raw[at : at + draw(st.integers(1, 3))]
    return bytes(raw)


any_input = st.one_of(st.binary(max_size=200), mutated_requests(), valid_requests())


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


# -- the checks alone ----------------------------------------------------------------------------------------


def check(reads: list[bytes]) -> int | str:
    """The checks' verdict on a head arriving in `reads`: a status, "accepted" or "incomplete"."""
    scanner = HeadScanner(LIMITS)
    buf = bytearray()
    try:
        for data in reads:
            buf += data
            if not buf:
                continue
            end = scanner.scan(buf, 0)
            if end >= 0:
                method, target, version, start = check_head(buf, 0, end, scanner.match)
                check_request(method, target, version, noted_fields(buf, start, end), LIMITS)
                return "accepted"
    except h11.RemoteProtocolError as exc:
        assert 400 <= exc.error_status_hint <= 599, exc
        return exc.error_status_hint
    return "incomplete"


@SETTINGS
@given(data=any_input, cuts=st.lists(st.integers(0, 10_000), max_size=6))
def test_the_checks_never_crash_and_do_not_depend_on_the_reads(data: bytes, cuts: list[int]) -> None:
    whole = check([data])
    assert check(split(data, cuts)) == whole
    assert check([data[i : i + 1] for i in range(len(data))]) == whole


@SETTINGS
@given(data=valid_requests())
def test_valid_requests_pass_the_checks(data: bytes) -> None:
    assert check([data]) == "accepted"


# -- every codec's server side -------------------------------------------------------------------------------


async def serve(codec: Codec, reads: list[bytes], close: bool) -> Any:
    """Read one request and its body; what came of it."""
    server = codec.server(ScriptedStream(reads, close=close), limits=LIMITS)
    try:
        request = await server.read_request()
        if request is None:
            return ("closed",)
        body = b""
        while (piece := await server.read_body()) is not None:
            body += piece
    except Starved:
        return ("waits",)
    except Error as exc:
        if isinstance(exc, ProtocolError):
            assert exc.status_hint is not None and 400 <= exc.status_hint <= 599, exc
        else:  # the client closed in the middle of the request: nobody left to answer
            assert exc.etype is ErrorType.CONNECTION_CLOSED, exc
            assert status_for(exc) is None
        return ("refused", status_for(exc))
    trailers = server.request_trailers
    return ("accepted", request, body, None if trailers is None else trailers.items())


def run(codec: Codec, reads: list[bytes], close: bool = True) -> Any:
    return trio.run(partial(serve, codec, reads, close))


@SETTINGS
@given(data=any_input, cuts=st.lists(st.integers(0, 10_000), max_size=4), close=st.booleans())
def test_no_input_crashes_a_codec_and_all_codecs_agree(data: bytes, cuts: list[int], close: bool) -> None:
    reads = split(data, cuts)
    outcomes = [run(codec, reads, close) for codec in CODECS]
    summaries = [
        outcome if outcome[0] != "accepted" else (*outcome[:1], _head(outcome[1]), *outcome[2:])
        for outcome in outcomes
    ]
    assert all(summary == summaries[0] for summary in summaries), summaries


def _head(request: RequestHeader) -> tuple[str, str, str, list[tuple[str, str]]]:
    return (request.method, request.uri, request.version, request.headers.items())


def host_first(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The order a codec's client side writes fields in: Host first (h11's rule), the rest as they were."""
    return [p for p in pairs if p[0].lower() == "host"] + [p for p in pairs if p[0].lower() != "host"]


async def forward(codec: Codec, request: RequestHeader, body: bytes, trailers: Any) -> bytes:
    """What a codec's client side writes for the request, as the engine writes it: head, body, end."""
    stream = ScriptedStream([])
    conn = codec.client(stream)
    await conn.write_request(request)
    if body:
        await conn.write_body(body)
    await conn.finish(None if trailers is None else _headers(trailers))
    return stream.written


def _headers(pairs: list[tuple[str, str]]) -> Headers:
    return Headers(pairs)


def upstream_reads(data: bytes) -> tuple[h11.Request, bytes, list[tuple[bytes, bytes]]]:
    """Plain h11 reading what the proxy sent, as an upstream would."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    conn.receive_data(b"")
    request = conn.next_event()
    assert isinstance(request, h11.Request)
    body = b""
    while True:
        event = conn.next_event()
        if isinstance(event, h11.Data):
            body += event.data
        else:
            assert isinstance(event, h11.EndOfMessage), event
            return request, body, list(event.headers.raw_items())


@SETTINGS
@given(
    data=st.one_of(valid_requests(), mutated_requests()), cuts=st.lists(st.integers(0, 10_000), max_size=3)
)
def test_what_is_accepted_is_forwarded_in_normalised_form(data: bytes, cuts: list[int]) -> None:
    for codec in CODECS:
        outcome = run(codec, split(data, cuts))
        if outcome[0] != "accepted":
            continue
        _, request, body, trailers = outcome
        for client in CODECS:
            sent = trio.run(partial(forward, client, request, body, trailers))
            # Read back by the strict server side of every codec: accepted, and the same request.
            for reader in CODECS:
                again = run(reader, [sent])
                assert again[0] == "accepted", (sent, again)
                _, parsed, parsed_body, parsed_trailers = again
                assert (parsed.method, parsed.uri) == (request.method, request.uri)
                assert parsed.headers.items() == host_first(request.headers.items())
                assert (parsed_body, parsed_trailers) == (body, trailers)
            # And by plain h11, as an upstream: the same framing, the same body.
            upstream, upstream_body, _ = upstream_reads(sent)
            assert upstream.target.decode("latin-1") == request.uri
            assert upstream_body == body


@SETTINGS
@given(data=valid_requests())
def test_valid_requests_are_accepted_by_every_codec(data: bytes) -> None:
    for codec in CODECS:
        assert run(codec, [data])[0] == "accepted"
