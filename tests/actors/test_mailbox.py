"""Mailbox overflow policies, backpressure, and the control lane."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from actors import Actor, ActorDead, ActorSystem, MailboxConfig, MailboxFull, Overflow
from actors._mailbox import TIMEOUT, Mailbox


class Gate(Actor):
    """Blocks in its first message until `gate` is set; records what it handled."""

    def __init__(self) -> None:
        self.gate = trio.Event()
        self.seen: list[Any] = []

    async def receive(self, message: Any) -> Any:
        if message == "wait":
            await self.gate.wait()
        self.seen.append(message)
        return message


async def blocked_gate(system: ActorSystem, overflow: Overflow, capacity: int = 2) -> tuple[Any, Gate]:
    gate = Gate()
    ref = await system.spawn(gate, mailbox=MailboxConfig(capacity=capacity, overflow=overflow))
    await ref.tell("wait")
    await trio.testing.wait_all_tasks_blocked()  # the actor is now inside "wait"
    return ref, gate


async def test_block_policy_applies_backpressure_and_shows_the_blocked_sender(
    actor_system: ActorSystem,
) -> None:
    ref, gate = await blocked_gate(actor_system, Overflow.BLOCK)
    await ref.tell(1)
    await ref.tell(2)
    with pytest.raises(MailboxFull):
        ref.tell_nowait(3)
    sent = trio.Event()

    async def sender() -> None:
        await ref.tell(3)
        sent.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(sender)
        await trio.testing.wait_all_tasks_blocked()
        stats = ref.statistics()
        assert (stats.blocked_senders, stats.mailbox_size, stats.mailbox_peak) == (1, 2, 2)
        assert not sent.is_set()
        gate.gate.set()
    assert sent.is_set()
    assert await ref.ask("end") == "end"
    assert gate.seen == ["wait", 1, 2, 3, "end"]
    assert ref.statistics().blocked_senders == 0


async def test_fail_policy_refuses_at_once(actor_system: ActorSystem) -> None:
    ref, gate = await blocked_gate(actor_system, Overflow.FAIL)
    await ref.tell(1)
    await ref.tell(2)
    with pytest.raises(MailboxFull):
        await ref.tell(3)
    with pytest.raises(MailboxFull):
        await ref.ask(4)
    gate.gate.set()
    await trio.testing.wait_all_tasks_blocked()  # the queue drains before the last ask
    await ref.ask("end")
    assert gate.seen == ["wait", 1, 2, "end"]


async def test_drop_newest_discards_the_new_message(actor_system: ActorSystem) -> None:
    ref, gate = await blocked_gate(actor_system, Overflow.DROP_NEWEST)
    for n in (1, 2, 3, 4):
        await ref.tell(n)
    with pytest.raises(MailboxFull):
        await ref.ask(5)  # a dropped ask fails instead of hanging
    gate.gate.set()
    await trio.testing.wait_all_tasks_blocked()  # the queue drains before the last ask
    await ref.ask("end")
    assert gate.seen == ["wait", 1, 2, "end"]
    assert actor_system.dead_letters.count(ref.path, int) == 3


async def test_drop_oldest_discards_the_oldest_queued_message(actor_system: ActorSystem) -> None:
    ref, gate = await blocked_gate(actor_system, Overflow.DROP_OLDEST)
    for n in (1, 2, 3, 4):
        await ref.tell(n)
    gate.gate.set()
    await trio.testing.wait_all_tasks_blocked()  # the queue drains before the last ask
    await ref.ask("end")
    assert gate.seen == ["wait", 3, 4, "end"]
    assert actor_system.dead_letters.count(ref.path, int) == 2


async def test_stop_bypasses_a_full_data_mailbox(actor_system: ActorSystem) -> None:
    ref, gate = await blocked_gate(actor_system, Overflow.BLOCK, capacity=3)
    for n in (1, 2, 3):
        await ref.tell(n)
    outcome: list[Any] = []

    async def blocked_asker() -> None:
        try:
            await ref.ask("blocked", timeout=None)
        except ActorDead as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocked_asker)
        await trio.testing.wait_all_tasks_blocked()
        assert ref.statistics().blocked_senders == 1
        ref.request_stop()
        gate.gate.set()  # finishes "wait"; the stop is handled next, ahead of 1, 2, 3
        await ref.join()
    assert gate.seen == ["wait"]
    assert len(outcome) == 1
    assert actor_system.dead_letters.count(ref.path, int) == 3


def test_mailbox_reads_control_before_data() -> None:
    mailbox = Mailbox(MailboxConfig(capacity=4))
    mailbox.put_nowait("data")
    mailbox.put_control("control")
    assert mailbox.get_nowait() == "control"
    assert mailbox.get_nowait() == "data"
    with pytest.raises(trio.WouldBlock):
        mailbox.get_nowait()


def test_mailbox_config_rejects_zero_capacity() -> None:
    with pytest.raises(ValueError):
        MailboxConfig(capacity=0)


async def test_a_send_right_after_a_timed_out_read_does_not_wake_the_reader_twice(
    autojump_clock: Any,
) -> None:
    mailbox = Mailbox()
    async with trio.open_nursery() as nursery:

        async def reader() -> None:
            assert await mailbox.get(trio.current_time() + 1) is TIMEOUT

        nursery.start_soon(reader)
        await trio.sleep(1)  # the reader's deadline passes; it is aborted but has not run yet
        mailbox.put_nowait("x")
    assert mailbox.get_nowait() == "x"
