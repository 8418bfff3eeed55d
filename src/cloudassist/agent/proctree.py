"""Process trees on Linux, read from /proc: find a task's processes, kill them all, reap what is left.

A task's processes are found three ways, because each alone misses some:

* ppid links from the task's shell (`descendants`): children and grandchildren while their parents live;
* the shell's session and process group: members whose parent died and that were reparented elsewhere;
* an environment marker (`marker`, a unique NAME=value the executor puts in the task's environment) in
  /proc/<pid>/environ: descendants that both double-forked and called setsid (daemons), reparented to us
  (`become_subreaper`) or to init. A process that clears its environment *and* escapes the session *and*
  is orphaned escapes all three; only a cgroup would catch it.

Signals go through pidfds when the kernel has them, after checking the pid still names the process the walk
saw (same start time), so a pid reused between the walk and the kill is never signalled.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys
import time
from dataclasses import dataclass

PR_SET_CHILD_SUBREAPER = 36
MAX_ROUNDS = 1000  # walks in kill_tree; a fork bomb is stopped long before this
STOP_WAIT_SECONDS = 0.5  # how long kill_tree waits for SIGSTOPped processes to stop (a D-state one may not)


@dataclass(frozen=True)
class ProcInfo:
    """The fields of /proc/<pid>/stat that we use."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    starttime: int


def _read(path: str, size: int = 1024) -> bytes | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, size)
        while len(data) == size and (more := os.read(fd, size)):  # rare: a long environ
            data += more
        return data
    except OSError:
        return None
    finally:
        os.close(fd)


def stat(pid: int) -> ProcInfo | None:
    """/proc/<pid>/stat, or None if the process is gone."""
    raw = _read(f"/proc/{pid}/stat")
    if not raw:
        return None
    # comm (field 2) may hold spaces and parentheses; everything after the last ")" is well-formed
    fields = raw[raw.rindex(b")") + 2 :].split()
    return ProcInfo(pid, fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19]))


def table() -> dict[int, ProcInfo]:
    """Every process on the host (thread-group leaders), by pid."""
    out: dict[int, ProcInfo] = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (info := stat(int(name))) is not None:
            out[info.pid] = info
    return out


def alive(pid: int) -> bool:
    """True if `pid` exists and is not a zombie."""
    info = stat(pid)
    return info is not None and info.state not in ("Z", "X")


def _closure(roots: set[int], procs: dict[int, ProcInfo]) -> set[int]:
    children: dict[int, list[int]] = {}
    for info in procs.values():
        children.setdefault(info.ppid, []).append(info.pid)
    seen: set[int] = set()
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, ()))
    return seen


def descendants(pid: int) -> set[int]:
    """Every process below `pid` by ppid links (not `pid` itself), as /proc shows them now."""
    return _closure({pid}, table()) - {pid}


def _has_marker(pid: int, needle: bytes) -> bool:
    environ = _read(f"/proc/{pid}/environ", 16384)  # None: gone, or not ours to read
    return environ is not None and needle in b"\0" + environ


def members(pid: int, marker: str = "", procs: dict[int, ProcInfo] | None = None) -> set[int]:
    """`pid`, its descendants, its session and group, the processes holding `marker` and all below them."""
    procs = table() if procs is None else procs
    roots = {pid} | {p.pid for p in procs.values() if p.session == pid or p.pgrp == pid}
    if marker:
        needle = b"\0" + marker.encode() + b"\0"
        roots |= {p for p in procs if p not in roots and _has_marker(p, needle)}
    return (_closure(roots, procs) & (procs.keys() | {pid})) - {os.getpid(), os.getppid(), 1}


class _Signaller:
    """Sends signals to processes seen in a walk, through pidfds pinned to the process the walk saw."""

    def __init__(self) -> None:
        self.fds: dict[int, int | None] = {}  # pid -> pidfd (None: no pidfd, fall back to kill(2))

    def pin(self, info: ProcInfo) -> bool:
        fd: int | None = None
        with contextlib.suppress(OSError, AttributeError):  # no pidfd support, out of fds: use plain kill
            fd = os.pidfd_open(info.pid)
        again = stat(info.pid)
        if again is None or again.starttime != info.starttime:  # exited, or the pid now names someone else
            if fd is not None:
                os.close(fd)
            return False
        self.fds[info.pid] = fd
        return True

    def send(self, pid: int, sig: int) -> None:
        fd = self.fds.get(pid)
        with contextlib.suppress(OSError):
            if fd is not None:
                signal.pidfd_send_signal(fd, sig)
            else:
                os.kill(pid, sig)

    def close(self) -> None:
        for fd in self.fds.values():
            if fd is not None:
                os.close(fd)
        self.fds.clear()


def kill_tree(pid: int, *, marker: str = "") -> set[int]:
    """SIGKILL `pid` and everything `members` finds, freezing them first so none can fork away meanwhile.

    Each walk SIGSTOPs the processes it finds and waits until they are stopped; walks repeat until one finds
    nothing new (a stopped process cannot fork, and one stopped mid-fork shows its child to the next walk).
    Then SIGKILL to every one of them and to the process group `pid`. Returns the pids signalled.
    """
    sig = _Signaller()
    try:
        for _ in range(MAX_ROUNDS):
            procs = table()
            new = [procs[p] for p in members(pid, marker, procs) - sig.fds.keys() if p in procs]
            new = [info for info in new if sig.pin(info)]
            if not new:
                break
            for info in new:
                sig.send(info.pid, signal.SIGSTOP)
            _await_stopped({info.pid for info in new})
        for p in sig.fds:
            sig.send(p, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)
        return set(sig.fds)
    finally:
        sig.close()


def _await_stopped(pids: set[int], seconds: float = STOP_WAIT_SECONDS) -> None:
    """Wait until each of `pids` is stopped or dead. SIGSTOP to one process does not abort a fork it is in
    the middle of; once it shows as stopped, that fork is over and the child is visible to the next walk."""
    deadline = time.monotonic() + seconds
    while pids and time.monotonic() < deadline:
        pids = {p for p in pids if (info := stat(p)) is not None and info.state not in "TtZX"}
        if pids:
            time.sleep(0.0005)


def kill_process(pid: int) -> None:
    """SIGKILL `pid` alone (TerminationMode=Process); its children live on."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def become_subreaper(on: bool = True) -> bool:
    """Make this process a child subreaper (prctl PR_SET_CHILD_SUBREAPER), so orphans of its descendants are
    reparented to it rather than to init and stay in its tree. False if the platform does not allow it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap(pids: set[int], *, keep: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """waitpid(WNOHANG) each of `pids` that is a zombie child of ours and not in `keep`; returns those reaped."""
    me = os.getpid()
    reaped: set[int] = set()
    for pid in pids - keep:
        info = stat(pid)
        if info is None or info.ppid != me or info.state != "Z":
            continue
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                reaped.add(pid)
    return reaped


def reap_dead(pids: set[int], *, keep: set[int] | frozenset[int] = frozenset()) -> set[int]:
    """Reap those of `pids` that are our zombie children (`reap`); return the ones not settled yet.

    Settled: gone, or a zombie that someone else will reap — its parent is neither us nor one of `pids`
    or `keep` (those are dying too, and their zombie children will be reparented to us, the subreaper).
    """
    reap(pids, keep=keep)
    me, dying = os.getpid(), pids | keep

    def settled(pid: int) -> bool:
        info = stat(pid)
        return info is None or (info.state in ("Z", "X") and info.ppid != me and info.ppid not in dying)

    return {p for p in pids if not settled(p)}


def children_in_session(session: int) -> set[int]:
    """Our child processes (zombies included) in session or process group `session`."""
    me = os.getpid()
    return {p.pid for p in table().values() if p.ppid == me and session in (p.session, p.pgrp)}


def reap_orphans(known: set[int] | frozenset[int]) -> set[int]:
    """Reap zombie children of ours that were reparented to us (we are a subreaper) and are not in `known`.

    `known` must hold every pid someone waits for (the executor's shells: `executor.live_shell_pids()`).
    Zombies in our own session are skipped too: orphans of tasks never are (every task starts a new session),
    while children the agent spawned without a new session belong to whoever spawned them. Call it from the
    thread that spawns the tasks (the event loop), so a shell cannot be spawned unseen in between.
    """
    me, own_session = os.getpid(), os.getsid(0)
    zombies = {
        p.pid for p in table().values() if p.ppid == me and p.state == "Z" and p.session != own_session
    }
    return reap(zombies, keep=known)
