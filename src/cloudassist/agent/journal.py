"""The task journal: one small file per (taskId, invokeVersion), so no one-time task ever runs twice.

The server sends a task again until it hears the task ended (a Running one is in every task list), and an
agent that restarted cannot tell "new" from "already ran" by memory. The journal can:

    accepted  the task was taken from a task list (waiting for a free slot); written with O_EXCL-like
              semantics, so a second `accept` of the same pair fails, in this process or after a restart
    started   written (and fsynced) BEFORE the process is spawned; the pid and its start time follow
    done      the final report is safely in the spool

A write that fails (a full disk) raises OSError and leaves the entry as it was: a run whose `accept` or
`start` could not be written never starts, and is taken again (`claim`) when the server lists it again.

At startup, `started` entries are runs that the previous agent process never finished: the agent reports
them as ExecutionInterrupted (never running them again). `accepted` entries never started, so nothing ran
and they may be forgotten (`forget_unstarted`): if the server still wants them it sends them again.

Every write is atomic and durable: temp file, fsync, rename (or link for `accept`), fsync of the directory.
Done entries are pruned after `RETENTION_SECONDS`: by then the server has long ended the execution (its
timeout is at most a day) and no longer sends it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

from cloudassist.agent import proctree
from cloudassist.agent.identity import fsync_dir, write_atomic

log = logging.getLogger("cloudassist.agent.journal")
State = Literal["accepted", "started", "done"]
RETENTION_SECONDS = 14 * 86_400
_SAFE = re.compile(r"[^A-Za-z0-9_-]")


@dataclass(frozen=True)
class Entry:
    """What the journal knows of one run of one task."""

    task_id: str
    invoke_version: int
    state: State
    accepted_at: float
    started_at: float | None = None  #: time.time() written just before the spawn
    pid: int | None = None  #: the task's shell, once spawned
    proc_start: int | None = None  #: the shell's start time in /proc (clock ticks), to recognise the pid
    marker: str = ""  #: the environment marker of the run's processes, to find daemons that left the tree
    ended_at: float | None = None
    outcome: str = ""  #: the kind of the final report that was spooled
    temp: str = ""  #: a file task's temp file, to remove if the write was cut short

    @property
    def key(self) -> tuple[str, int]:
        return self.task_id, self.invoke_version

    def interrupted_report(self, now: float) -> dict[str, str]:
        """The query of the `task/error` report for a run that an agent restart interrupted."""
        return {
            "taskId": self.task_id,
            "invokeVersion": str(self.invoke_version),
            "start": str(int((self.started_at or self.accepted_at) * 1000)),
            "end": str(int(now * 1000)),
            "errCode": "ExecutionInterrupted",
            "errDesc": "the agent stopped while the task ran; not run again",
        }

    def leftover_pid(self) -> int | None:
        """The run's shell if it still runs (same pid and start time): a leftover of the agent that died."""
        if not self.pid or self.proc_start is None:
            return None
        info = proctree.stat(self.pid)
        return self.pid if info is not None and info.starttime == self.proc_start else None


def _file_name(task_id: str, invoke_version: int) -> str:
    safe = _SAFE.sub("_", task_id)[:100]
    if safe != task_id:  # keep distinct ids distinct after sanitising
        safe += "-" + hashlib.sha256(task_id.encode()).hexdigest()[:16]
    return f"{safe}.iv{int(invoke_version)}.json"


class Journal:
    """The journal in `directory` (created 0700)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def discard_partial_writes(self) -> int:
        """Remove temp files of writes a crash cut short; only while no other process writes (the agent
        calls it at startup, holding the state directory's lock). How many were removed."""
        stale = list(self.directory.glob(".*.tmp"))
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)

    def _path(self, task_id: str, invoke_version: int) -> Path:
        return self.directory / _file_name(task_id, invoke_version)

    @staticmethod
    def _encode(entry: Entry) -> bytes:
        return (json.dumps(asdict(entry), sort_keys=True) + "\n").encode()

    def accept(self, task_id: str, invoke_version: int) -> bool:
        """Record that this run was taken; False if this (taskId, invokeVersion) was ever accepted before."""
        path = self._path(task_id, invoke_version)
        if path.exists():
            return False
        entry = Entry(task_id, int(invoke_version), "accepted", time.time())
        tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(self._encode(entry))
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(tmp, path)  # fails if the name exists: the atomic "first one wins"
            except FileExistsError:
                return False
        finally:
            tmp.unlink(missing_ok=True)
        fsync_dir(self.directory)
        return True

    def claim(self, task_id: str, invoke_version: int) -> bool:
        """`accept`, or True for a run accepted before that never started (its `start` failed: the disk was
        full): nothing of it ran, so it may run now. The caller makes sure it is not waiting in this process
        already (entries of earlier processes are forgotten at startup)."""
        if self.accept(task_id, invoke_version):
            return True
        entry = self.get(task_id, invoke_version)
        return entry is not None and entry.state == "accepted"

    def get(self, task_id: str, invoke_version: int) -> Entry | None:
        """The entry of this run, or None (never accepted, pruned, or unreadable)."""
        return self._read(self._path(task_id, invoke_version))

    def _read(self, path: Path) -> Entry | None:
        try:
            data = json.loads(path.read_bytes())
            return Entry(**data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError) as exc:
            log.warning("unreadable journal entry %s: %s", path.name, exc)
            return None

    def _update(self, task_id: str, invoke_version: int, **changes: Any) -> Entry:
        path = self._path(task_id, invoke_version)
        current = self._read(path)
        if current is None:  # unreadable or missing: rebuild, as the caller knows it was accepted
            current = Entry(task_id, int(invoke_version), "accepted", time.time())
        entry = replace(current, **changes)
        write_atomic(path, self._encode(entry), mode=0o600)
        return entry

    def start(self, task_id: str, invoke_version: int, started_at: float, temp: str = "") -> Entry:
        """Mark the run started; call it BEFORE spawning the process (or, `temp`, creating that file)."""
        return self._update(task_id, invoke_version, state="started", started_at=started_at, temp=temp)

    def set_process(self, task_id: str, invoke_version: int, pid: int, proc_start: int | None,
                    marker: str = "") -> Entry:
        """Record the spawned shell's pid, /proc start time and marker (to find leftovers after a crash)."""
        return self._update(task_id, invoke_version, pid=pid, proc_start=proc_start, marker=marker)

    def done(self, task_id: str, invoke_version: int, outcome: str, ended_at: float | None = None) -> Entry:
        """Mark the run finished; call it after its final report is in the spool."""
        return self._update(
            task_id,
            invoke_version,
            state="done",
            outcome=outcome,
            ended_at=ended_at if ended_at is not None else time.time(),
        )

    def entries(self) -> list[Entry]:
        """Every readable entry, oldest accepted first."""
        found = [e for p in self.directory.glob("*.json") if (e := self._read(p)) is not None]
        return sorted(found, key=lambda e: e.accepted_at)

    def interrupted(self) -> list[Entry]:
        """Runs that started but never finished: call at startup, before running anything."""
        return [e for e in self.entries() if e.state == "started"]

    def forget_unstarted(self) -> list[Entry]:
        """Remove entries that were accepted but never started (nothing ran); call at startup only."""
        forgotten = [e for e in self.entries() if e.state == "accepted"]
        for entry in forgotten:
            self._path(entry.task_id, entry.invoke_version).unlink(missing_ok=True)
        if forgotten:
            fsync_dir(self.directory)
        return forgotten

    def prune(self, max_age: float = RETENTION_SECONDS, now: float | None = None) -> int:
        """Remove done entries that ended more than `max_age` seconds ago; how many were removed."""
        limit = (now if now is not None else time.time()) - max_age
        removed = 0
        for entry in self.entries():
            if entry.state == "done" and (entry.ended_at or entry.accepted_at) < limit:
                with contextlib.suppress(OSError):
                    self._path(entry.task_id, entry.invoke_version).unlink()
                    removed += 1
        if removed:
            fsync_dir(self.directory)
        return removed
