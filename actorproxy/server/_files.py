"""Files the server writes: `write_atomically` (whole or not at all, mode set before it holds anything), and
`SystemSetup` (files and commands that change the machine, printed or applied)."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path, PurePosixPath

import attrs

__all__ = ["SystemFile", "SystemSetup", "write_atomically"]


def write_atomically(target: str | os.PathLike[str], data: bytes, mode: int = 0o644) -> None:
    """Write `data` to `target` with `mode`: a temporary file beside it, renamed over it once complete.

    The mode is set before the data is written, so a secret (a private key, 0o600) is never readable by
    others, not even for a moment. A reader sees the old file or the new one, never half of one.

    Raises:
        OSError: the directory cannot be written.
    """
    path = Path(target)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            os.fchmod(out.fileno(), mode)
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


@attrs.frozen
class SystemFile:
    """A file a system setup writes: its absolute path on the target system, its text and mode."""

    path: str
    text: str
    mode: int = 0o644


@attrs.frozen
class SystemSetup:
    """A change to the machine: files to write, then commands to run, and notes for the user.

    `actorproxy dns setup` and `actorproxy ca trust` describe what they would change with one, print it,
    or apply it (`apply`).
    """

    title: str
    files: tuple[SystemFile, ...] = ()
    commands: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def render(self) -> str:
        """The whole setup as text for a terminal."""
        lines = [f"# {self.title}"]
        for file in self.files:
            lines += ["", f"# {file.path}", file.text.rstrip("\n")]
        if self.commands:
            lines += [
                "",
                "# then run (as root or Administrator):",
                *(f"  {command}" for command in self.commands),
            ]
        lines += [f"# note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def write(self, root: str | os.PathLike[str] = "/") -> list[Path]:
        """Write the files under `root` ("/" for the machine itself); return the paths written.

        Raises:
            OSError: a file cannot be written (permissions: run as root, or give another root).
        """
        written = []
        for file in self.files:
            target = Path(root).joinpath(*PurePosixPath(file.path).parts[1:])
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, file.text.encode(), file.mode)
            written.append(target)
        return written

    def apply(self, root: str | os.PathLike[str] = "/") -> int:
        """Write the files under `root`, printing each; run the commands only when `root` is "/" (else
        print them). Returns the first non-zero status of a command, or 0.

        Raises:
            OSError: see `write`.
        """
        for path in self.write(root):
            print(f"wrote {path}")
        status = 0
        for command in self.commands:
            if Path(root).resolve() != Path("/"):
                print(f"then run: {command}")
                continue
            print(f"running: {command}")
            done = subprocess.run(shlex.split(command), check=False)
            status = status or done.returncode
        for note in self.notes:
            print(f"note: {note}")
        return status

    def print_or_apply(self, *, apply: bool, root: str | os.PathLike[str], command: str) -> int:
        """What a command line does with the setup: print it, or `apply` it; returns the exit status (1
        when a file cannot be written, naming it and `command`)."""
        if not apply:
            print(self.render(), end="")
            return 0
        try:
            return self.apply(root)
        except OSError as exc:
            reason = exc.strerror or exc
            print(f"actorproxy: {command}: cannot write {exc.filename or ''}: {reason}", file=sys.stderr)
            return 1
