"""The codecs' server and client connections over memory streams, against raw bytes and each other.

Every test runs once per available codec (h11, and httptools when installed): both must behave the same.
"""

from __future__ import annotations

import math
import ssl

import pytest
import trio
import trio.testing

from actorproxy.http import (
    ClientSide,
    Codec,
    Error,
    ErrorSource,
    ErrorType,
    Headers,
    ProtocolError,
    RequestHeader,
    ResponseHeader,
    RetryType,
    ServerSide,
    available_codecs,
    select_codec,
    status_for,
)
from actorproxy.http.h1 import _httptools_fields as fields_module


@pytest.fixture(params=available_codecs())
def codec(request: pytest.FixtureRequest) -> Codec:
    """Each available codec in turn."""
    return select_codec(request.param)


class RawPeer:
    """The far end of a memory stream, speaking raw bytes."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.buffer = b""

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def receive_until(self, marker: bytes) -> bytes:
        """Everything up to and including `marker`."""
        while marker not in self.buffer:
            chunk = await self.stream.receive_some(65536)
            assert chunk, f"EOF before {marker!r}; got {self.buffer!r}"
            self.buffer += chunk
        end = self.buffer.index(marker) + len(marker)
        data, self.buffer = self.buffer[:end], self.buffer[end:]
        return data

    async def receive_rest(self) -> bytes:
        """Everything left until the other side closes."""
        while chunk := await self.stream.receive_some(65536):
            self.buffer += chunk
        data, self.buffer = self.buffer, b""
        return data

    async def close(self) -> None:
        await self.stream.aclose()


class CountingStream(trio.abc.Stream):
    """Records every `send_all`, to check that a head and its body go out in one write."""

    def __init__(self, inner: trio.abc.Stream) -> None:
        self.inner = inner
        self.writes: list[bytes] = []

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        await self.inner.send_all(data)

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def aclose(self) -> None:
        await self.inner.aclose()


class BrokenStream(trio.abc.Stream):
    """A stream whose every read and write fails with `error`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        raise self.error

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        raise self.error

    async def aclose(self) -> None:
        pass


class NowaitStream(CountingStream):
    """A memory stream with the twins of `SocketStream` that never wait: what the peer sent already is in
    `ready` (`receive_some_nowait` takes from it, else WouldBlock); anything else comes through `inner`."""

    def __init__(self, inner: trio.abc.Stream, *ready: bytes) -> None:
        super().__init__(inner)
        self.ready = list(ready)
        self.nowait_reads = 0
        self.reads_within: list[tuple[float | None, bool]] = []
        self.nowait_writes: list[bytes] = []
        self.checkpoints = 0

    async def checkpoint(self) -> None:
        self.checkpoints += 1
        await trio.lowlevel.checkpoint()

    def receive_some_nowait(self, max_bytes: int | None = None) -> bytes:
        if not self.ready:
            raise trio.WouldBlock
        self.nowait_reads += 1
        return self.ready.pop(0)

    async def receive_some_within(
        self, max_bytes: int | None, timeout: float | None, *, readable_first: bool = False
    ) -> bytes | bytearray:
        self.reads_within.append((timeout, readable_first))
        with trio.fail_after(math.inf if timeout is None else timeout):
            return await self.receive_some(max_bytes)

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.ready:
            return self.ready.pop(0)
        return await self.inner.receive_some(max_bytes)

    def send_some_nowait(self, data: bytes | bytearray | memoryview) -> int:
        self.nowait_writes.append(bytes(data))
        return len(data)


def broken(cause: BaseException) -> trio.BrokenResourceError:
    """A BrokenResourceError caused by `cause`, as trio's socket and TLS streams raise them."""
    error = trio.BrokenResourceError("broken")
    error.__cause__ = cause
    return error


def server_pair(codec: Codec, **options: int) -> tuple[ServerSide, RawPeer, CountingStream]:
    ours, theirs = trio.testing.memory_stream_pair()
    counting = CountingStream(ours)
    return codec.server(counting, **options), RawPeer(theirs), counting


def client_pair(
    codec: Codec, *, read_timeout: float | None = None, write_timeout: float | None = None
) -> tuple[ClientSide, RawPeer, CountingStream]:
    ours, theirs = trio.testing.memory_stream_pair()
    counting = CountingStream(ours)
    conn = codec.client(counting, read_timeout=read_timeout, write_timeout=write_timeout)
    return conn, RawPeer(theirs), counting


async def read_whole_body(conn: ServerSide | ClientSide) -> bytes:
    chunks = []
    while (chunk := await conn.read_body()) is not None:
        assert chunk
        chunks.append(chunk)
    return b"".join(chunks)


def request(method: str = "GET", uri: str = "/", *fields: tuple[str, str]) -> RequestHeader:
    return RequestHeader(method, uri, [("Host", "upstream"), *fields])


# -- downstream: reading requests ------------------------------------------------------------------------


async def test_request_with_content_length_body_keeps_header_case(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    sent = (
        b"POST /upload?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Mixed-CASE: v\r\nContent-Length: 11\r\n\r\n"
        b"hello world"
    )
    await client.send(sent)
    req = await server.read_request()
    assert req is not None
    assert (req.method, req.uri, req.path, req.query, req.version) == (
        "POST",
        "/upload?x=1",
        "/upload",
        "x=1",
        "1.1",
    )
    assert [name for name, _ in req.headers] == ["Host", "X-Mixed-CASE", "Content-Length"]
    assert req.headers.get("x-mixed-case") == "v"
    assert await read_whole_body(server) == b"hello world"
    assert await server.read_body() is None
    assert server.request_trailers is None
    assert server.bytes_read == len(sent)


async def test_chunked_request_with_trailers_is_read(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n6\r\n world\r\n0\r\nX-Checksum: abc\r\n\r\n"
    )
    assert await server.read_request() is not None
    assert await read_whole_body(server) == b"hello world"
    assert server.request_trailers == Headers([("X-Checksum", "abc")])


async def test_request_without_body_ends_at_once(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    assert await server.read_body() is None


async def test_read_body_before_any_request_reads_nothing(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_body() is None
    assert await server.read_request() is not None


async def test_clean_close_before_a_request_is_none(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.close()
    assert await server.read_request() is None


@pytest.mark.parametrize(
    "sent",
    [b"GET / HTTP/1.1\r\nHost: h\r\n", b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\nabc"],
    ids=["mid-head", "mid-body"],
)
async def test_client_closing_mid_request_is_connection_closed(codec: Codec, sent: bytes) -> None:
    server, client, _ = server_pair(codec)
    await client.send(sent)
    await client.close()
    with pytest.raises(Error) as caught:
        if await server.read_request() is not None:
            await read_whole_body(server)
    assert (caught.value.etype, caught.value.source) == (ErrorType.CONNECTION_CLOSED, ErrorSource.DOWNSTREAM)
    assert status_for(caught.value) is None  # nobody left to answer
    assert not server.keepalive


async def test_malformed_request_has_status_hint_400_and_can_still_be_answered(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\nBad Header: x\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    error = caught.value
    assert (error.etype, error.source, error.status_hint) == (
        ErrorType.INVALID_HTTP_HEADER,
        ErrorSource.DOWNSTREAM,
        400,
    )
    assert status_for(error) == 400
    await server.write_response(ResponseHeader(400), end=True)
    head = await client.receive_until(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"Connection: close\r\n" in head
    assert not server.start_next_cycle()


async def test_oversized_head_has_status_hint_431(codec: Codec) -> None:
    server, client, _ = server_pair(codec, max_head_size=1024)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"a" * 2000)
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert (caught.value.status_hint, caught.value.etype) == (431, ErrorType.INVALID_HTTP_HEADER)


async def test_unsupported_transfer_coding_has_status_hint_501(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert caught.value.status_hint == 501


async def test_transfer_coding_without_chunked_last_has_status_hint_400(codec: Codec) -> None:
    # RFC 9112 §6.3: the length of such a request cannot be determined, whatever the coding.
    server, client, _ = server_pair(codec)
    await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert caught.value.status_hint == 400


@pytest.mark.parametrize(
    "head",
    [
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
    ],
    ids=["content-length-and-transfer-encoding", "transfer-encoding-on-http-1.0"],
)
async def test_smuggling_prone_framing_is_refused(codec: Codec, head: bytes) -> None:
    server, client, _ = server_pair(codec)
    await client.send(head + b"3\r\nabc\r\n0\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await server.read_request()
    assert (caught.value.status_hint, caught.value.source) == (400, ErrorSource.DOWNSTREAM)
    assert not server.keepalive


async def test_bad_chunk_in_request_body_is_h1_error(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    assert await server.read_request() is not None
    with pytest.raises(ProtocolError) as caught:
        await server.read_body()
    assert (caught.value.etype, caught.value.status_hint) == (ErrorType.H1_ERROR, 400)


async def test_transport_failures_are_downstream_read_and_write_errors(codec: Codec) -> None:
    server = codec.server(BrokenStream(broken(ConnectionResetError())))
    with pytest.raises(Error) as caught:
        await server.read_request()
    assert (caught.value.etype, caught.value.source) == (ErrorType.READ_ERROR, ErrorSource.DOWNSTREAM)
    assert isinstance(caught.value.__cause__, trio.BrokenResourceError)

    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await client.close()
    with pytest.raises(Error) as caught:
        await server.write_response(ResponseHeader(200), b"x", end=True)
    assert (caught.value.etype, caught.value.source) == (ErrorType.WRITE_ERROR, ErrorSource.DOWNSTREAM)
    assert server.response_started
    assert not server.keepalive


async def test_read_request_nowait_takes_a_head_that_is_there_already(codec: Codec) -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    stream = NowaitStream(ours, b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n")
    server = codec.server(stream)
    first = server.read_request_nowait()  # one read that does not wait
    assert first is not None
    assert (first.uri, stream.nowait_reads) == ("/one", 1)
    await server.write_response(ResponseHeader(200), b"1", end=True)
    assert server.start_next_cycle()
    second = server.read_request_nowait()  # buffered: no read at all
    assert second is not None
    assert (second.uri, stream.nowait_reads) == ("/two", 1)
    assert server.body_done


async def test_read_request_nowait_would_block_and_keeps_what_it_read(codec: Codec) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    stream = NowaitStream(ours, b"GET /half HTTP/1.1\r\n")
    server = codec.server(stream)
    with pytest.raises(trio.WouldBlock):
        server.read_request_nowait()
    with pytest.raises(trio.WouldBlock):
        server.read_request_nowait()  # nothing more arrived
    await theirs.send_all(b"Host: h\r\n\r\n")
    req = await server.read_request()
    assert req is not None
    assert (req.uri, req.headers.get("host")) == ("/half", "h")


async def test_read_request_nowait_on_a_stream_without_the_twins(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    with pytest.raises(trio.WouldBlock):
        server.read_request_nowait()  # a memory stream cannot be read without waiting
    await client.send(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200), b"1", end=True)
    assert server.start_next_cycle()
    req = server.read_request_nowait()  # what was read with the first request
    assert req is not None
    assert req.uri == "/two"


async def test_read_request_nowait_refuses_and_ends_as_read_request_does(codec: Codec) -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    server = codec.server(NowaitStream(ours, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"))
    with pytest.raises(ProtocolError) as caught:
        server.read_request_nowait()
    assert caught.value.status_hint == 400
    closed = codec.server(NowaitStream(ours, b""))
    assert closed.read_request_nowait() is None


async def test_the_client_side_uses_the_stream_twins_and_times_out_only_a_wait(
    codec: Codec, autojump_clock: trio.testing.MockClock
) -> None:
    ours, _theirs = trio.testing.memory_stream_pair()
    stream = NowaitStream(ours, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    conn = codec.client(stream, read_timeout=5.0, write_timeout=5.0)
    await conn.write_request(request(), end=True)
    assert stream.nowait_writes == [b"GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"]
    assert stream.writes == []  # taken whole without waiting: no send_all
    assert (await conn.read_response()).status == 200
    # The answer to a request just sent takes the peer a round trip: its first read yields (the stream's
    # checkpoint), then takes what is there without waiting.
    assert await read_whole_body(conn) == b"ok"
    assert (stream.checkpoints, stream.nowait_reads, stream.reads_within) == (1, 1, [])
    assert conn.start_next_cycle()
    await conn.write_request(request(), end=True)
    start = trio.current_time()
    with pytest.raises(Error) as caught:
        await conn.read_response()  # nothing there: the read waits, and the stream bounds the wait
    assert caught.value.etype is ErrorType.READ_TIMEDOUT
    assert trio.current_time() - start == pytest.approx(5.0)
    assert (stream.checkpoints, stream.reads_within) == (2, [(5.0, True)])


async def test_read_request_before_the_cycle_ends_is_internal_error(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    with pytest.raises(Error) as caught:
        await server.read_request()
    assert caught.value.source is ErrorSource.INTERNAL


async def test_cancellation_is_not_translated(codec: Codec, autojump_clock: trio.testing.MockClock) -> None:
    server, client, _ = server_pair(codec)
    with trio.move_on_after(5) as scope:
        await server.read_request()
    assert scope.cancelled_caught
    # A cancelled read consumed nothing: the connection still serves the request.
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None


# -- downstream: writing responses -----------------------------------------------------------------------


async def test_response_head_and_body_go_out_in_one_write(codec: Codec) -> None:
    server, client, counting = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    header = ResponseHeader(200, [("X-Mixed-CASE", "v")])
    await server.write_response(header, b"hi", end=True)
    expected = b"HTTP/1.1 200 OK\r\nX-Mixed-CASE: v\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nhi"
    assert counting.writes == [expected]
    assert await client.receive_until(b"hi") == expected
    assert header.headers.items() == [("X-Mixed-CASE", "v")]  # Content-Length went on the wire only
    assert (server.response_started, server.response_header) == (True, header)
    assert server.bytes_written == len(expected)
    assert server.bytes_read == len(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")


async def test_chunked_response_with_trailers_is_written(codec: Codec) -> None:
    server, client, counting = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200), b"ab")
    await server.write_body(b"")  # nothing to write, no empty chunk (which would end the body)
    await server.write_body(b"cde")
    await server.finish(Headers([("X-Checksum", "sum")]))
    await server.finish()  # a second finish does nothing
    assert counting.writes == [
        b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        b"3\r\ncde\r\n",
        b"0\r\nX-Checksum: sum\r\n\r\n",
    ]
    assert server.start_next_cycle()


async def test_trailers_are_dropped_without_chunked_framing(codec: Codec) -> None:
    server, client, counting = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200, [("Content-Length", "3")]))
    await server.write_body(b"abc")
    await server.finish(Headers([("X-Checksum", "sum")]))
    assert (
        b"".join(counting.writes)
        == b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nabc"
    )


async def test_100_continue_is_sent_once_on_request(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n")
    assert await server.read_request() is not None
    assert server.expects_continue
    await server.send_continue()
    assert await client.receive_until(b"\r\n\r\n") == b"HTTP/1.1 100 Continue\r\n\r\n"
    written = server.bytes_written
    await server.send_continue()
    assert server.bytes_written == written
    await client.send(b"data")
    assert await read_whole_body(server) == b"data"
    assert not server.response_started  # a 1xx is not the response
    await server.write_response(ResponseHeader(201), end=True)
    assert (await client.receive_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 201 Created\r\n")


@pytest.mark.parametrize(
    "head",
    [
        b"PUT /f HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n",
        b"PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 0\r\n\r\n",
        b"PUT /f HTTP/1.0\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n",
    ],
    ids=["no-expect", "no-body", "http-1.0"],
)
async def test_no_continue_unless_a_body_waits_for_it(codec: Codec, head: bytes) -> None:
    server, client, _ = server_pair(codec)
    await client.send(head)
    assert await server.read_request() is not None
    assert not server.expects_continue
    await server.send_continue()
    assert server.bytes_written == 0


async def test_response_to_head_has_no_body(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"HEAD /f HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200, [("Content-Length", "5")]), b"hello")
    await server.write_body(b"more")
    await server.finish()
    assert server.start_next_cycle()
    await server.close()
    assert (
        await client.receive_rest()
        == b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    )


@pytest.mark.parametrize("status", [204, 304])
async def test_bodiless_statuses_drop_the_body(codec: Codec, status: int) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(status), b"ignored", end=True)
    head = await client.receive_until(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode())
    assert b"Content-Length" not in head
    assert b"Transfer-Encoding" not in head
    assert server.start_next_cycle()
    await server.close()
    assert await client.receive_rest() == b""


async def test_http_1_0_client_gets_a_close_delimited_body(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.0\r\nHost: h\r\n\r\n")
    req = await server.read_request()
    assert req is not None
    assert req.version == "1.0"
    assert not server.keepalive
    await server.write_response(ResponseHeader(200), b"old")
    await server.finish(Headers([("X-Trailer", "dropped")]))
    assert await client.receive_until(b"old") == b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nold"
    assert not server.start_next_cycle()


async def test_invalid_response_header_is_internal_and_leaves_the_connection_usable(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    for bad in (
        ResponseHeader(200, [("X-Bad", "a\r\nInjected: 1")]),
        ResponseHeader(200, reason="OK\r\nX: 1"),
    ):
        with pytest.raises(Error) as caught:
            await server.write_response(bad, end=True)
        assert (caught.value.etype, caught.value.source) == (
            ErrorType.INVALID_HTTP_HEADER,
            ErrorSource.INTERNAL,
        )
    assert server.bytes_written == 0
    await server.write_response(ResponseHeader(500), end=True)
    assert (await client.receive_until(b"\r\n\r\n")).startswith(b"HTTP/1.1 500 ")


async def test_body_past_content_length_is_internal_error(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200, [("Content-Length", "1")]), b"a")
    with pytest.raises(Error) as caught:
        await server.write_body(b"b")
    assert (caught.value.etype, caught.value.source) == (ErrorType.H1_ERROR, ErrorSource.INTERNAL)
    assert not server.keepalive


# -- downstream: keep-alive ------------------------------------------------------------------------------


async def test_keepalive_serves_two_pipelined_requests_then_sees_the_close(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET /one HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nHost: h\r\n\r\n")
    for name in (b"one", b"two"):
        req = await server.read_request()
        assert req is not None
        assert req.uri == "/" + name.decode()
        assert not server.next_request_ready()  # the response is not written yet
        await server.write_response(ResponseHeader(200), name, end=True)
        assert await client.receive_until(name) == (
            b"HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nContent-Length: 3\r\n\r\n" + name
        )
        assert server.keepalive
        assert server.start_next_cycle()
        assert (server.response_started, server.response_header) == (False, None)
    await client.close()
    assert await server.read_request() is None


async def test_client_connection_close_ends_keepalive(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n")
    assert await server.read_request() is not None
    assert not server.keepalive
    await server.write_response(ResponseHeader(200), b"x", end=True)
    head = await client.receive_until(b"\r\n\r\n")
    assert b"Connection: close\r\n" in head
    assert not server.next_request_ready()
    assert not server.start_next_cycle()


async def test_set_keepalive_false_adds_connection_close(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    server.set_keepalive(False)
    await server.write_response(ResponseHeader(200, [("Connection", "keep-alive")]), b"x", end=True)
    head = await client.receive_until(b"\r\n\r\n")
    assert head == b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\n"
    assert not server.start_next_cycle()


async def test_response_with_connection_close_ends_keepalive(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(200, [("Connection", "close")]), b"x", end=True)
    assert not server.keepalive
    assert not server.start_next_cycle()


async def test_unread_request_body_prevents_the_next_cycle(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello")
    assert await server.read_request() is not None
    await server.write_response(ResponseHeader(413), end=True)
    assert not server.start_next_cycle()
    assert await read_whole_body(server) == b"hello"  # drained: now the connection can go on
    assert server.start_next_cycle()


# -- downstream: upgrades --------------------------------------------------------------------------------


UPGRADE_REQUEST = b"GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"


@pytest.mark.parametrize("read_body_first", [True, False])
async def test_detach_after_101_returns_the_bytes_already_read(codec: Codec, read_body_first: bool) -> None:
    server, client, counting = server_pair(codec)
    await client.send(UPGRADE_REQUEST + b"early-frame")
    req = await server.read_request()
    assert req is not None
    assert server.upgrade_requested
    if read_body_first:
        assert await server.read_body() is None
    switching = ResponseHeader(101, [("Connection", "Upgrade"), ("Upgrade", "websocket")])
    await server.write_response(switching)
    assert await client.receive_until(b"\r\n\r\n") == (
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
    )
    assert server.response_started
    stream, leftover = server.detach()
    assert (stream, leftover) == (counting, b"early-frame")
    assert not server.start_next_cycle()
    await server.close()  # a detached stream is the tunnel's now: left open
    await client.send(b"more")
    assert await stream.receive_some(100) == b"more"


async def test_101_without_upgrade_request_is_refused_before_anything_is_sent(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    with pytest.raises(Error) as caught:
        await server.write_response(ResponseHeader(101, [("Upgrade", "websocket")]))
    assert (caught.value.etype, caught.value.source) == (ErrorType.H1_ERROR, ErrorSource.INTERNAL)
    assert (server.response_started, server.bytes_written) == (False, 0)


async def test_connect_is_an_upgrade_request(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n\x16\x03\x01")
    req = await server.read_request()
    assert req is not None
    assert (req.method, req.uri, req.path, server.upgrade_requested) == (
        "CONNECT",
        "example.com:443",
        "",
        True,
    )
    await server.write_response(ResponseHeader(200), b"ignored", end=True)
    assert await client.receive_until(b"\r\n\r\n") == b"HTTP/1.1 200 OK\r\n\r\n"
    _, leftover = server.detach()
    assert leftover == b"\x16\x03\x01"


async def test_plain_request_is_not_an_upgrade(codec: Codec) -> None:
    server, client, _ = server_pair(codec)
    await client.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert await server.read_request() is not None
    assert not server.upgrade_requested


# -- upstream --------------------------------------------------------------------------------------------


async def test_exchange_in_one_write_then_reuse(codec: Codec) -> None:
    conn, upstream, counting = client_pair(codec)
    await conn.write_request(request("POST", "/p", ("X-Mixed-CASE", "v")), b"hello", end=True)
    sent = b"POST /p HTTP/1.1\r\nHost: upstream\r\nX-Mixed-CASE: v\r\nContent-Length: 5\r\n\r\nhello"
    assert counting.writes == [sent]
    assert await upstream.receive_until(b"hello") == sent
    answer = b"HTTP/1.1 200 Fine\r\nX-Up-CASE: 1\r\nContent-Length: 2\r\n\r\nok"
    await upstream.send(answer)
    response = await conn.read_response()
    assert (response.status, response.reason, response.version) == (200, "Fine", "1.1")
    assert response.headers.items() == [("X-Up-CASE", "1"), ("Content-Length", "2")]
    assert not conn.reusable  # the body is not read yet
    assert await read_whole_body(conn) == b"ok"
    assert conn.response_trailers is None
    assert conn.reusable
    assert conn.start_next_cycle()

    await conn.write_request(request("GET", "/again"), end=True)
    again = b"GET /again HTTP/1.1\r\nHost: upstream\r\n\r\n"
    assert await upstream.receive_until(b"\r\n\r\n") == again
    no_content = b"HTTP/1.1 204 No Content\r\n\r\n"
    await upstream.send(no_content)
    assert (await conn.read_response()).status == 204
    assert conn.reusable  # a bodiless response completes with its head
    assert await conn.read_body() is None
    assert conn.start_next_cycle()
    assert (conn.bytes_written, conn.bytes_read) == (len(sent + again), len(answer + no_content))


async def test_chunked_request_with_trailers_is_written(codec: Codec) -> None:
    conn, _, counting = client_pair(codec)
    await conn.write_request(request("POST", "/", ("Transfer-Encoding", "chunked")), b"ab")
    await conn.write_body(b"cde")
    await conn.finish(Headers([("X-Checksum", "sum")]))
    assert counting.writes == [
        b"POST / HTTP/1.1\r\nHost: upstream\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n",
        b"3\r\ncde\r\n",
        b"0\r\nX-Checksum: sum\r\n\r\n",
    ]


async def test_chunked_response_with_trailers_is_read(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\nX-Sum: 9\r\n\r\n"
    )
    await conn.read_response()
    assert await read_whole_body(conn) == b"abcde"
    assert conn.response_trailers == Headers([("X-Sum", "9")])
    assert conn.reusable


async def test_request_body_without_framing_header_is_refused(codec: Codec) -> None:
    conn, _, _ = client_pair(codec)
    await conn.write_request(request("POST", "/"))
    with pytest.raises(Error) as caught:
        await conn.write_body(b"x")
    assert (caught.value.etype, caught.value.source) == (ErrorType.H1_ERROR, ErrorSource.INTERNAL)


async def test_informational_responses_are_collected(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    )
    response = await conn.read_response()
    assert response.status == 200
    assert [r.status for r in conn.informational] == [100, 103]
    assert conn.informational[1].headers.get("link") == "</a.css>"


async def test_informational_responses_one_by_one(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert (await conn.read_response(skip_informational=False)).status == 100
    assert (await conn.read_response(skip_informational=False)).status == 200


async def test_101_is_returned_and_detach_gives_the_tunnel_bytes(codec: Codec) -> None:
    conn, upstream, counting = client_pair(codec)
    await conn.write_request(
        request("GET", "/ws", ("Connection", "Upgrade"), ("Upgrade", "websocket")), end=True
    )
    await upstream.receive_until(b"\r\n\r\n")
    await upstream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\nserver-frame")
    response = await conn.read_response()
    assert response.status == 101
    assert conn.informational == []
    assert await conn.read_body() is None
    assert not conn.reusable
    assert conn.detach() == (counting, b"server-frame")


async def test_101_without_upgrade_request_is_invalid(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await conn.read_response()
    assert caught.value.source is ErrorSource.UPSTREAM


async def test_upstream_response_to_head_has_no_body(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request("HEAD", "/"), end=True)
    await upstream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    assert (await conn.read_response()).headers.get("content-length") == "100"
    assert await conn.read_body() is None
    assert conn.reusable


async def test_close_delimited_response_is_not_reusable(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.0 200 OK\r\n\r\nall of it")
    await upstream.close()
    response = await conn.read_response()
    assert response.version == "1.0"
    assert await read_whole_body(conn) == b"all of it"
    assert not conn.reusable
    assert not conn.start_next_cycle()


async def test_read_timeout(codec: Codec, autojump_clock: trio.testing.MockClock) -> None:
    conn, _, _ = client_pair(codec, read_timeout=5.0)
    await conn.write_request(request(), end=True)
    start = trio.current_time()
    with pytest.raises(Error) as caught:
        await conn.read_response()
    assert trio.current_time() - start == pytest.approx(5.0)
    error = caught.value
    assert (error.etype, error.source, error.retry) == (
        ErrorType.READ_TIMEDOUT,
        ErrorSource.UPSTREAM,
        RetryType.NEVER,
    )
    assert status_for(error) == 504
    assert not conn.reusable


async def test_read_timeout_applies_to_each_read(
    codec: Codec, autojump_clock: trio.testing.MockClock
) -> None:
    conn, upstream, _ = client_pair(codec, read_timeout=5.0)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n")
    await conn.read_response()

    async def trickle() -> None:
        await trio.sleep(4)
        await upstream.send(b"a")
        await trio.sleep(4)
        await upstream.send(b"b")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(trickle)
        assert await read_whole_body(conn) == b"ab"  # 8 s in total, but no single read waited 5 s
    assert conn.reusable


async def test_write_timeout(codec: Codec, autojump_clock: trio.testing.MockClock) -> None:
    ours, _theirs = trio.testing.lockstep_stream_pair()  # send_all blocks until the peer reads
    conn = codec.client(ours, write_timeout=2.0)
    with pytest.raises(Error) as caught:
        await conn.write_request(request(), end=True)
    assert (caught.value.etype, caught.value.source) == (ErrorType.WRITE_TIMEDOUT, ErrorSource.UPSTREAM)
    assert not conn.reusable


async def test_upstream_closing_mid_body_is_an_upstream_error(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    await upstream.close()
    await conn.read_response()
    assert await conn.read_body() == b"abc"
    with pytest.raises(Error) as caught:
        await conn.read_body()
    error = caught.value
    assert (error.etype, error.source, error.retry) == (
        ErrorType.CONNECTION_CLOSED,
        ErrorSource.UPSTREAM,
        RetryType.NEVER,
    )
    assert status_for(error) == 502
    assert not conn.reusable
    assert not conn.start_next_cycle()


async def test_upstream_closing_before_the_response_is_retryable_if_reused(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.close()
    with pytest.raises(Error) as caught:
        await conn.read_response()
    error = caught.value
    assert (error.etype, error.source, error.retry) == (
        ErrorType.CONNECTION_CLOSED,
        ErrorSource.UPSTREAM,
        RetryType.REUSED_ONLY,
    )
    assert error.retry_for(reused=True)
    assert not error.retry_for(reused=False)


async def test_upstream_closing_mid_head_is_not_retryable(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 200 OK\r\nContent-")
    await upstream.close()
    with pytest.raises(Error) as caught:
        await conn.read_response()
    assert (caught.value.etype, caught.value.retry) == (ErrorType.CONNECTION_CLOSED, RetryType.NEVER)


@pytest.mark.parametrize(
    ("cause", "retry"),
    [
        (ConnectionResetError(), RetryType.REUSED_ONLY),
        (ssl.SSLError("bad record mac"), RetryType.NEVER),
        (None, RetryType.NEVER),
    ],
    ids=["os-error", "tls-error", "no-cause"],
)
async def test_transport_failure_retry_follows_pingora(
    codec: Codec, cause: BaseException | None, retry: RetryType
) -> None:
    error = trio.BrokenResourceError("broken") if cause is None else broken(cause)
    conn = codec.client(BrokenStream(error))
    with pytest.raises(Error) as caught:
        await conn.write_request(request(), end=True)
    assert (caught.value.etype, caught.value.source, caught.value.retry) == (
        ErrorType.WRITE_ERROR,
        ErrorSource.UPSTREAM,
        retry,
    )
    assert not conn.reusable


async def test_read_error_after_response_bytes_is_not_retryable(codec: Codec) -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    upstream = RawPeer(theirs)

    class FailsSecondRead(CountingStream):
        reads = 0

        async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
            self.reads += 1
            if self.reads > 1:
                raise broken(ConnectionResetError())
            return await super().receive_some(max_bytes)

    conn = codec.client(FailsSecondRead(ours))
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    await conn.read_response()
    assert await conn.read_body() == b"abc"
    with pytest.raises(Error) as caught:
        await conn.read_body()
    assert (caught.value.etype, caught.value.retry) == (ErrorType.READ_ERROR, RetryType.NEVER)


async def test_invalid_response_is_upstream_protocol_error(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(b"HTTP/1.1 2xx Nope\r\n\r\n")
    with pytest.raises(ProtocolError) as caught:
        await conn.read_response()
    error = caught.value
    assert (error.etype, error.source, error.status_hint) == (
        ErrorType.INVALID_HTTP_HEADER,
        ErrorSource.UPSTREAM,
        502,
    )
    assert status_for(error) == 502
    assert not conn.reusable


async def test_a_response_with_content_length_and_chunked_is_refused(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
    )
    with pytest.raises(ProtocolError) as caught:
        await conn.read_response()
    assert (caught.value.source, caught.value.status_hint) == (ErrorSource.UPSTREAM, 502)
    assert not conn.reusable


@pytest.mark.parametrize(
    "response",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
    ],
    ids=["connection-close", "bytes-past-the-response"],
)
async def test_doubtful_responses_are_read_but_not_reused(codec: Codec, response: bytes) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request(), end=True)
    await upstream.send(response)
    await conn.read_response()
    assert await read_whole_body(conn) == b"ok"
    assert not conn.reusable


async def test_early_response_before_the_request_ends_is_not_reused(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    await conn.write_request(request("POST", "/", ("Content-Length", "10")), b"abc")
    await upstream.send(b"HTTP/1.1 413 Content Too Large\r\nContent-Length: 0\r\n\r\n")
    assert (await conn.read_response()).status == 413
    assert await conn.read_body() is None
    assert not conn.reusable


async def test_invalid_request_header_is_internal_and_nothing_is_sent(codec: Codec) -> None:
    conn, upstream, _ = client_pair(codec)
    with pytest.raises(Error) as caught:
        await conn.write_request(request("GET", "/", ("X-Bad", "a\r\nInjected: 1")), end=True)
    assert (caught.value.etype, caught.value.source) == (ErrorType.INVALID_HTTP_HEADER, ErrorSource.INTERNAL)
    with pytest.raises(Error):
        await conn.write_request(RequestHeader("GET", "/"), end=True)  # HTTP/1.1 needs a Host header
    assert conn.bytes_written == 0
    await conn.write_request(request(), end=True)
    assert await upstream.receive_until(b"\r\n\r\n") == b"GET / HTTP/1.1\r\nHost: upstream\r\n\r\n"


async def test_close_and_abort_tolerate_a_broken_stream(codec: Codec) -> None:
    conn, _, _ = client_pair(codec)
    await conn.close()
    await conn.close()
    server, _, _ = server_pair(codec)
    await server.abort()


# -- both sides together ---------------------------------------------------------------------------------


async def test_server_and_client_connections_talk_keepalive(codec: Codec) -> None:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    client = codec.client(client_stream)
    server = codec.server(server_stream)

    async def serve() -> None:
        while (req := await server.read_request()) is not None:
            body = await read_whole_body(server)
            trailers = server.request_trailers
            response = ResponseHeader(200, [("X-Path", req.path)])
            if trailers is not None:
                response.insert_header("X-Trailer", trailers.get("x-sum") or "")
            await server.write_response(response, body.upper(), end=True)
            if not server.start_next_cycle():
                break
        await server.close()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(serve)
        for path in ("/one", "/two"):
            await client.write_request(request("POST", path, ("Transfer-Encoding", "chunked")), b"abc")
            await client.write_body(b"def")
            await client.finish(Headers([("X-Sum", path)]))
            response = await client.read_response()
            assert (response.headers.get("x-path"), response.headers.get("x-trailer")) == (path, path)
            assert await read_whole_body(client) == b"ABCDEF"
            assert client.start_next_cycle()
        await client.close()


async def test_connections_reading_heads_in_turns_share_nothing_of_them(codec: Codec) -> None:
    # The httptools codec reads fields with one parser per thread: heads that arrive in pieces on two
    # connections at once are each read whole, as their own.
    first, one, _ = server_pair(codec)
    second, two, _ = server_pair(codec)
    await one.send(b"GET /one HTTP/1.1\r\nHost: a\r\nX-One: ")
    await two.send(b"POST /two HTTP/1.1\r\nHost: b\r\nContent-Length: 2\r\n\r\nhi")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(one.send, b"1\r\n\r\n")
        request_one = await first.read_request()
    request_two = await second.read_request()
    assert request_one is not None and request_two is not None
    assert list(request_one.headers) == [("Host", "a"), ("X-One", "1")]
    assert list(request_two.headers) == [("Host", "b"), ("Content-Length", "2")]
    assert await read_whole_body(second) == b"hi"


async def test_heads_with_the_same_field_block_are_each_their_own(codec: Codec) -> None:
    # The httptools codec remembers blocks it split lately: a head changed by the proxy (a field set, one
    # removed) leaves the next head of the same block as it came.
    block = b"Host: a\r\nX-Kept: 1\r\nConnection: keep-alive\r\n\r\n"
    server, peer, _ = server_pair(codec)
    await peer.send(b"GET /one HTTP/1.1\r\n" + block + b"GET /two HTTP/1.1\r\n" + block)
    first = await server.read_request()
    assert first is not None
    first.headers.set("X-Kept", "changed")
    first.remove_header("connection")
    first.insert_header("X-Added", "2")
    await server.write_response(ResponseHeader(200, [("Content-Length", "0")]), end=True)
    assert server.start_next_cycle()
    second = await server.read_request()
    assert second is not None and second.uri == "/two"
    assert list(second.headers) == [("Host", "a"), ("X-Kept", "1"), ("Connection", "keep-alive")]
    assert "x-added" not in second.headers

    conn, origin, _ = client_pair(codec)
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-Origin: o\r\n\r\nhi"
    responses = []
    for _ in range(2):
        await conn.write_request(request(), end=True)
        await origin.send(answer)
        response = await conn.read_response()
        assert await read_whole_body(conn) == b"hi"
        assert conn.start_next_cycle()
        responses.append(response)
        response.headers.set("X-Origin", "changed")
        response.insert_header("Via", "1.1 proxy")
    assert responses[1].headers.get("x-origin") == "changed"
    assert [name for name, _ in responses[1].headers] == ["Content-Length", "X-Origin", "Via"]


async def test_long_and_many_field_blocks_are_read_alike() -> None:
    # Past the memo's bounds (blocks too long to keep, more blocks than it holds), heads read as before.
    if "httptools" not in available_codecs():
        pytest.skip("httptools is not installed")
    server, peer, _ = server_pair(select_codec("httptools"))
    long_value = "v" * fields_module.KNOWN_BLOCK_BYTES
    sent = [("X-N", str(n)) for n in range(fields_module.KNOWN_BLOCKS + 5)] + [("X-Long", long_value)]
    for name, value in sent:
        await peer.send(f"GET / HTTP/1.1\r\nHost: a\r\n{name}: {value}\r\n\r\n".encode())
        got = await server.read_request()
        assert got is not None and list(got.headers) == [("Host", "a"), (name, value)]
        await server.write_response(ResponseHeader(204, []), end=True)
        assert server.start_next_cycle()
        assert len(fields_module._KNOWN_REQUEST) <= fields_module.KNOWN_BLOCKS
    assert all(long_value.encode() not in block for block in fields_module._KNOWN_REQUEST)
