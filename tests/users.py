"""Throwaway login users for tests that run a real shell as someone other than root."""

from __future__ import annotations

import os
import pwd
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from cloudassist.agent import proctree


@contextmanager
def throwaway_user() -> Iterator[str]:
    """A new user whose login shell is /bin/sh, removed afterwards with anything still running as it."""
    name = f"casess{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True, capture_output=True)
    try:
        yield name
    finally:
        uid = pwd.getpwnam(name).pw_uid
        for pid in proctree.table():
            try:
                if os.stat(f"/proc/{pid}").st_uid == uid:
                    proctree.kill_tree(pid)
            except OSError:
                pass
        subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
