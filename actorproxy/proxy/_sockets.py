"""`SocketStream`: a trio stream over a non-blocking stdlib socket that tries each syscall before waiting.

Rules:
- Every operation tries its syscall first and parks in `trio.lowlevel.wait_readable` / `wait_writable` only
  when the kernel says it would block. Letting trio yield on every send/recv, as `trio.SocketStream` does,
  costs 2.5-4.7 us per call (docs/architecture.md, "The request path").
- So, unlike trio's streams, a call that does not wait does not checkpoint: it neither yields nor notices a
  cancellation. The caller owns fairness: `ConnectionActor` checkpoints once per request. As a backstop for
  loops that never find a socket empty or full (a large body or a tunnel between two fast peers), every
  `YIELD_EVERY`-th operation in a row that did not wait yields first, before its syscall, so a cancellation
  there loses no data. A caller's own checkpoint through the stream (`checkpoint`) starts that count again:
  else a connection whose requests never wait (two operations each) would also yield, and enter a
  timeout's scope, every eighth request.
- `receive_some_nowait` / `send_some_nowait` are the twins that never wait: the next bytes, or
  `trio.WouldBlock`; as many bytes as the socket takes now. A caller that puts a deadline on its waits (the
  codecs' per-read timeouts, a connection's idle timeout) calls them first and enters a cancel scope only
  when it must wait: a `trio.CancelScope` with a deadline costs about 5 µs to enter and leave, and most
  reads and writes of a loaded proxy do not wait. They count towards `YIELD_EVERY` and refuse (WouldBlock,
  0) when a yield is due, so the caller's waiting path yields. A `receive_some` right after a
  `receive_some_nowait` found nothing waits for readability first, without trying the same syscall again,
  and so does `receive_some_within(..., readable_first=True)`, for a read that cannot find data yet (a
  syscall costs a few µs here, most of it the kernel's).
- `receive_some_within` bounds a read's wait, with a deadline armed in the service's `Deadlines` when its
  actor watches them (no cancel scope per read, see `_deadlines`), else with a cancel scope.
- `aclose` always checkpoints, and closes even when cancelled (trio's contract). It wakes a task waiting on
  the socket with `trio.ClosedResourceError` (`notify_closing` first, then close).
- Errors are translated here, once, as trio's `SocketStream` does: an OSError is `trio.BrokenResourceError`
  (raised from it), use after a close is `trio.ClosedResourceError`. Two tasks receiving (or sending) at
  once is `trio.BusyResourceError`: one boolean per direction.
- TLS stays `trio.SSLStream`, layered over this stream.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Awaitable, Callable
from typing import overload

import trio

from ._deadlines import Deadlines

__all__ = ["DEFAULT_RECEIVE_SIZE", "YIELD_EVERY", "SocketStream", "from_trio_stream"]

# 64 KiB read buffers (docs/architecture.md, "The request path"); trio.SocketStream's default too.
DEFAULT_RECEIVE_SIZE = 65536
# Operations in a row that complete without waiting before one yields anyway: with 64 KiB chunks about
# 1 MiB between yields. A request of a few small reads and writes waits for its peer long before that.
# Measured with benchmarks/proxy.py, 1 MiB bodies, 10 s: 706 req/s yielding every 2, 865 every 4, 1,261
# every 16 (trio.SocketStream, every operation: 638); longer runs between yields delay other connections.
YIELD_EVERY = 16
# trio's TCP defaults (trio.SocketStream): no Nagle delay; at most 16 KiB unsent in the kernel before the
# socket stops being writable (trio issue #72).
TCP_NOTSENT_LOWAT_BYTES = 2**14

# A socket closed under us: what trio.SocketStream reports as ClosedResourceError too.
_CLOSED_ERRNOS = frozenset({errno.EBADF, errno.ENOTSOCK})
_wait_readable = trio.lowlevel.wait_readable
_wait_writable = trio.lowlevel.wait_writable


def _translate(exc: OSError) -> trio.BrokenResourceError | trio.ClosedResourceError:
    if exc.errno in _CLOSED_ERRNOS:
        return trio.ClosedResourceError("this socket was already closed")
    return trio.BrokenResourceError(f"socket connection broken: {exc}")


class SocketStream(trio.abc.HalfCloseableStream):
    """A `trio.abc.HalfCloseableStream` over a connected stdlib `socket.socket` (set non-blocking here).

    Args:
        sock: a connected SOCK_STREAM socket (TCP or Unix); the stream owns it from now on.
        configure: set trio's TCP defaults (TCP_NODELAY, TCP_NOTSENT_LOWAT); False when they are set already.

    Attributes:
        socket: the stdlib socket, for `getpeername`, `getsockname`, `fileno`; do not read or write it.
    """

    # Slots: no instance dict for every connection, idle ones included.
    __slots__ = (
        "_closed",
        "_dry",
        "_fd",
        "_receiving",
        "_sending",
        "_shut_wr",
        "_unyielded",
        "deadlines",
        "on_close",
        "socket",
    )

    def __init__(self, sock: socket.socket, *, configure: bool = True) -> None:
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"SocketStream needs a SOCK_STREAM socket, got {sock.type!r}")
        sock.setblocking(False)
        self.socket = sock
        self._fd = sock.fileno()
        self._closed = False
        self._shut_wr = False
        self._receiving = False
        self._sending = False
        # Operations in a row that did not wait (see YIELD_EVERY).
        self._unyielded = 0
        # The last receive_some_nowait found nothing: the next receive_some waits before it tries.
        self._dry = False
        #: Called once when the stream closes (a listener's connection slot is given back).
        self.on_close: Callable[[], object] | None = None
        #: Where `receive_some_within` arms its timeouts when an actor watches them (the service's);
        #: None: a cancel scope per read.
        self.deadlines: Deadlines | None = None
        if configure and sock.family in (socket.AF_INET, socket.AF_INET6):
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)
                if hasattr(socket, "TCP_NOTSENT_LOWAT"):
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, TCP_NOTSENT_LOWAT_BYTES)
            except OSError:
                pass  # the defaults are an optimisation; a socket that refuses them still works (as in trio)

    def __repr__(self) -> str:
        state = "closed" if self._closed else "half-closed" if self._shut_wr else "open"
        return f"<SocketStream fd={self._fd} {state}>"

    def fileno(self) -> int:
        """The socket's file descriptor; -1 once it is closed."""
        return self.socket.fileno()

    # -- receiving -------------------------------------------------------------------------------------------

    def _may_receive(self, max_bytes: int | None) -> int:
        """`max_bytes`, its default filled in, once a receive may start."""
        if max_bytes is None:
            max_bytes = DEFAULT_RECEIVE_SIZE
        elif max_bytes < 1:
            raise ValueError("max_bytes must be >= 1")
        if self._receiving:
            raise trio.BusyResourceError("another task is currently receiving data on this SocketStream")
        if self._closed:
            raise trio.ClosedResourceError("this SocketStream was closed")
        return max_bytes

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to `max_bytes` (default `DEFAULT_RECEIVE_SIZE`) bytes; b"" at EOF.

        Checkpoints only when it waits for data (and every `YIELD_EVERY`-th time in a row it does not).

        Raises:
            trio.BusyResourceError: another task is receiving on this stream.
            trio.ClosedResourceError: the stream was closed, before or while waiting.
            trio.BrokenResourceError: the connection failed (reset, ...), raised from the OSError.
        """
        max_bytes = self._may_receive(max_bytes)
        self._receiving = True
        try:
            if self._unyielded >= YIELD_EVERY:
                self._unyielded = 0
                await trio.lowlevel.checkpoint()  # before the syscall: a cancellation here loses nothing
            recv = self.socket.recv
            try:
                if self._dry:
                    self._dry = False
                    raise BlockingIOError  # the socket was found empty just before: wait first
                data = recv(max_bytes)
            except BlockingIOError:
                while True:
                    await _wait_readable(self._fd)
                    try:
                        data = recv(max_bytes)
                    except BlockingIOError:
                        continue  # woken without data (a spurious wake-up): wait again
                    self._unyielded = 0
                    return data
            self._unyielded += 1
            return data
        except OSError as exc:
            raise _translate(exc) from exc
        finally:
            self._receiving = False

    async def checkpoint(self) -> None:
        """A checkpoint of the caller's own (one per request, say), after which the run of operations that
        did not wait counts from zero again: the `YIELD_EVERY` backstop is for loops that take none."""
        await trio.lowlevel.checkpoint()
        self._unyielded = 0

    def wait_readable(self) -> Awaitable[None]:
        """Wait until the socket has bytes (or an EOF, or an error) to read (`await stream.wait_readable()`).

        For a caller that then reads without waiting (`receive_some_nowait`), so that nothing of its
        reading sits on the stack while it waits: an idle keep-alive connection. A plain function that
        returns trio's wait, so no frame of this stream's sits there either (each costs ~250 bytes of an
        idle connection). It does not mark the stream as receiving.

        Raises:
            trio.BusyResourceError: another task is receiving on this stream.
            trio.ClosedResourceError: the stream was closed, before or while waiting (or the service's
                deadlines ended the wait, see `_deadlines`).
        """
        self._may_receive(1)
        self._dry = False
        self._unyielded = 0  # the wait is a yield: the run of operations that did not wait starts again
        return _wait_readable(self._fd)

    async def receive_some_within(
        self, max_bytes: int | None, timeout: float | None, *, readable_first: bool = False
    ) -> bytes:
        """`receive_some`, waiting at most `timeout` seconds (None: no limit).

        With `readable_first` it waits for readability before its first try: for a read that cannot find
        data yet (a try just found none), so the syscall that would find nothing is not made again.
        The timeout is armed in `deadlines` when an actor watches them (see `_deadlines`), else it is a
        cancel scope.

        Raises:
            trio.TooSlowError: nothing came within `timeout` (the stream is then fit only to be closed).
            trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError: as `receive_some`.
        """
        if readable_first:
            self._dry = True
        if timeout is None:
            return await self.receive_some(max_bytes)
        deadlines = self.deadlines
        armed = None if deadlines is None else deadlines.arm(self.socket, timeout)
        if deadlines is None or armed is None:
            with trio.move_on_after(timeout):
                return await self.receive_some(max_bytes)
            raise trio.TooSlowError
        try:
            while True:
                if not self._dry:
                    try:
                        return self.receive_some_nowait(max_bytes)
                    except trio.WouldBlock:
                        pass  # empty (or a yield is due, which the wait makes)
                # Ended once: every later wait would be too (as in a cancelled scope), even one that missed
                # the end because its task was running when the deadline passed.
                if armed.expired:
                    raise trio.TooSlowError
                try:
                    await self.wait_readable()
                except trio.ClosedResourceError:
                    if armed.expired:
                        raise trio.TooSlowError from None
                    raise
        finally:
            deadlines.disarm(armed)

    def receive_some_nowait(self, max_bytes: int | None = None) -> bytes:
        """Up to `max_bytes` bytes if the socket has any now (b"" at EOF); never waits or checkpoints.

        Raises:
            trio.WouldBlock: nothing to read now, or a yield is due (`YIELD_EVERY`): `receive_some` waits.
            trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError: as `receive_some`.
        """
        if max_bytes is None or max_bytes < 1 or self._receiving or self._closed:
            max_bytes = self._may_receive(max_bytes)  # the default, or what is wrong (a call only then)
        if self._unyielded >= YIELD_EVERY:
            raise trio.WouldBlock
        try:
            data = self.socket.recv(max_bytes)
        except BlockingIOError:
            self._dry = True
            raise trio.WouldBlock from None
        except OSError as exc:
            raise _translate(exc) from exc
        self._dry = False
        self._unyielded += 1
        return data

    # -- sending ---------------------------------------------------------------------------------------------

    def _may_send(self) -> None:
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this SocketStream")
        if self._closed:
            raise trio.ClosedResourceError("this SocketStream was closed")
        if self._shut_wr:
            raise trio.ClosedResourceError("can't send data after sending EOF")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send all of `data`, waiting for room in the socket buffer only when it is full.

        Checkpoints only when it waits (and every `YIELD_EVERY`-th time in a row it does not). If
        cancelled while waiting, part of `data` may have been sent: the stream is then unusable, as with
        any trio stream.

        Raises:
            trio.BusyResourceError: another task is sending on this stream.
            trio.ClosedResourceError: the stream was closed (before or while waiting), or `send_eof` was
                called.
            trio.BrokenResourceError: the connection failed (reset, EPIPE, ...), raised from the OSError.
        """
        self._may_send()
        self._sending = True
        try:
            if self._unyielded >= YIELD_EVERY:
                self._unyielded = 0
                await trio.lowlevel.checkpoint()  # before the syscall: nothing is half sent if cancelled here
            total = data.nbytes if isinstance(data, memoryview) else len(data)
            if not total:
                return
            send = self.socket.send
            try:
                sent = send(data)
            except BlockingIOError:
                sent = 0
            if sent == total:
                self._unyielded += 1
                return
            with memoryview(data) as view, view.cast("B") as octets:
                while sent < total:
                    await _wait_writable(self._fd)
                    try:
                        with octets[sent:] as remaining:
                            sent += send(remaining)
                    except BlockingIOError:
                        pass  # woken without room (a spurious wake-up): wait again
            self._unyielded = 0
        except OSError as exc:
            raise _translate(exc) from exc
        finally:
            self._sending = False

    def send_some_nowait(self, data: bytes | bytearray | memoryview) -> int:
        """Send what the socket buffer takes of `data` now; return how many bytes. Never waits or
        checkpoints; 0 when the buffer is full or a yield is due (`YIELD_EVERY`): `send_all` sends the rest.

        Raises:
            trio.BusyResourceError, trio.ClosedResourceError, trio.BrokenResourceError: as `send_all`.
        """
        if self._sending or self._closed or self._shut_wr:
            self._may_send()  # raises what is wrong (a call only then)
        if self._unyielded >= YIELD_EVERY or not data:
            return 0
        try:
            sent: int = self.socket.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise _translate(exc) from exc
        self._unyielded += 1
        return sent

    async def wait_send_all_might_not_block(self) -> None:
        """Wait until the socket is writable (always a checkpoint)."""
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this SocketStream")
        if self._closed:
            raise trio.ClosedResourceError("this SocketStream was closed")
        self._sending = True
        try:
            await _wait_writable(self._fd)
        except OSError as exc:
            raise _translate(exc) from exc
        finally:
            self._sending = False

    async def send_eof(self) -> None:
        """Shut down the sending side (FIN); receiving goes on. Idempotent; does not checkpoint."""
        if self._sending:
            raise trio.BusyResourceError("another task is currently sending data on this SocketStream")
        if self._closed:
            raise trio.ClosedResourceError("this SocketStream was closed")
        if self._shut_wr:
            return
        self._shut_wr = True
        try:
            self.socket.shutdown(socket.SHUT_WR)
        except OSError as exc:
            raise _translate(exc) from exc

    # -- closing ---------------------------------------------------------------------------------------------

    def close_nowait(self) -> None:
        """Close the socket now, synchronously (`aclose` without its checkpoint); idempotent.

        A task waiting to receive or send on the stream is woken with `trio.ClosedResourceError`.
        """
        if self._closed:
            return
        self._closed = True
        sock = self.socket
        if sock.fileno() != -1:
            # notify_closing before close, with no checkpoint in between (trio.lowlevel.notify_closing).
            trio.lowlevel.notify_closing(sock)
        sock.close()
        on_close, self.on_close = self.on_close, None
        if on_close is not None:
            on_close()

    async def aclose(self) -> None:
        """Close the socket (see `close_nowait`), then checkpoint; idempotent."""
        self.close_nowait()
        await trio.lowlevel.checkpoint()

    # -- socket options --------------------------------------------------------------------------------------

    def setsockopt(self, level: int, option: int, value: int | bytes) -> None:
        """Set an option on the socket (`socket.socket.setsockopt`)."""
        self.socket.setsockopt(level, option, value)

    @overload
    def getsockopt(self, level: int, option: int) -> int: ...

    @overload
    def getsockopt(self, level: int, option: int, buffersize: int) -> bytes: ...

    def getsockopt(self, level: int, option: int, buffersize: int = 0) -> int | bytes:
        """Read an option of the socket (`socket.socket.getsockopt`)."""
        if buffersize == 0:
            return self.socket.getsockopt(level, option)
        return self.socket.getsockopt(level, option, buffersize)


def from_trio_stream(stream: trio.SocketStream) -> SocketStream:
    """Move `stream`'s connected socket into a `SocketStream`; `stream` is left closed.

    The descriptor keeps the options trio set on it (TCP_NODELAY, TCP_NOTSENT_LOWAT) and any set since.
    """
    trio_socket = stream.socket
    family, kind, proto = trio_socket.family, trio_socket.type, trio_socket.proto
    fd = trio_socket.detach()
    try:
        # Family, type and protocol given: socket() would otherwise ask the kernel for each.
        sock = socket.socket(family, kind, proto, fd)
    except BaseException:
        socket.close(fd)
        raise
    return SocketStream(sock, configure=False)
