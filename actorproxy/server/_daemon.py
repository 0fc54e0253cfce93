"""Daemon mode and process identity: detach, write the pid file, log to `error_log`, drop privileges.

Rules:
- `daemonize` runs before any event loop or worker exists: it forks twice (the caller's shell gets its
  prompt back at once, and the daemon can never take a controlling terminal again), starts a new session,
  points stdin at /dev/null and stdout/stderr at `error_log` (appended; /dev/null when unset), and moves to
  `working_directory` when one is set (Pingora's daemon settings). Listening sockets bound before it are
  kept.
- The pid file holds the daemon's pid, written once it is detached and removed when it exits.
- `reopen_error_log` (SIGUSR1) points stdout and stderr at `error_log` again, after logrotate moved it.
- `drop_privileges` switches group then user (the other order would leave no right to change the group),
  after the listening sockets are bound, so a server can bind port 80 as root and serve as nobody.
"""

from __future__ import annotations

import atexit
import contextlib
import grp
import logging
import os
import pwd
import sys

__all__ = ["daemonize", "drop_privileges", "remove_pid_file", "write_pid_file"]

logger = logging.getLogger("actorproxy.server")


def reopen_error_log(error_log: str | None) -> None:
    """Point stdout and stderr at `error_log` afresh (logrotate moved the old file), as nginx does on
    SIGUSR1; nothing when there is no error log.

    Raises:
        OSError: the file cannot be opened (the old one stays in use).
    """
    if error_log is None:
        return
    log_fd = os.open(error_log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    try:
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        os.dup2(log_fd, 1)
        os.dup2(log_fd, 2)
    finally:
        os.close(log_fd)


def daemonize(*, error_log: str | None, working_directory: str | None = None) -> None:
    """Detach from the terminal; return in the daemon (the original process exits 0).

    Raises:
        OSError: the error log cannot be opened (before detaching, so the message reaches the terminal).
    """
    log_fd = os.open(error_log or os.devnull, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    if os.fork() > 0:
        os._exit(0)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(null)
    os.close(log_fd)
    if working_directory is not None:
        os.chdir(working_directory)


def write_pid_file(path: str) -> None:
    """Write this process's pid to `path`, removed again when the process exits normally.

    Raises:
        OSError: it cannot be written; the message names the file.
    """
    # Written whole under another name, then renamed: a reader never sees a half-written file.
    partial = f"{path}.{os.getpid()}.tmp"
    try:
        with open(partial, "w", encoding="ascii") as file:
            file.write(f"{os.getpid()}\n")
        os.replace(partial, path)
    except OSError as exc:
        raise OSError(exc.errno, f"pid_file {path}: {exc.strerror}") from exc
    pid = os.getpid()
    atexit.register(remove_pid_file, path, pid)


def remove_pid_file(path: str, pid: int) -> None:
    """Remove `path` if it still names process `pid` (a successor may have written its own)."""
    with contextlib.suppress(OSError, ValueError):
        with open(path, encoding="ascii") as file:
            if int(file.read().strip()) != pid:
                return
        os.unlink(path)


def drop_privileges(user: str | None, group: str | None) -> None:
    """Switch to `group` and `user` (names or numeric ids); nothing to do when both are None.

    Raises:
        ValueError: the user or group does not exist (the message names the key).
        PermissionError: the process may not switch (it is not root).
    """
    if group is not None:
        gid = _group_id(group)
        if gid != os.getgid():
            os.setgroups([gid])
            os.setgid(gid)
    if user is not None:
        entry = _user(user)
        if entry.pw_uid != os.getuid():
            if group is None:
                os.setgroups(os.getgrouplist(entry.pw_name, entry.pw_gid))
                os.setgid(entry.pw_gid)
            os.setuid(entry.pw_uid)
    if user is not None or group is not None:
        logger.info("running as uid %d gid %d", os.getuid(), os.getgid())


def _user(user: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"user: no user {user!r} on this system") from None


def _group_id(group: str) -> int:
    if group.isdigit():
        return int(group)
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise ValueError(f"group: no group {group!r} on this system") from None
