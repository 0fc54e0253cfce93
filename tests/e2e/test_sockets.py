"""SocketStream on real loopback sockets: data both ways, partial sends, half-close, errors, closing, busy.

Real TCP connections on 127.0.0.1 port 0 (and a Unix socketpair), because the stream is the I/O boundary: the
point is what the kernel answers. "Blocked" is observed with `trio.testing.wait_all_tasks_blocked`, never with
a sleep. The pool and listener tests check that the helpers built on trio's stream also handle ours.
"""

from __future__ import annotations

import hashlib
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial

import pytest
import trio
import trio.testing
import trustme

from actorproxy.proxy._deadlines import Deadlines
from actorproxy.proxy._listener import _close_now
from actorproxy.proxy._pool import ConnectionPool, stream_fileno
from actorproxy.proxy._sockets import YIELD_EVERY, SocketStream, from_trio_stream

# Small kernel buffers make an 8 MiB send_all block many times (the kernel may double and round these).
SMALL_BUFFER = 16384


@pytest.fixture
async def pair() -> AsyncIterator[tuple[SocketStream, SocketStream]]:
    """(client, server): both ends of one TCP connection on loopback, as SocketStreams."""
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        port = listener.socket.getsockname()[1]
        client = from_trio_stream(await trio.open_tcp_stream("127.0.0.1", port))
        server = from_trio_stream(await listener.accept())
    yield client, server
    await client.aclose()
    await server.aclose()


def _shrink_buffers(sender: SocketStream, receiver: SocketStream) -> None:
    sender.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, SMALL_BUFFER)
    receiver.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, SMALL_BUFFER)


def _reset(stream: SocketStream) -> None:
    """Close `stream` with an RST instead of a FIN (SO_LINGER with a zero timeout)."""
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    stream.close_nowait()


async def _receive_exactly(stream: trio.abc.ReceiveStream, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = await stream.receive_some(size - len(data))
        assert chunk, "EOF too early"
        data += chunk
    return bytes(data)


# -- data ----------------------------------------------------------------------------------------------------


async def test_bytes_flow_both_ways(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"ping")
    assert await _receive_exactly(server, 4) == b"ping"
    await server.send_all(bytearray(b"pong"))
    assert await _receive_exactly(client, 4) == b"pong"
    await client.send_all(memoryview(b"xxview")[2:])
    assert await _receive_exactly(server, 4) == b"view"
    await client.send_all(b"")  # nothing to send is not an error
    assert client.socket.getpeername() == server.socket.getsockname()
    assert client.fileno() == client.socket.fileno() >= 0


async def test_receive_some_returns_at_most_max_bytes(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"abcdef")
    assert await _receive_exactly(server, 2) == b"ab"
    assert await _receive_exactly(server, 4) == b"cdef"
    with pytest.raises(ValueError, match="max_bytes"):
        await server.receive_some(0)


async def test_a_large_send_all_to_a_slow_reader_arrives_whole(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    _shrink_buffers(client, server)
    payload = bytes(range(256)) * (8 * 1024 * 1024 // 256)  # 8 MiB
    sent = trio.Event()

    async def send() -> None:
        await client.send_all(payload)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        assert not sent.is_set()  # the buffers took part of it: send_all is parked until there is room
        received = hashlib.sha256()
        size = 0
        while size < len(payload):
            chunk = await server.receive_some(4096)  # a slow reader: small reads
            assert chunk
            received.update(chunk)
            size += len(chunk)
    assert sent.is_set()
    assert size == len(payload)
    assert received.digest() == hashlib.sha256(payload).digest()


async def test_a_unix_socketpair_and_tls_over_it() -> None:
    ours, theirs = trio.socket.socketpair()
    left, right = from_trio_stream(trio.SocketStream(ours)), from_trio_stream(trio.SocketStream(theirs))
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("upstream.example").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    client = trio.SSLStream(left, client_context, server_hostname="upstream.example")
    server = trio.SSLStream(right, server_context, server_side=True)
    async with client, server, trio.open_nursery() as nursery:
        nursery.start_soon(client.do_handshake)
        await server.do_handshake()
        await client.send_all(b"over TLS" * 10000)
        assert await _receive_exactly(server, 80000) == b"over TLS" * 10000
        await server.send_all(b"back")
        assert await _receive_exactly(client, 4) == b"back"


# -- half-close ----------------------------------------------------------------------------------------------


async def test_send_eof_half_closes(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"last words")
    await client.send_eof()
    await client.send_eof()  # idempotent
    assert await _receive_exactly(server, 10) == b"last words"
    assert await server.receive_some() == b""
    await server.send_all(b"still heard")  # the other direction stays open
    assert await _receive_exactly(client, 11) == b"still heard"
    with pytest.raises(trio.ClosedResourceError, match="EOF"):
        await client.send_all(b"more")


# -- errors --------------------------------------------------------------------------------------------------


async def test_a_reset_is_broken_resource_from_the_os_error(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    _reset(server)
    with pytest.raises(trio.BrokenResourceError) as caught:
        await client.receive_some()
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    with pytest.raises(trio.BrokenResourceError) as caught:
        await client.send_all(b"into the void")
    assert isinstance(caught.value.__cause__, OSError)  # EPIPE now that the reset has been read


async def test_sending_to_a_reset_peer_is_broken_resource(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    _reset(server)
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BrokenResourceError) as caught:
        await client.send_all(b"x")
    assert isinstance(caught.value.__cause__, ConnectionResetError | BrokenPipeError)


# -- closing -------------------------------------------------------------------------------------------------


async def test_aclose_is_idempotent_and_later_use_is_closed_resource(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    await client.aclose()
    await client.aclose()
    assert client.fileno() == -1
    operations: list[Callable[[], Awaitable[object]]] = [
        client.receive_some,
        partial(client.send_all, b"x"),
        client.send_eof,
        client.wait_send_all_might_not_block,
    ]
    for operation in operations:
        with pytest.raises(trio.ClosedResourceError):
            await operation()
    assert await server.receive_some() == b""  # the peer saw a clean close


async def test_aclose_closes_even_when_cancelled(pair: tuple[SocketStream, SocketStream]) -> None:
    client, _server = pair
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.aclose()
    assert scope.cancelled_caught  # aclose always checkpoints
    assert client.fileno() == -1


async def test_a_socket_closed_under_the_stream_is_closed_resource(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, _server = pair
    client.socket.close()  # as a pool or listener closing the descriptor directly would
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some()
    with pytest.raises(trio.ClosedResourceError):
        await client.send_all(b"x")


async def test_aclose_wakes_a_blocked_receiver(pair: tuple[SocketStream, SocketStream]) -> None:
    client, _server = pair
    errors: list[BaseException] = []

    async def receive() -> None:
        try:
            await client.receive_some()
        except trio.ClosedResourceError as exc:
            errors.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await trio.testing.wait_all_tasks_blocked()
        await client.aclose()
    assert len(errors) == 1


async def test_aclose_wakes_a_blocked_sender(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    _shrink_buffers(client, server)

    async def send() -> None:
        with pytest.raises(trio.ClosedResourceError):
            await client.send_all(b"x" * (8 * 1024 * 1024))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send)
        await trio.testing.wait_all_tasks_blocked()
        client.close_nowait()


# -- conflicts -----------------------------------------------------------------------------------------------


async def test_concurrent_receives_are_busy_resource(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await client.receive_some()
        await server.send_all(b"for the first receiver")
    await server.send_all(b"and the next")  # the flag is cleared again
    assert await _receive_exactly(client, 12) == b"and the next"


async def test_concurrent_sends_are_busy_resource(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    _shrink_buffers(client, server)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"x" * (8 * 1024 * 1024))
        await trio.testing.wait_all_tasks_blocked()
        operations: list[Callable[[], Awaitable[object]]] = [
            partial(client.send_all, b"y"),
            client.wait_send_all_might_not_block,
            client.send_eof,
        ]
        for operation in operations:
            with pytest.raises(trio.BusyResourceError):
                await operation()
        nursery.cancel_scope.cancel()
    await client.send_eof()  # the sender was cancelled while waiting: the flag is cleared


# -- checkpoints ---------------------------------------------------------------------------------------------


async def test_a_call_that_does_not_wait_does_not_checkpoint(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"ready")
    await trio.testing.wait_all_tasks_blocked()  # let the bytes cross loopback
    with trio.CancelScope() as scope:
        scope.cancel()
        await client.send_all(b"more")
        data = await server.receive_some()
    assert not scope.cancelled_caught  # no checkpoint: a cancellation is not noticed
    assert data.startswith(b"ready")


async def test_a_receive_that_waits_is_cancellable_and_loses_nothing(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.receive_some)
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert nursery.cancel_scope.cancelled_caught
    await client.send_all(b"after")
    assert await _receive_exactly(server, 5) == b"after"


async def test_a_run_of_calls_that_never_wait_still_yields(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    payload = b"z" * YIELD_EVERY * 2
    await client.send_all(payload)
    await trio.testing.wait_all_tasks_blocked()
    received = bytearray()
    with trio.CancelScope() as scope:
        scope.cancel()
        for _ in range(YIELD_EVERY * 2):
            received += await server.receive_some(1)
    assert scope.cancelled_caught
    assert len(received) == YIELD_EVERY  # the yield comes before the syscall: no byte read and dropped
    received += await _receive_exactly(server, len(payload) - len(received))
    assert bytes(received) == payload


async def test_the_nowait_twins_never_wait_and_say_so(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    with pytest.raises(trio.WouldBlock):
        server.receive_some_nowait()
    assert client.send_some_nowait(b"ping") == 4
    assert client.send_some_nowait(b"") == 0
    await trio.testing.wait_all_tasks_blocked()
    assert server.receive_some_nowait(2) == b"pi"
    assert server.receive_some_nowait() == b"ng"


async def test_a_receive_after_a_nowait_that_found_nothing_waits_and_gets_the_bytes(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    with pytest.raises(trio.WouldBlock):
        server.receive_some_nowait()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"late")
        assert await _receive_exactly(server, 4) == b"late"


async def test_a_read_that_waits_for_readability_first(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"there")
    await trio.testing.wait_all_tasks_blocked()
    with trio.CancelScope() as scope:
        scope.cancel()
        with pytest.raises(trio.Cancelled):
            await server.receive_some_within(None, None, readable_first=True)  # a checkpoint, data or not
    assert await server.receive_some_within(None, None, readable_first=True) == b"there"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"later")
        assert await server.receive_some_within(None, None, readable_first=True) == b"later"


async def test_wait_readable_waits_for_bytes_then_a_read_does_not_wait(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.wait_readable)
        await trio.testing.wait_all_tasks_blocked()
        await client.send_all(b"now")
    assert server.receive_some_nowait() == b"now"
    server.close_nowait()
    with pytest.raises(trio.ClosedResourceError):
        await server.wait_readable()


async def test_a_read_within_a_timeout_without_deadlines_takes_a_cancel_scope(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    _, server = pair
    start = trio.current_time()
    with pytest.raises(trio.TooSlowError):
        await server.receive_some_within(None, 0.05)
    assert trio.current_time() - start >= 0.05


async def test_a_read_armed_in_deadlines_ends_when_they_expire_it(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    pokes: list[float] = []
    deadlines = Deadlines()
    deadlines.attach(lambda: pokes.append(deadlines.wake_at))
    server.deadlines = deadlines
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, b"in time")
        assert await server.receive_some_within(None, 60.0) == b"in time"
    assert len(deadlines) == 0  # disarmed once the read ended
    assert len(pokes) == 1  # the first deadline is earlier than any look the actor had planned
    outcome: list[BaseException] = []

    async def read() -> None:
        try:
            await server.receive_some_within(None, 60.0)
        except trio.TooSlowError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        await trio.testing.wait_all_tasks_blocked()
        assert deadlines.expire(trio.current_time()) == 0  # not due yet
        assert deadlines.expire(deadlines.next_deadline()) == 1
    assert [type(exc) for exc in outcome] == [trio.TooSlowError]
    assert len(deadlines) == 0


async def test_deadlines_arm_nothing_unwatched_and_poke_only_for_an_earlier_look() -> None:
    a, b = socket.socketpair()
    with a, b:
        deadlines = Deadlines()
        assert not deadlines.watched and deadlines.arm(a, 1.0) is None
        pokes: list[float] = []
        deadlines.attach(lambda: pokes.append(deadlines.wake_at))
        first = deadlines.arm(a, 10.0)
        later = deadlines.arm(b, 10.0)
        sooner = deadlines.arm(b, 1.0)
        assert first is not None and later is not None and sooner is not None
        assert pokes == [first.deadline, sooner.deadline]  # `later` is after the look `first` planned
        assert deadlines.next_deadline() == sooner.deadline
        deadlines.disarm(sooner)
        deadlines.disarm(first)
        assert (len(deadlines), deadlines.next_deadline()) == (1, later.deadline)
        deadlines.detach()
        assert deadlines.arm(a, 1.0) is None


async def test_send_some_nowait_takes_what_fits_and_send_all_sends_the_rest(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    _shrink_buffers(client, server)
    payload = bytes(range(256)) * 8192  # 2 MiB: more than both buffers hold
    sent = client.send_some_nowait(payload)
    assert 0 < sent < len(payload)  # what the buffers took
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, payload[sent:])
        assert await _receive_exactly(server, len(payload)) == payload


async def test_the_nowait_twins_refuse_when_a_yield_is_due(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    await client.send_all(b"x" * (YIELD_EVERY + 2))
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(YIELD_EVERY):
        assert server.receive_some_nowait(1) == b"x"
    with pytest.raises(trio.WouldBlock):
        server.receive_some_nowait(1)  # the next operation must yield: the waiting path does it
    assert server.send_some_nowait(b"y") == 0
    with trio.CancelScope() as scope:
        scope.cancel()
        await server.receive_some(1)
    assert scope.cancelled_caught  # the yield came first, before the syscall
    assert await server.receive_some(2) == b"xx"


async def test_the_nowait_twins_report_errors_as_the_waiting_calls_do(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    await server.send_eof()
    with pytest.raises(trio.ClosedResourceError):
        server.send_some_nowait(b"after eof")
    _reset(client)
    await trio.testing.wait_all_tasks_blocked()
    with pytest.raises(trio.BrokenResourceError) as caught:
        server.receive_some_nowait()
    assert isinstance(caught.value.__cause__, ConnectionResetError)
    server.close_nowait()
    with pytest.raises(trio.ClosedResourceError):
        server.receive_some_nowait()


# -- from trio, and the helpers that handle both stream types ------------------------------------------------


async def test_from_trio_stream_takes_over_the_descriptor_with_nodelay() -> None:
    [listener] = await trio.open_tcp_listeners(0, host="127.0.0.1")
    async with listener:
        trio_stream = await trio.open_tcp_stream("127.0.0.1", listener.socket.getsockname()[1])
        fd = trio_stream.socket.fileno()
        stream = from_trio_stream(trio_stream)
        async with stream, await listener.accept():
            assert stream.fileno() == fd
            assert trio_stream.socket.fileno() == -1  # detached: closing it later cannot close ours
            assert stream.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            assert stream.socket.gettimeout() == 0.0  # non-blocking


async def test_the_pool_sees_a_dead_socket_stream(pair: tuple[SocketStream, SocketStream]) -> None:
    client, server = pair
    pool = ConnectionPool()
    assert stream_fileno(client) == client.fileno()
    assert pool.checkin("peer", "alive", client)
    taken = pool.checkout("peer")
    assert taken is not None and taken.conn == "alive"
    assert pool.checkin("peer", "dead", client)
    await server.send_eof()
    await trio.testing.wait_all_tasks_blocked()
    assert pool.checkout("peer") is None
    assert pool.statistics().dead == 1
    assert client.fileno() == -1  # closed when found dead
    with pytest.raises(trio.ClosedResourceError):
        await client.receive_some()


async def test_the_listener_closes_both_stream_types_now() -> None:
    ours, theirs = trio.socket.socketpair()
    stream = from_trio_stream(trio.SocketStream(ours))
    tls = trio.SSLStream(stream, ssl.create_default_context(), server_hostname="x.example")
    _close_now(tls)
    assert stream.fileno() == -1
    plain = trio.SocketStream(theirs)
    _close_now(plain)
    assert plain.socket.fileno() == -1


async def test_a_checkpoint_through_the_stream_starts_the_count_of_calls_that_did_not_wait_again(
    pair: tuple[SocketStream, SocketStream],
) -> None:
    client, server = pair
    await client.send_all(b"z" * YIELD_EVERY * 2)
    await trio.testing.wait_all_tasks_blocked()
    for _ in range(YIELD_EVERY - 1):
        assert server.receive_some_nowait(1) == b"z"
    await server.checkpoint()
    for _ in range(YIELD_EVERY):
        assert server.receive_some_nowait(1) == b"z"  # a fresh run: no yield due yet
    with pytest.raises(trio.WouldBlock):
        server.receive_some_nowait(1)
