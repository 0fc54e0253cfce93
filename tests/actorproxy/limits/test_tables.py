"""The GCRA table (in memory and in a shared file) and the in-flight table across forked processes."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import random
import time
from pathlib import Path

import pytest

from actorproxy.limits import GcraTable, InflightTable, Quota, gcra
from actorproxy.limits._table import BUCKET_SIZE, HEADER_SIZE, key_hash

FORK = multiprocessing.get_context("fork")
QUOTA = Quota.parse("1/min", burst=5)
# How long a test waits for a forked process (it does microseconds of work).
JOIN_TIMEOUT = 30.0


def admitted(table: GcraTable, key: str, n: int, quota: Quota = QUOTA) -> int:
    now = time.monotonic()
    return sum(table.check(key, quota, now).allowed for _ in range(n))


def test_the_table_decides_as_gcra_does_for_each_key_apart() -> None:
    table = GcraTable.in_memory(64)
    quota = Quota.parse("2/s", burst=3)
    decisions = [table.check("a", quota, 100.0) for _ in range(4)]
    tat = None
    for decision in decisions:
        new_tat, expected = gcra(quota, tat, 100.0)
        assert decision == expected
        tat = new_tat if new_tat is not None else tat
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert table.check("b", quota, 100.0).allowed
    assert table.check("a", quota, 100.5).allowed  # refilled one interval later


def test_keys_past_a_full_bucket_push_out_the_least_limited_one() -> None:
    table = GcraTable.in_memory(4)  # one bucket
    quota = Quota.parse("1/min", burst=2)
    for key in "abcd":
        table.check(key, quota, 10.0)
    table.check("a", quota, 10.0)  # "a" is the most limited now
    assert table.evictions == 0
    assert table.check("e", quota, 10.0).allowed
    assert table.evictions == 1
    assert not table.check("a", quota, 10.0).allowed  # "a" kept its state


def test_a_recovered_key_gives_its_slot_away_without_an_eviction() -> None:
    table = GcraTable.in_memory(4)
    quota = Quota.parse("1/s", burst=1)
    for key in "abcd":
        table.check(key, quota, 10.0)
    assert table.check("e", quota, 20.0).allowed
    assert table.evictions == 0


def test_admit_decides_as_check_does_whatever_took_a_key_s_place() -> None:
    # One bucket of 4 slots and 6 keys: places change hands, so admit's remembered places go stale.
    rng = random.Random(5)
    quota = Quota.parse("2/s", burst=2)
    by_admit, by_check = GcraTable.in_memory(4), GcraTable.in_memory(4)
    now = 100.0
    for _ in range(2000):
        now += rng.choice((0.0, 0.0, 0.1, 0.5))
        key = rng.choice("abcdef")
        assert by_admit.admit(key, quota, now) == by_check.check(key, quota, now).allowed
    assert by_admit.evictions == by_check.evictions > 0


def test_a_refused_admit_leaves_the_figures_to_check() -> None:
    table = GcraTable.in_memory(64)
    quota = Quota.parse("1/s", burst=2)
    assert [table.admit("k", quota, 10.0) for _ in range(3)] == [True, True, False]
    refused = table.check("k", quota, 10.0)
    assert (refused.allowed, refused.remaining, round(refused.retry_after, 6)) == (False, 0, 1.0)


def _take(path: str, key: str, n: int, results: multiprocessing.Queue[int]) -> None:
    table = GcraTable.open(path, 64)
    results.put(admitted(table, key, n))


def test_processes_opening_one_file_share_the_limit(tmp_path: Path) -> None:
    path = str(tmp_path / "limits")
    results: multiprocessing.Queue[int] = FORK.Queue()
    workers = [FORK.Process(target=_take, args=(path, "k", 20, results)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(JOIN_TIMEOUT)
    assert sum(results.get(timeout=JOIN_TIMEOUT) for _ in workers) == QUOTA.burst


def test_a_forked_worker_shares_the_table_its_master_opened(tmp_path: Path) -> None:
    table = GcraTable.open(str(tmp_path / "limits"), 64)
    assert admitted(table, "k", 2) == 2
    results: multiprocessing.Queue[int] = FORK.Queue()
    child = FORK.Process(target=lambda: results.put(admitted(table, "k", 10)))
    child.start()
    child.join(JOIN_TIMEOUT)
    assert results.get(timeout=JOIN_TIMEOUT) == 3
    assert admitted(table, "k", 1) == 0


def _die_holding_the_lock(path: str, key: str) -> None:
    table = GcraTable.open(path, 64)
    offset = HEADER_SIZE + (key_hash(key) % (table.slots // 4)) * BUCKET_SIZE
    assert table._fd is not None
    fcntl.lockf(table._fd, fcntl.LOCK_EX, BUCKET_SIZE, offset)
    os._exit(9)  # killed mid-check, the lock still held


def test_a_process_that_dies_mid_check_leaves_no_bucket_locked(tmp_path: Path) -> None:
    path = str(tmp_path / "limits")
    table = GcraTable.open(path, 64)
    child = FORK.Process(target=_die_holding_the_lock, args=(path, "k"))
    child.start()
    child.join(JOIN_TIMEOUT)
    assert child.exitcode == 9
    assert admitted(table, "k", 1) == 1  # would block forever on a lock that outlived its holder


def test_a_file_of_another_layout_is_replaced_not_truncated(tmp_path: Path) -> None:
    path = str(tmp_path / "limits")
    old = GcraTable.open(path, 64)
    assert admitted(old, "k", 5) == 5
    new = GcraTable.open(path, 128)
    assert (new.slots, admitted(new, "k", 5)) == (128, 5)
    assert admitted(old, "x", 1) == 1  # the old mapping still works for whoever holds it
    again = GcraTable.open(path, 128)
    assert admitted(again, "k", 1) == 0  # the same layout is opened, not replaced
    for table in (old, new, again):
        table.close()


def test_the_file_is_private_to_its_owner(tmp_path: Path) -> None:
    path = tmp_path / "limits"
    GcraTable.open(str(path), 64).close()
    assert path.stat().st_mode & 0o777 == 0o600


# -- the in-flight table --------------------------------------------------------------------------------

WORKER = {"index": 0}


def test_the_inflight_table_counts_and_releases() -> None:
    table = InflightTable(1)
    first, second = table.incr("a"), table.incr("a")
    assert (first.count, second.count, table.get("b")) == (1, 2, 0)
    first.release()
    with second:
        assert table.get("a") == 1
    assert table.get("a") == 0


def _count_and_die(table: InflightTable, index: int, release: bool) -> None:
    WORKER["index"] = index
    guard = table.incr("a")
    if release:
        guard.release()
    os._exit(0)  # a worker that dies with its guard held


def test_workers_add_up_and_a_replacement_wipes_its_dead_predecessors_counts() -> None:
    table = InflightTable(2, lambda: WORKER["index"])
    mine = table.incr("a")  # this process is worker 0
    dying = FORK.Process(target=_count_and_die, args=(table, 1, False))
    dying.start()
    dying.join(JOIN_TIMEOUT)
    assert table.get("a") == 2  # the dead worker's request still counts...
    replacement = FORK.Process(target=_count_and_die, args=(table, 1, True))
    replacement.start()
    replacement.join(JOIN_TIMEOUT)
    assert table.get("a") == 1  # ...until a new worker takes its place
    mine.release()
    assert table.get("a") == 0


def test_an_inflight_table_needs_workers() -> None:
    with pytest.raises(ValueError):
        InflightTable(0)
