"""Writing a file whole or not at all: a temporary file beside it, flushed to disk, then renamed over it.

A reader (the server reloading, another command) sees the old file or the new one, never a mix. An existing
file's permission bits are kept (and its owner, when root writes it); a new file gets `mode`.
"""

from __future__ import annotations

import contextlib
import os
import stat

__all__ = ["write_atomically"]


def write_atomically(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o600, keep_mode: bool = True
) -> None:
    """Replace the file at `path` with `data`, keeping its permission bits (a new file, or any file when
    `keep_mode` is false, gets `mode`).

    Raises:
        OSError: it cannot be written; the file at `path` is unchanged.
    """
    path = os.fspath(path)
    owner: tuple[int, int] | None = None
    try:
        status = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if keep_mode:
            mode = stat.S_IMODE(status.st_mode)
        owner = (status.st_uid, status.st_gid)
    directory = os.path.dirname(os.path.abspath(path))
    partial = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    # O_EXCL: never write through a file (or a link) someone else put at the temporary name.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "wb") as file:
            os.fchmod(file.fileno(), mode)  # the umask may have taken bits off
            if owner is not None and os.geteuid() == 0:
                os.fchown(file.fileno(), *owner)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(partial)
        raise
