"""Response compression without a loop: negotiation (RFC 9110 §12.5.3), what is compressible, the head's
adjustments (Vary, Content-Length, Accept-Ranges, ETag), and the streaming coders both ways."""

from __future__ import annotations

import gzip
import zlib

import brotli
import pytest
import zstandard

from actorproxy.http import (
    COMPRESSION_ERROR,
    ContentCoding,
    Error,
    ErrorSource,
    RequestHeader,
    ResponseCompression,
    ResponseHeader,
    accepted_codings,
)
from actorproxy.http._codings import MAX_DECODED_PIECE, compressor, decompressor

TEXT = b"<p>The quick brown fox jumps over the lazy dog.</p>\n" * 200
DECODE = {
    "gzip": gzip.decompress,
    "br": brotli.decompress,
    "zstd": lambda data: zstandard.ZstdDecompressor().decompressobj().decompress(data),
}
ENCODE = {
    "gzip": gzip.compress,
    "br": brotli.compress,
    "zstd": lambda data: zstandard.ZstdCompressor().compress(data),
}


def ctx(accept: str | None, level: int = 5, **options: object) -> ResponseCompression:
    compression = ResponseCompression(level, **options)  # type: ignore[arg-type]
    request = RequestHeader.build("GET", "/")
    if accept is not None:
        request.insert_header("Accept-Encoding", accept)
    compression.request_filter(request)
    return compression


def response(*fields: tuple[str, str], status: int = 200) -> ResponseHeader:
    """A text/html response head with `fields` set on it (replacing the Content-Type, if one is given)."""
    head = ResponseHeader.build(status, [("Content-Type", "text/html")])
    for name, value in fields:
        head.insert_header(name, value)
    return head


def coded(compression: ResponseCompression, head: ResponseHeader, body: bytes = TEXT) -> bytes:
    compression.response_header_filter(head, False)
    pieces = [*compression.response_body_pieces(body[:1000], False)]
    pieces += compression.response_body_pieces(body[1000:], False)
    pieces += compression.response_body_pieces(None, True)
    return b"".join(pieces)


# -- Accept-Encoding -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        (["gzip"], {"gzip": 1.0}),
        (["GZip, BR;q=0.5"], {"gzip": 1.0, "br": 0.5}),
        (["br;q=0", "zstd ; q=0.8"], {"br": 0.0, "zstd": 0.8}),
        (["gzip;q=nonsense"], {"gzip": 0.0}),  # a malformed weight refuses rather than guesses
        (["*;q=0.1, identity"], {"*": 0.1, "identity": 1.0}),
        ([" , ,"], {}),
    ],
)
def test_accept_encoding_is_read_with_its_weights(fields: list[str], expected: dict[str, float]) -> None:
    assert accepted_codings(fields) == expected


@pytest.mark.parametrize(
    ("accept", "chosen"),
    [
        ("gzip", "gzip"),
        ("gzip, br", "br"),  # equal weights: the server's preference
        ("gzip, br, zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),  # the client's weights first
        ("*", "zstd"),
        ("*, zstd;q=0", "br"),  # `*` stands for the codings not named
        ("deflate, compress", None),
        ("gzip;q=0", None),
        ("", None),
        (None, None),  # no Accept-Encoding: identity only, as Pingora does
    ],
)
def test_the_coding_is_the_clients_best_among_the_enabled(accept: str | None, chosen: str | None) -> None:
    head = response()
    compression = ctx(accept)
    compression.response_header_filter(head, False)
    assert head.headers.get("content-encoding") == chosen
    assert compression.is_enabled() is (chosen is not None)


def test_a_coding_at_level_zero_is_never_chosen() -> None:
    compression = ctx("zstd, br, gzip")
    compression.adjust_algorithm_level("zstd", 0)
    compression.adjust_algorithm_level(ContentCoding.BROTLI, 0)
    head = response()
    compression.response_header_filter(head, False)
    assert head.headers.get("content-encoding") == "gzip"


def test_the_client_header_is_read_when_the_context_is_made() -> None:
    request = RequestHeader.build("GET", "/", [("Accept-Encoding", "br")])
    compression = ResponseCompression(4)
    compression.request_filter(request)
    request.remove_header("accept-encoding")  # a filter asking the upstream for identity
    head = response()
    compression.response_header_filter(head, False)
    assert head.headers.get("content-encoding") == "br"


# -- what is compressed ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "status", "compressed"),
    [
        ((), 200, True),
        ((("Content-Type", "application/json; charset=utf-8"),), 200, True),
        ((("Content-Type", "image/svg+xml"),), 200, True),
        ((("Content-Type", "image/png"),), 200, False),
        ((("Content-Type", "application/zip"),), 200, False),
        ((("Content-Type", "application/x-gzip"),), 200, False),
        ((("Content-Length", "19"),), 200, False),  # below min_size
        ((("Content-Length", "20"),), 200, True),
        ((("Cache-Control", "public, No-Transform"),), 200, False),  # RFC 9111 §5.2.2.6
        ((("Content-Range", "bytes 0-9/100"),), 206, False),
        ((), 404, True),
    ],
)
def test_what_is_compressed(fields: tuple[tuple[str, str], ...], status: int, compressed: bool) -> None:
    head = ResponseHeader.build(status, [("Content-Type", "text/html")])
    for name, value in fields:
        head.insert_header(name, value)
    ctx("gzip").response_header_filter(head, False)
    assert ("content-encoding" in head.headers) is compressed


def test_no_content_type_is_not_compressed_and_the_types_are_configurable() -> None:
    head = ResponseHeader.build(200, [("Content-Length", "500")])
    ctx("gzip").response_header_filter(head, False)
    assert "content-encoding" not in head.headers
    head = response(("Content-Type", "text/css"))
    ctx("gzip", content_types=["application/json"]).response_header_filter(head, False)
    assert "content-encoding" not in head.headers
    head = response(("Content-Type", "Application/JSON"))
    ctx("gzip", content_types=["application/json"]).response_header_filter(head, False)
    assert head.headers.get("content-encoding") == "gzip"


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_responses_are_left_alone(status: int) -> None:
    head = ResponseHeader.build(status, [("Content-Type", "text/html"), ("ETag", '"x"')])
    compression = ctx("gzip")
    compression.response_header_filter(head, False)
    assert head.headers.items() == [("Content-Type", "text/html"), ("ETag", '"x"')]
    assert not compression.is_enabled()


def test_a_response_marked_as_ending_with_its_head_is_left_alone() -> None:
    head = response(("Content-Length", "5000"))
    compression = ctx("gzip")
    compression.response_header_filter(head, True)
    assert head.headers.get("content-length") == "5000" and "content-encoding" not in head.headers


def test_an_interim_response_waits_for_the_final_one() -> None:
    compression = ctx("gzip")
    compression.response_header_filter(ResponseHeader.build(103, [("Link", "</s.css>")]), False)
    head = response()
    compression.response_header_filter(head, False)
    assert head.headers.get("content-encoding") == "gzip"


def test_an_off_context_changes_nothing() -> None:
    compression = ctx("gzip", level=0)
    assert not compression.is_enabled()
    head = response(("Content-Length", "5000"))
    compression.response_header_filter(head, False)
    assert head.headers.items() == [("Content-Type", "text/html"), ("Content-Length", "5000")]
    assert compression.response_body_filter(b"data", True) is None
    assert list(compression.response_body_pieces(b"data", True)) == [b"data"]


def test_settings_cannot_change_once_the_head_was_filtered() -> None:
    compression = ctx("gzip")
    compression.response_header_filter(response(), False)
    with pytest.raises(RuntimeError, match="too late"):
        compression.adjust_level(3)


# -- the head of a transformed response -----------------------------------------------------------------


def test_a_compressed_head_loses_its_length_and_ranges_and_gets_vary() -> None:
    head = response(("Content-Length", "10400"), ("Accept-Ranges", "bytes"), ("ETag", '"abc"'))
    ctx("gzip").response_header_filter(head, False)
    assert head.headers.items() == [
        ("Content-Type", "text/html"),
        ("ETag", 'W/"abc"'),  # RFC 9110 §8.8.3: a strong validator names one representation
        ("Vary", "Accept-Encoding"),
        ("Content-Encoding", "gzip"),
    ]


@pytest.mark.parametrize(
    ("etag", "preserve", "expected"),
    [('W/"abc"', False, 'W/"abc"'), ('"abc"', True, '"abc"'), ("unquoted", False, None)],
)
def test_etags(etag: str, preserve: bool, expected: str | None) -> None:
    head = response(("ETag", etag))
    ctx("gzip", preserve_etag=preserve).response_header_filter(head, False)
    assert head.headers.get("etag") == expected


@pytest.mark.parametrize(
    ("vary", "expected"),
    [
        ([], ["Accept-Encoding"]),
        (["Accept-Language"], ["Accept-Language", "Accept-Encoding"]),
        (["accept-language, ACCEPT-ENCODING"], ["accept-language, ACCEPT-ENCODING"]),
        (["*"], ["*"]),
    ],
)
def test_vary_names_accept_encoding_once(vary: list[str], expected: list[str]) -> None:
    head = response(*(("Vary", value) for value in vary))
    ctx("gzip").response_header_filter(head, False)
    assert head.headers.get_all("vary") == expected


def test_a_compressible_response_varies_even_for_a_client_that_gets_identity() -> None:
    head = response()
    ctx(None).response_header_filter(head, False)
    assert "content-encoding" not in head.headers
    assert head.headers.get_all("vary") == ["Accept-Encoding"]  # a cache must not serve it to a gzip client


# -- decompression --------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_an_upstream_coding_the_client_refuses_is_decoded(coding: str) -> None:
    head = response(("Content-Encoding", coding), ("Content-Length", "99"), ("ETag", '"z"'))
    compression = ctx("identity", level=0, decompress=True)
    assert coded(compression, head, ENCODE[coding](TEXT)) == TEXT
    assert "content-encoding" not in head.headers and "content-length" not in head.headers
    assert head.headers.get("etag") == 'W/"z"'
    assert head.headers.get_all("vary") == ["Accept-Encoding"]
    info = compression.get_info()
    assert info is not None and info[0] == coding and info[2] == len(TEXT)


@pytest.mark.parametrize(
    ("accept", "encoding", "decompress"),
    [
        ("gzip", "gzip", True),  # the client reads it as it is
        ("x-gzip", "x-gzip", True),
        ("*", "br", True),
        ("identity", "gzip", False),  # decompression is off
        ("identity", "gzip, br", True),  # two codings: left as they are
        ("identity", "compress", True),  # a coding the proxy does not know
    ],
)
def test_when_an_upstream_coding_is_left_alone(accept: str, encoding: str, decompress: bool) -> None:
    head = response(("Content-Encoding", encoding))
    compression = ctx(accept, level=0, decompress=decompress)
    compression.response_header_filter(head, False)
    assert head.headers.get("content-encoding") == encoding
    assert not compression.is_enabled()


def test_decompression_can_be_chosen_per_coding() -> None:
    compression = ctx("identity", level=0)
    compression.adjust_algorithm_decompression("br", True)
    gzipped = response(("Content-Encoding", "gzip"))
    ctx_copy = ctx("identity", level=0)
    ctx_copy.adjust_algorithm_decompression("br", True)
    ctx_copy.response_header_filter(gzipped, False)
    assert gzipped.headers.get("content-encoding") == "gzip"
    assert coded(compression, response(("Content-Encoding", "br")), brotli.compress(TEXT)) == TEXT


@pytest.mark.parametrize("coding", ["gzip", "br", "zstd"])
def test_a_corrupt_or_truncated_upstream_body_is_an_upstream_error(coding: str) -> None:
    body = ENCODE[coding](TEXT)
    for broken in (body[: len(body) // 2], body + b"trailing garbage", b"\x00" * 64 + body):
        compression = ctx("identity", level=0, decompress=True)
        with pytest.raises(Error) as caught:
            coded(compression, response(("Content-Encoding", coding)), broken)
        assert caught.value.etype == COMPRESSION_ERROR
        assert caught.value.source is ErrorSource.UPSTREAM


# -- the coders -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("coding", list(ContentCoding))
def test_each_coding_round_trips_in_pieces(coding: ContentCoding) -> None:
    compression = ctx(coding.value)
    head = response()
    out = coded(compression, head, TEXT)
    assert head.headers.get("content-encoding") == coding.value
    assert DECODE[coding.value](out) == TEXT
    assert len(out) < len(TEXT) // 5


def test_pingoras_joined_body_filter() -> None:
    compression = ctx("gzip")
    compression.response_header_filter(response(), False)
    out = compression.response_body_filter(TEXT, True)
    assert out is not None and gzip.decompress(out) == TEXT


@pytest.mark.parametrize("coding", list(ContentCoding))
def test_each_piece_is_flushed_so_a_client_can_read_it_at_once(coding: ContentCoding) -> None:
    encoder = compressor(coding, 5)
    first = b"".join(encoder.pieces(b"first piece of a stream ", False))
    decoder = decompressor(coding)
    assert b"".join(decoder.pieces(first, False)) == b"first piece of a stream "


@pytest.mark.parametrize("coding", list(ContentCoding))
def test_decoding_a_bomb_comes_out_in_bounded_pieces(coding: ContentCoding) -> None:
    bomb = ENCODE[coding.value](b"\x00" * (20 * 1024 * 1024))
    assert len(bomb) < 64 * 1024
    decoder = decompressor(coding)
    sizes = [len(piece) for piece in decoder.pieces(bomb, True)]
    assert sum(sizes) == 20 * 1024 * 1024
    # brotli's limit stops the buffer's growth (it may end up to twice the limit); zstd has no output bound
    # per call, and its input is sliced so that each step stays small.
    bound = {ContentCoding.GZIP: 1, ContentCoding.BROTLI: 2, ContentCoding.ZSTD: 8}[coding]
    assert max(sizes) <= bound * MAX_DECODED_PIECE
    assert len(sizes) > 10


def test_levels_are_clamped_into_each_codings_range() -> None:
    for coding, level in ((ContentCoding.GZIP, 40), (ContentCoding.ZSTD, -3), (ContentCoding.BROTLI, 99)):
        encoder = compressor(coding, level)
        out = b"".join(encoder.pieces(TEXT, True))
        assert DECODE[coding.value](out) == TEXT


def test_gzip_output_is_a_gzip_member() -> None:
    out = b"".join(compressor(ContentCoding.GZIP, 6).pieces(TEXT, True))
    assert out[:2] == b"\x1f\x8b"
    assert zlib.decompress(out, 16 + zlib.MAX_WBITS) == TEXT
