"""Handing listening sockets from a running server to its successor (Pingora's graceful upgrade).

Rules:
- The new process (started with `-u/--upgrade`) calls `receive_listen_fds(upgrade_sock)`: it listens on the
  Unix socket `upgrade_sock` and waits for the old process. The old process, on SIGQUIT, calls
  `send_listen_fds(upgrade_sock, fds)`: it connects (retrying while the new process is not there yet), sends
  every listening socket with SCM_RIGHTS in one message, keyed by bind address, and waits for the new
  process to acknowledge before it stops accepting. Between the two, both processes hold the same kernel
  sockets: connections wait in the shared backlog and none is refused.
- The message is a JSON list of keys ("127.0.0.1:6188", "unix:/run/proxy.sock") with the descriptors, in
  the same order, as ancillary data; one message carries up to `MAX_FDS` sockets.
- Errors name the upgrade socket and what went wrong; the caller decides (the old process keeps serving
  when nobody takes its sockets).
"""

from __future__ import annotations

import array
import json
import math
import os
import socket
from collections.abc import Mapping

import trio

from actors import ActorProxyError

__all__ = ["MAX_FDS", "UpgradeError", "receive_listen_fds", "send_listen_fds"]

#: Linux's SCM_MAX_FD: descriptors one SCM_RIGHTS message may carry.
MAX_FDS = 253
_ACK = b"ok"
_MAX_MESSAGE = 64 * 1024


class UpgradeError(ActorProxyError):
    """Listening sockets could not be handed over."""


async def send_listen_fds(
    path: str, fds: Mapping[str, int], *, retries: int = 5, retry_interval: float = 1.0, timeout: float = 10.0
) -> None:
    """Send the listening sockets `fds` (bind key -> descriptor) to the process waiting on `path`.

    Args:
        path: the upgrade socket the new process listens on.
        retries: connection attempts beyond the first while the new process is not listening yet
            (Pingora's `upgrade_sock_connect_accept_max_retries`).
        retry_interval: seconds between attempts.
        timeout: seconds to wait for the acknowledgement once sent.

    Raises:
        UpgradeError: nobody took the sockets.
    """
    if len(fds) > MAX_FDS:
        raise UpgradeError(
            f"upgrade_sock {path}: {len(fds)} listening sockets, at most {MAX_FDS} can be sent"
        )
    keys = list(fds)
    payload = json.dumps(keys).encode()
    sock = await _connect(path, retries, retry_interval)
    with sock:
        try:
            ancillary = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fds[k] for k in keys]))]
            await sock.sendmsg([payload], ancillary)
            with trio.fail_after(timeout):
                answer = await sock.recv(len(_ACK))
        except (OSError, trio.TooSlowError) as exc:
            raise UpgradeError(
                f"upgrade_sock {path}: handing over {len(keys)} sockets failed: {exc!r}"
            ) from exc
    if answer != _ACK:
        raise UpgradeError(f"upgrade_sock {path}: the new process did not confirm it took the sockets")


async def _connect(path: str, retries: int, retry_interval: float) -> trio.socket.SocketType:
    attempt = 0
    while True:
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            await sock.connect(path)
        except OSError as exc:
            sock.close()
            if attempt >= retries:
                raise UpgradeError(
                    f"upgrade_sock {path}: no new process to take the listening sockets"
                    f" after {attempt + 1} attempts ({exc.strerror or exc})"
                ) from exc
            attempt += 1
            await trio.sleep(retry_interval)
            continue
        return sock


async def receive_listen_fds(path: str, *, timeout: float | None = None) -> dict[str, socket.socket]:
    """Wait on `path` for the old process and take its listening sockets.

    Args:
        timeout: seconds to wait for the old process; None waits until cancelled.

    Returns:
        The sockets by bind key, non-blocking, ready to accept on.

    Raises:
        UpgradeError: the message was malformed, or no process came within `timeout`.
    """
    listening = trio.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    with listening:
        # A file left by an earlier upgrade would make bind fail.
        await trio.Path(path).unlink(missing_ok=True)
        await listening.bind(path)
        listening.listen(1)
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                conn, _ = await listening.accept()
        except trio.TooSlowError:
            raise UpgradeError(
                f"upgrade_sock {path}: no old process sent sockets within {timeout:g} s"
            ) from None
        finally:
            await trio.Path(path).unlink(missing_ok=True)
    with conn:
        data, ancillary, _flags, _addr = await conn.recvmsg(_MAX_MESSAGE, socket.CMSG_SPACE(MAX_FDS * 4))
        received: list[int] = []
        for level, kind, blob in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                fds = array.array("i")
                fds.frombytes(blob[: len(blob) - len(blob) % fds.itemsize])
                received.extend(fds)
        try:
            keys = json.loads(data)
            if not isinstance(keys, list) or len(keys) != len(received):
                raise ValueError(f"{len(received)} descriptors for keys {keys!r}")
        except ValueError as exc:
            for fd in received:
                os.close(fd)
            raise UpgradeError(f"upgrade_sock {path}: malformed handover: {exc}") from exc
        sockets = {}
        for key, fd in zip(keys, received, strict=True):
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
            sockets[str(key)] = sock
        await conn.send(_ACK)
    return sockets
