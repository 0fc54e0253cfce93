"""Run every example in `examples/` and check what it reports, so the examples never rot."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import trio
import trio.testing

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load_example(name: str) -> ModuleType:
    """Import `examples/<name>.py` (examples/ is not a package) under a name that cannot clash."""
    spec = importlib.util.spec_from_file_location(f"examples_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


ping_pong = load_example("ping_pong")
counter = load_example("counter")
supervision_tree = load_example("supervision_tree")
dynamic_children = load_example("dynamic_children")


@pytest.mark.parametrize("rounds", [1, 3, 100])
async def test_ping_pong_plays_every_round(rounds: int, capsys: pytest.CaptureFixture[str]) -> None:
    assert await ping_pong.main(rounds) == rounds
    lines = capsys.readouterr().out.splitlines()
    assert lines[: 2 * rounds] == [f"{side} {n}" for n in range(1, rounds + 1) for side in ("pong", "ping")]
    assert lines[-1] == f"{rounds} round trips; ping exited: normal"


async def test_counter_counts_and_times_out_a_slow_ask(
    autojump_clock: trio.testing.MockClock, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await counter.main() == 6
    out = capsys.readouterr().out
    assert "ask timed out: no reply from /counter to Stall within 0.01 s" in out
    # The stalled handler's reply arrived after the ask gave up.
    assert "final count: 6; dead letters: 1" in out


def test_counter_runs_as_a_script() -> None:
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "counter.py")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "final count: 6; dead letters: 1"


async def test_supervision_tree_restarts_then_escalates(capsys: pytest.CaptureFixture[str]) -> None:
    report = await supervision_tree.main()
    # `which_children` saw each restarted incarnation before it was crashed in turn.
    shown = [line for line in capsys.readouterr().out.splitlines() if line.startswith("worker:")]
    assert shown == [f"worker: running, restarts={n}" for n in range(supervision_tree.INTENSITY + 1)]
    # The first incarnation plus one restart per tolerated crash; the crash after those escalates.
    assert report.worker_starts == supervision_tree.INTENSITY + 1
    assert report.worker_crashes == supervision_tree.INTENSITY + 1
    assert report.escalation.child_id == "worker"
    assert report.escalation.supervisor == "/supervisor"
    assert isinstance(report.escalation.__cause__, supervision_tree.WorkerCrashed)


async def test_dynamic_children_all_end_and_crashes_are_counted() -> None:
    report = await dynamic_children.main()
    assert report == dynamic_children.JobsReport(
        started=1000,
        finished=900,
        crashed=100,
        supervisor_crashes=100,
        supervisor_restarts=0,
        children_left=0,
    )


async def test_dynamic_children_with_other_numbers() -> None:
    report = await dynamic_children.main(jobs=25, crash_every=4)
    assert (report.finished, report.crashed, report.supervisor_crashes) == (19, 6, 6)
    assert report.children_left == 0
