"""`ScriptedStream`: a stream that plays back a script of reads and records every write.

Rules:
- Each `receive_some` hands out the next read of the script, whole, whatever `max_bytes` asks: a test decides
  exactly how the bytes are split. After the last one comes EOF (`close=True`) or `Starved` (`close=False`):
  the code under test asked for bytes the script does not hold, where a real peer would make it wait.
- Writes are recorded as they are, one entry per `send_all`; nothing ever blocks or checkpoints, so a codec
  driven by it runs its parsing and framing only, with no scheduling in between.
"""

from __future__ import annotations

from collections.abc import Iterable

import trio

__all__ = ["ScriptedStream", "Starved"]


class Starved(Exception):
    """A `ScriptedStream` was asked for more bytes than its script holds (the caller would wait)."""


class ScriptedStream(trio.abc.Stream):
    """Hands out `reads` one per `receive_some`, then EOF (`close`) or `Starved`; records every write.

    Args:
        reads: the bytes each `receive_some` returns, in order.
        close: end the script with EOF (b""), else with `Starved`.
    """

    def __init__(self, reads: Iterable[bytes], *, close: bool = True) -> None:
        self.reads = list(reads)
        self.close = close
        #: Every `send_all`, in order.
        self.writes: list[bytes] = []

    def __repr__(self) -> str:
        return f"<ScriptedStream {len(self.reads)} reads left, {len(self.writes)} writes>"

    @property
    def written(self) -> bytes:
        """Every write, joined."""
        return b"".join(self.writes)

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    async def wait_send_all_might_not_block(self) -> None:
        pass

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        if self.reads:
            return self.reads.pop(0)
        if self.close:
            return b""
        raise Starved

    async def aclose(self) -> None:
        pass
