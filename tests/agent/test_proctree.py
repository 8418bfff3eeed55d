"""proctree: finding, killing and reaping a task's processes through /proc (real processes, no mocks)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from cloudassist.agent import proctree


@pytest.fixture(autouse=True, scope="module")
def subreaper() -> Iterator[None]:
    """These tests run with the test process as a child subreaper, as the agent does."""
    assert proctree.become_subreaper()
    yield
    proctree.become_subreaper(on=False)
    proctree.reap_orphans(set())


Spawn = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def spawn() -> Iterator[Spawn]:
    """Starts `/bin/sh -c script` in a new session with stdout piped; closes the pipes afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(script: str, **kwargs: Any) -> subprocess.Popen[bytes]:
        kwargs.setdefault("start_new_session", True)
        proc = subprocess.Popen(["/bin/sh", "-c", script], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, **kwargs)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.returncode is None:
            proctree.kill_tree(proc.pid)
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def _pids(proc: subprocess.Popen[bytes], n: int) -> list[int]:
    assert proc.stdout is not None
    return [int(proc.stdout.readline()) for _ in range(n)]


def _settle(pids: set[int], seconds: float = 5) -> set[int]:
    """Reap what died; the pids still alive (or not yet reaped) after at most `seconds`."""
    deadline = time.monotonic() + seconds
    while (left := proctree.reap_dead(pids)) and time.monotonic() < deadline:
        time.sleep(0.01)
    return left


def test_stat_parses_odd_command_names(spawn: Spawn) -> None:
    """/proc/<pid>/stat is parsed right even when the command name holds spaces and parentheses."""
    script = (  # PR_SET_NAME (15) renames the process as comm shows it
        "import ctypes, time; ctypes.CDLL(None).prctl(15, b'x) (y z', 0, 0, 0); print(1, flush=True); time.sleep(30)"
    )
    proc = spawn(f'exec {sys.executable} -c "{script}"')
    _pids(proc, 1)
    with open(f"/proc/{proc.pid}/comm") as f:
        assert f.read().strip() == "x) (y z"
    info = proctree.stat(proc.pid)
    assert info is not None
    assert (info.ppid, info.session, info.pgrp) == (os.getpid(), proc.pid, proc.pid)
    assert info.state in "RS"


def test_descendants_follow_ppid_links(spawn: Spawn) -> None:
    """descendants() finds children and grandchildren, and not the process itself."""
    proc = spawn("sleep 30 & echo $!; sh -c 'sleep 30 & echo $!; wait' & echo $!; wait")
    child, grandchild, middle = _pids(proc, 3)
    assert {child, grandchild, middle} <= proctree.descendants(proc.pid)
    assert proc.pid not in proctree.descendants(proc.pid)
    victims = proctree.kill_tree(proc.pid)
    proc.wait()
    assert not _settle(victims - {proc.pid})


def test_kill_tree_kills_children_session_escapers_and_daemons(spawn: Spawn) -> None:
    """kill_tree() kills the shell, its children, a `setsid` child, and a double-forked setsid daemon that
    only the environment marker still ties to the task."""
    script = (
        "sleep 30 & echo $!; setsid sleep 30 & echo $!; "
        "(setsid sh -c 'echo $$; exec sleep 30' &); sleep 30"
    )
    env = {**os.environ, "CA_TEST_MARKER": "tree-1"}
    proc = spawn(script, env=env)
    child, escaper, daemon = _pids(proc, 3)
    pids = {child, escaper, daemon}
    time.sleep(0.1)
    info = proctree.stat(daemon)  # double-forked: reparented to us (the subreaper), in a session of its own
    assert info is not None
    assert info.ppid == os.getpid()
    assert info.session == daemon
    assert daemon not in proctree.descendants(proc.pid)
    victims = proctree.kill_tree(proc.pid, marker="CA_TEST_MARKER=tree-1")
    assert proc.wait() == -signal.SIGKILL
    assert pids | {proc.pid} <= victims
    assert not _settle(pids)
    assert not any(proctree.alive(p) for p in pids)


def test_kill_tree_stops_a_fork_loop(spawn: Spawn) -> None:
    """A shell forking as fast as it can is frozen and killed with every child it made, none left over."""
    proc = spawn("echo go; while :; do sleep 30 & done")
    assert proc.stdout is not None
    proc.stdout.readline()
    time.sleep(0.3)
    start = time.monotonic()
    victims = proctree.kill_tree(proc.pid)
    elapsed = time.monotonic() - start
    proc.wait()
    assert len(victims) > 10
    assert not _settle(victims - {proc.pid})
    assert not proctree.descendants(proc.pid)
    assert elapsed < 5


def test_kill_process_leaves_children(spawn: Spawn) -> None:
    """kill_process() (TerminationMode=Process) kills the shell only; its child lives on."""
    proc = spawn("sleep 30 & echo $!; sleep 30")
    (child,) = _pids(proc, 1)
    proctree.kill_process(proc.pid)
    assert proc.wait() == -signal.SIGKILL
    try:
        assert proctree.alive(child)
        assert proctree.stat(child).ppid == os.getpid()  # type: ignore[union-attr]  # reparented to us
    finally:
        os.kill(child, signal.SIGKILL)
        assert not _settle({child})


def test_reap_orphans_spares_known_children(spawn: Spawn) -> None:
    """reap_orphans() reaps a zombie orphan reparented to us but leaves the exit status of a known child
    (a shell the executor waits for) to its waiter."""
    proc = spawn("(sleep 0.2; exit 0) & echo $!; exit 7")
    (orphan,) = _pids(proc, 1)
    deadline = time.monotonic() + 5
    while (info := proctree.stat(orphan)) is not None and info.state != "Z" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert info is not None
    assert (info.state, info.ppid) == ("Z", os.getpid())  # a zombie, reparented to us
    reaped = proctree.reap_orphans({proc.pid})
    assert orphan in reaped
    assert proc.pid not in reaped
    assert proc.wait() == 7
    assert proctree.stat(orphan) is None


def test_reap_orphans_spares_children_in_our_session() -> None:
    """A zombie child the agent spawned itself (our session) is never reaped by reap_orphans()."""
    proc = subprocess.Popen(["/bin/sh", "-c", "exit 5"])
    deadline = time.monotonic() + 5
    while (info := proctree.stat(proc.pid)) is not None and info.state != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.pid not in proctree.reap_orphans(set())
    assert proc.wait() == 5


def test_subreaper_can_be_switched() -> None:
    """become_subreaper() reports success on Linux, on and off."""
    assert proctree.become_subreaper(on=False)
    assert proctree.become_subreaper(on=True)
