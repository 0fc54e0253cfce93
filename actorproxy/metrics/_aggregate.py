"""One scrape for every process of a server: each process writes snapshots, any process sums them.

Rules:
- Each process (the server's own, or each of `threads` workers) writes what it counts to
  `<directory>/<pid>.json` every `snapshot_interval` seconds, when it stops, and at each scrape it answers.
  A scrape writes its own snapshot first, then reads every file: each process counts by its latest
  snapshot, which only grows, so two scrapes answered by different workers never see a counter go back.
- Counters and histograms are summed over every process that ever wrote, dead ones included: a worker that
  died (and was replaced) or the previous server of a graceful upgrade (which keeps the directory) keeps
  its counts in the total. Gauges count only processes alive now, summed, except those in
  `MAX_AGGREGATED` (each worker reports the same thing: the largest wins).
- Snapshots of dead processes are folded into `retired.json` (counters and histograms only) so the
  directory does not grow with restarts. A scrape reads and folds under an exclusive lock on the directory,
  so no scrape counts a dead process twice or not at all.
- A fresh start (not an upgrade) empties the directory: counters start from zero with the server.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client.metrics_core import Metric

from ._families import MAX_AGGREGATED

__all__ = ["SnapshotDirectory", "merge", "metric_from_data", "metric_to_data"]

_LOCK_FILE = ".lock"
_RETIRED = "retired.json"
# Types whose values add up over time and over processes.
_CUMULATIVE = frozenset({"counter", "histogram", "summary", "gaugehistogram"})


def metric_to_data(metric: Metric) -> dict[str, Any]:
    """A family as plain data (JSON): name, type, help, unit and samples (name, labels, value)."""
    return {
        "name": metric.name,
        "type": metric.type,
        "help": metric.documentation,
        "unit": metric.unit,
        "samples": [[s.name, s.labels, s.value] for s in metric.samples],
    }


def metric_from_data(data: dict[str, Any]) -> Metric:
    """The family `metric_to_data` wrote."""
    metric = Metric(data["name"], data["help"], data["type"], data["unit"])
    for name, labels, value in data["samples"]:
        metric.add_sample(name, labels, value)
    return metric


def merge(processes: Iterable[tuple[bool, list[dict[str, Any]]]]) -> list[Metric]:
    """The families of several processes as one: `processes` are (alive now, families as data)."""
    order: list[str] = []
    heads: dict[str, dict[str, Any]] = {}
    values: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for alive, families in processes:
        for family in families:
            name = family["name"]
            cumulative = family["type"] in _CUMULATIVE
            if not (alive or cumulative):
                continue
            if name not in heads:
                order.append(name)
                heads[name] = family
                values[name] = {}
            samples = values[name]
            biggest = name in MAX_AGGREGATED
            for sample_name, labels, value in family["samples"]:
                key = (sample_name, tuple(sorted(labels.items())))
                if key not in samples:
                    samples[key] = value
                elif biggest:
                    samples[key] = max(samples[key], value)
                else:
                    samples[key] += value
    merged = []
    for name in order:
        head = heads[name]
        metric = Metric(name, head["help"], head["type"], head["unit"])
        for (sample_name, labels), value in values[name].items():
            metric.add_sample(sample_name, dict(labels), value)
        merged.append(metric)
    return merged


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process (a recycled pid): alive, and not ours to read as ours
    return True


class SnapshotDirectory:
    """The snapshots of one server's processes (see the module rules).

    Args:
        path: the directory, created when missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"<SnapshotDirectory {self.path}>"

    def clear(self) -> None:
        """Empty the directory (a fresh start): every count starts from zero."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked(fcntl.LOCK_EX):
            for entry in self.path.glob("*.json"):
                entry.unlink(missing_ok=True)

    def write(self, families: Iterable[Metric], pid: int | None = None) -> None:
        """Replace this process's snapshot, atomically (a reader sees the old one or the new one)."""
        pid = os.getpid() if pid is None else pid
        self.path.mkdir(parents=True, exist_ok=True)
        data = json.dumps([metric_to_data(metric) for metric in families], separators=(",", ":"))
        temporary = self.path / f".{pid}.tmp"
        temporary.write_text(data)
        os.replace(temporary, self.path / f"{pid}.json")

    def read(self) -> list[Metric]:
        """Every process's snapshot, merged (dead processes are folded into the retired total first)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self._locked(fcntl.LOCK_EX):
            self._fold_dead()
            return merge(self._snapshots())

    def _snapshots(self) -> Iterator[tuple[bool, list[dict[str, Any]]]]:
        for entry in sorted(self.path.glob("*.json")):
            families = self._load(entry)
            if families is None:
                continue
            if entry.name == _RETIRED:
                yield False, families
            else:
                yield _alive(int(entry.stem)), families

    def _fold_dead(self) -> None:
        dead = [
            entry
            for entry in self.path.glob("*.json")
            if entry.stem.isdigit() and not _alive(int(entry.stem))
        ]
        if not dead:
            return
        retired_path = self.path / _RETIRED
        processes = [(False, self._load(entry) or []) for entry in [retired_path, *dead]]
        retired = [metric_to_data(metric) for metric in merge(processes)]
        temporary = self.path / f".{_RETIRED}.tmp"
        temporary.write_text(json.dumps(retired, separators=(",", ":")))
        os.replace(temporary, retired_path)
        for entry in dead:
            entry.unlink(missing_ok=True)

    @staticmethod
    def _load(entry: Path) -> list[dict[str, Any]] | None:
        try:
            data = json.loads(entry.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return None  # a file that is not ours, or torn by a crash mid-write (writes are atomic)
        return data if isinstance(data, list) else None

    @contextlib.contextmanager
    def _locked(self, mode: int) -> Iterator[None]:
        with open(self.path / _LOCK_FILE, "a") as lock:
            fcntl.flock(lock, mode)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
