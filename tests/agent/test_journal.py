"""The agent's task journal: a (taskId, invokeVersion) is accepted once, ever, and interrupted runs are found."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from cloudassist.agent import proctree
from cloudassist.agent.journal import Journal


def test_a_second_accept_is_refused_even_after_a_reload(tmp_path: Path) -> None:
    """accept() is True once per (taskId, invokeVersion); a new Journal on the same directory (an agent
    restart) still refuses it, whatever state the first run reached; another invokeVersion is a new run."""
    journal = Journal(tmp_path / "journal")
    assert journal.accept("t-a", 1)
    assert not journal.accept("t-a", 1)
    assert journal.accept("t-b", 1)
    journal.start("t-b", 1, time.time())
    assert journal.accept("t-c", 1)
    journal.start("t-c", 1, time.time())
    journal.done("t-c", 1, "finish")

    reloaded = Journal(tmp_path / "journal")
    for task_id in ("t-a", "t-b", "t-c"):
        assert not reloaded.accept(task_id, 1), task_id
    assert reloaded.accept("t-c", 2)


def test_started_but_unfinished_runs_are_interrupted_and_unstarted_ones_are_forgotten(tmp_path: Path) -> None:
    """After a reload, interrupted() lists exactly the runs that started and never finished (with their
    start time and pid); forget_unstarted() drops runs that never started, which may then be accepted again."""
    journal = Journal(tmp_path / "journal")
    journal.accept("t-queued", 1)
    journal.accept("t-running", 3)
    journal.start("t-running", 3, 1_700_000_000.5)
    journal.set_process("t-running", 3, 4242, 99)
    journal.accept("t-finished", 1)
    journal.start("t-finished", 1, 1_700_000_001.0)
    journal.done("t-finished", 1, "finish")

    reloaded = Journal(tmp_path / "journal")
    [entry] = reloaded.interrupted()
    assert (entry.task_id, entry.invoke_version, entry.started_at, entry.pid, entry.proc_start) == (
        "t-running", 3, 1_700_000_000.5, 4242, 99)
    assert entry.interrupted_report(1_700_000_002.0) == {
        "taskId": "t-running", "invokeVersion": "3", "start": "1700000000500", "end": "1700000002000",
        "errCode": "ExecutionInterrupted", "errDesc": "the agent stopped while the task ran; not run again"}
    assert [e.task_id for e in reloaded.forget_unstarted()] == ["t-queued"]
    assert reloaded.accept("t-queued", 1)
    assert not reloaded.accept("t-running", 3)


def test_entries_are_private_files_written_atomically(tmp_path: Path) -> None:
    """Entries are 0600 files in a 0700 directory; no temporary file is left behind, and a temporary file
    left by a crash mid-write makes no entry and is removed at startup."""
    directory = tmp_path / "journal"
    journal = Journal(directory)
    journal.accept("t-x", 1)
    journal.start("t-x", 1, time.time())
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    files = list(directory.iterdir())
    assert [f.name for f in files] == ["t-x.iv1.json"]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    (directory / ".t-y.iv1.json.0123.tmp").write_text("{half a rec")
    reopened = Journal(directory)
    assert [e.task_id for e in reopened.entries()] == ["t-x"]
    assert reopened.discard_partial_writes() == 1
    assert [f.name for f in directory.iterdir()] == ["t-x.iv1.json"]
    assert reopened.accept("t-y", 1)


def test_only_one_of_many_racing_processes_accepts(tmp_path: Path) -> None:
    """Eight processes accepting the same run at the same moment: exactly one wins (link(2) is atomic)."""
    script = ("import sys; from pathlib import Path; from cloudassist.agent.journal import Journal; "
              "print(Journal(Path(sys.argv[1])).accept('t-race', 1))")
    procs = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "journal")], stdout=subprocess.PIPE,
                              text=True) for _ in range(8)]
    answers = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(answers) == ["False"] * 7 + ["True"]


def test_task_ids_cannot_escape_the_directory(tmp_path: Path) -> None:
    """A hostile task id becomes a file name inside the journal directory, distinct from similar ids."""
    journal = Journal(tmp_path / "journal")
    assert journal.accept("../../etc/passwd", 1)
    assert journal.accept("______etc_passwd", 1)
    assert not journal.accept("../../etc/passwd", 1)
    assert all(p.parent == tmp_path / "journal" for p in (tmp_path / "journal").iterdir())
    assert {e.task_id for e in journal.entries()} == {"../../etc/passwd", "______etc_passwd"}


def test_prune_removes_only_old_finished_entries(tmp_path: Path) -> None:
    """prune() forgets done entries older than the retention, never started or recent ones."""
    journal = Journal(tmp_path / "journal")
    for task_id in ("t-old", "t-new", "t-open"):
        journal.accept(task_id, 1)
        journal.start(task_id, 1, 1000.0)
    journal.done("t-old", 1, "finish", ended_at=1000.0)
    journal.done("t-new", 1, "finish", ended_at=9000.0)
    assert journal.prune(max_age=5000, now=10_000) == 1
    assert {e.task_id for e in journal.entries()} == {"t-new", "t-open"}


def test_a_leftover_process_is_recognised_by_pid_and_start_time(tmp_path: Path) -> None:
    """leftover_pid() names the recorded shell while that very process lives, and nothing when the pid's
    start time differs (the pid was reused) or the process is gone."""
    journal = Journal(tmp_path / "journal")
    proc = subprocess.Popen(["sleep", "30"])
    try:
        info = proctree.stat(proc.pid)
        assert info is not None
        journal.accept("t-live", 1)
        journal.start("t-live", 1, time.time())
        journal.set_process("t-live", 1, proc.pid, info.starttime)
        journal.accept("t-reused", 1)
        journal.start("t-reused", 1, time.time())
        journal.set_process("t-reused", 1, proc.pid, info.starttime + 1)
        entries = {e.task_id: e for e in journal.interrupted()}
        assert entries["t-live"].leftover_pid() == proc.pid
        assert entries["t-reused"].leftover_pid() is None
    finally:
        proc.kill()
        proc.wait()
    assert journal.get("t-live", 1) is not None
    entry = journal.get("t-live", 1)
    assert entry is not None
    assert entry.leftover_pid() is None
    assert os.path.exists(tmp_path / "journal")
