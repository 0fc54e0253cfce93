"""Listening sockets handed over a Unix socket, as an old server does to its successor on SIGQUIT."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import trio

from actorproxy.server._upgrade import UpgradeError, receive_listen_fds, send_listen_fds


async def test_sockets_arrive_keyed_and_keep_accepting(tmp_path: Path) -> None:
    path = str(tmp_path / "upgrade.sock")
    tcp = socket.create_server(("127.0.0.1", 0))
    unix_path = str(tmp_path / "proxy.sock")
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    unix.bind(unix_path)
    unix.listen()
    port = tcp.getsockname()[1]
    # A client that connects before the handover waits in the shared backlog and is served after it.
    early = socket.create_connection(("127.0.0.1", port))
    received: dict[str, socket.socket] = {}

    async def receive() -> None:
        received.update(await receive_listen_fds(path, timeout=10))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await send_listen_fds(path, {f"127.0.0.1:{port}": tcp.fileno(), f"unix:{unix_path}": unix.fileno()})
    tcp.close()  # the old process lets go: the new one's copies keep the sockets open
    unix.close()

    assert set(received) == {f"127.0.0.1:{port}", f"unix:{unix_path}"}
    new_tcp = received[f"127.0.0.1:{port}"]
    new_tcp.setblocking(True)
    accepted, _ = new_tcp.accept()
    early.sendall(b"x")
    assert accepted.recv(1) == b"x"
    late = socket.create_connection(("127.0.0.1", port))
    new_tcp.accept()[0].close()
    for sock in (early, late, accepted, *received.values()):
        sock.close()
    assert not await trio.Path(path).exists()


async def test_nobody_waiting_is_a_clear_error(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    path = str(tmp_path / "upgrade.sock")
    with pytest.raises(
        UpgradeError, match=r"upgrade_sock .*upgrade.sock: no new process .* after 3 attempts"
    ):
        await send_listen_fds(path, {"x": 0}, retries=2, retry_interval=1.0)


async def test_waiting_in_vain_times_out(tmp_path: Path, autojump_clock: trio.testing.MockClock) -> None:
    path = str(tmp_path / "upgrade.sock")
    with pytest.raises(UpgradeError, match="no old process sent sockets within 5 s"):
        await receive_listen_fds(path, timeout=5)
    assert not await trio.Path(path).exists()
