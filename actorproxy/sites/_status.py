"""The status file `actorproxy sites` reads: what the running server serves, and its processes' states.

The sites actor rewrites it (whole, atomically) when something in it changes; it names the server's pid,
so a reader can tell a running server from a file left by one that is gone.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from actorproxy.server import write_atomically

from ._app import SiteRoute

__all__ = ["STATUS_FILE", "read_status", "site_row", "write_status"]

STATUS_FILE = "sites.json"


def site_row(route: SiteRoute) -> dict[str, Any]:
    """One site as the status file and `actorproxy sites` show it."""
    definition = route.definition
    row: dict[str, Any] = {
        "name": definition.name,
        "kind": definition.kind,
        "target": definition.target,
        "source": definition.source,
        "state": "ready" if definition.kind != "invalid" else "invalid",
    }
    if route.process is not None:
        status = route.process.status
        row.update(
            state=status.state,
            pid=status.pid,
            port=status.port,
            restarts=status.restarts,
            last_exit=status.last_exit,
            log=str(route.process.log_path),
        )
    return row


def write_status(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write the status file (blocking)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"pid": os.getpid(), "sites": rows}
    write_atomically(path, (json.dumps(data, indent=2) + "\n").encode(), 0o644)


def read_status(path: Path) -> dict[str, Any] | None:
    """The status file's data when the server that wrote it still runs; else None (blocking)."""
    try:
        data = json.loads(path.read_text())
        pid = int(data["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # another user's process: it runs
    return data if isinstance(data, dict) else None
