"""Dropping privileges after binding: `drop_privileges` switches group, then user, and names what is wrong."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys

import pytest

from actorproxy.server import drop_privileges

CHILD = """
import os, sys
from actorproxy.server import drop_privileges
drop_privileges(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
print(os.getuid(), os.getgid())
"""


def run_child(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=False)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_root_becomes_the_configured_user() -> None:
    nobody = pwd.getpwnam("nobody")
    result = run_child("nobody")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(nobody.pw_uid), str(nobody.pw_gid)]


def test_nothing_to_do_without_user_or_group() -> None:
    before = (os.getuid(), os.getgid())
    drop_privileges(None, None)
    assert (os.getuid(), os.getgid()) == before


def test_an_unknown_user_names_the_key() -> None:
    with pytest.raises(ValueError, match="user: no user 'no-such-user-here'"):
        drop_privileges("no-such-user-here", None)


def test_an_unknown_group_names_the_key() -> None:
    with pytest.raises(ValueError, match="group: no group 'no-such-group-here'"):
        drop_privileges(None, "no-such-group-here")
