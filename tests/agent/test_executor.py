"""Execution: runs one task with the real /bin/sh and reports its Outcome (no mocks)."""

from __future__ import annotations

import asyncio
import os
import pwd
import signal
import stat
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from cloudassist.agent import proctree
from cloudassist.agent.executor import Execution, Outcome, TaskSpec, live_shell_pids, remove_stale_script_dirs
from cloudassist.agent.output import OutputBuffer

EURO = "€".encode()


_executions: list[Execution] = []


def execution(task: TaskSpec, buffer: OutputBuffer | None = None) -> Execution:
    """An Execution whose processes the module teardown will look for."""
    _executions.append(Execution(task, buffer or OutputBuffer()))
    return _executions[-1]


def _leftovers() -> set[int]:
    """Processes still carrying the environment marker of one of this module's executions."""
    needles = [b"\0" + e.marker.encode() + b"\0" for e in _executions]
    found = set()
    for pid in proctree.table():
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = b"\0" + f.read()
        except OSError:
            continue
        if any(n in environ for n in needles):
            found.add(pid)
    return found


@pytest.fixture(autouse=True, scope="module")
def subreaper() -> Iterator[None]:
    """The test process is a child subreaper, as the agent is. At the end no process of any task run
    here may be left (tests that leave some on purpose clean them up), and zombies are reaped."""
    assert proctree.become_subreaper()
    yield
    left = _leftovers()
    cleanup(left)
    proctree.become_subreaper(on=False)
    proctree.reap_orphans(live_shell_pids())
    assert not left, f"task processes left behind: {left}"


def spec(content: bytes | str, timeout: float = 30, **kwargs: Any) -> TaskSpec:
    body = content.encode() if isinstance(content, str) else content
    return TaskSpec(task_id=kwargs.pop("task_id", "t-test"), command_type=kwargs.pop("command_type", "RunShellScript"),
                    content=body, timeout=timeout, **kwargs)


async def run(task: TaskSpec, buffer: OutputBuffer | None = None) -> Outcome:
    return await execution(task, buffer).run()


async def wait_for_output(buffer: OutputBuffer, lines: int, seconds: float = 10) -> list[bytes]:
    """Streams the head as the agent loop does until `lines` full lines have arrived."""
    seen = b""
    deadline = time.monotonic() + seconds
    while seen.count(b"\n") < lines:
        assert time.monotonic() < deadline, f"only got {seen!r}"
        seen += buffer.take_head_chunk()
        await asyncio.sleep(0.01)
    return seen.splitlines()


async def eventually(predicate: Callable[[], bool], seconds: float = 5) -> bool:
    """Polls `predicate` every 10 ms until it holds (True) or `seconds` pass (False)."""
    for _ in range(int(seconds * 100)):
        if predicate():
            return True
        await asyncio.sleep(0.01)
    return predicate()


def gone(pid: int) -> bool:
    """Not running, and not left as a zombie child of ours either."""
    info = proctree.stat(pid)
    return info is None or (info.state == "Z" and info.ppid != os.getpid())


def cleanup(pids: set[int]) -> None:
    for pid in pids:
        proctree.kill_tree(pid)
    deadline = time.monotonic() + 5
    while proctree.reap_dead(pids) and time.monotonic() < deadline:
        time.sleep(0.01)


async def test_echo() -> None:
    """A script's output comes back with kind finished, exit code 0 and both timestamps."""
    before = time.time()
    out = await run(spec("echo hello"))
    assert (out.kind, out.exit_code, out.output, out.dropped) == ("finished", 0, b"hello\n", 0)
    assert out.started_at is not None
    assert before <= out.started_at <= out.ended_at <= time.time()


async def test_exit_code() -> None:
    """The shell's exit code is reported as is; a non-zero exit is still kind finished."""
    out = await run(spec("echo x; exit 3"))
    assert (out.kind, out.exit_code, out.output) == ("finished", 3, b"x\n")


async def test_stdout_and_stderr_keep_their_order() -> None:
    """stdout and stderr share one pipe, so their lines arrive in the order they were written."""
    out = await run(spec("echo a; echo b >&2; echo c; echo d >&2"))
    assert out.output == b"a\nb\nc\nd\n"


async def test_runs_as_a_file_with_dollar_zero_and_long_content(tmp_path: Path) -> None:
    """The script runs as `/bin/sh <file>`: $0 is the file, stdin is /dev/null, and a 1 MB script runs."""
    body = "#" + "x" * 1023 + "\n"
    content = body * 1024 + 'echo "$0"; cat; readlink /proc/$$/fd/0; echo end\n'
    out = await run(spec(content, task_id="t-long/../x", script_dir=tmp_path))
    path, dev_null, end = out.output.decode().splitlines()
    assert Path(path).parent.parent == tmp_path
    assert Path(path).name == "t-long_.._x.sh"
    assert (dev_null, end) == ("/dev/null", "end")


async def test_non_utf8_bytes_are_preserved() -> None:
    """Bytes that are not UTF-8, in the script and in the output, come through unchanged."""
    out = await run(spec(b"printf '\\377\\376\\200'; echo '\xe9\xff caf\xc3\xa9'"))
    assert out.output == b"\xff\xfe\x80\xe9\xff caf\xc3\xa9\n"


async def test_large_output_keeps_head_and_tail() -> None:
    """100 KB of output: the first and last 12 KB are kept, the exact middle is counted as dropped, and
    neither cut splits a character although both limits fall inside one."""
    text = b"x" + EURO * 33000  # a euro sign straddles byte 12288 and the start of the last 12288 bytes
    stream = text + b"\n"
    buffer = OutputBuffer()
    out = await run(spec(b"cat <<'EOF'\n" + text + b"\nEOF\n"), buffer)
    assert buffer.total == len(stream) == 99002
    kept = 12286  # 12288 rounded down to a character edge, on both sides
    assert out.output == stream[:kept] + stream[-kept:]
    assert out.dropped == len(stream) - 2 * kept
    out.output[:kept].decode()
    out.output[kept:].decode()


async def test_streamed_head_plus_output_is_everything() -> None:
    """What the agent streams with take_head_chunk while the task runs, plus Outcome.output, is the output."""
    buffer = OutputBuffer()
    task_run = execution(spec("for i in 1 2 3; do echo line $i; sleep 0.2; done"), buffer)
    task = asyncio.create_task(task_run.run())
    streamed = b""
    while not task.done():
        streamed += buffer.take_head_chunk()
        await asyncio.sleep(0.05)
    out = task.result()
    assert streamed.startswith(b"line 1\n")
    assert streamed + out.output == b"line 1\nline 2\nline 3\n"


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the current RSS


async def test_200mb_output_keeps_memory_bounded() -> None:
    """A task printing 200 MB costs the agent a few MB at most, not 200 MB: both the RSS after the run and
    its peak during the run (VmHWM, reset first through /proc/self/clear_refs) stay within 16 MB of before."""
    size = 200_000_000
    _reset_peak_rss()
    before = _status_kb("VmRSS")
    started = time.monotonic()
    out = await run(spec(f"head -c {size} /dev/zero | tr '\\0' x"))
    elapsed = time.monotonic() - started
    growth, peak = _status_kb("VmRSS") - before, _status_kb("VmHWM") - before
    assert out.kind == "finished"
    assert out.exit_code == 0
    assert len(out.output) + out.dropped == size
    assert out.output == b"x" * (2 * 12 * 1024)
    print(f"\n200 MB of output in {elapsed:.2f} s: RSS growth {growth} kB, peak growth {peak} kB")
    assert growth < 16 * 1024
    assert peak < 16 * 1024


async def test_timeout_kills_the_whole_tree() -> None:
    """On timeout (ProcessTree), run() returns kind timeout and not one of the task's processes is left:
    children, grandchildren, a `setsid` child, a double-forked daemon and children holding stdout open."""
    script = """
        sleep 1000 & echo $!
        sh -c 'sleep 1000 & echo $!; sleep 1000' & echo $!
        setsid sleep 1000 & echo $!
        (setsid sh -c 'echo $$; exec sleep 1000 >/dev/null 2>&1' &)
        (trap '' TERM HUP; while :; do sleep 1; done) & echo $!
        sleep 1000
    """
    buffer = OutputBuffer()
    task_run = execution(spec(script, timeout=1.5), buffer)
    task = asyncio.create_task(task_run.run())
    pids = {int(line) for line in await wait_for_output(buffer, 6)}
    assert all(proctree.alive(p) for p in pids)
    out = await task
    assert (out.kind, out.exit_code) == ("timeout", 137)
    assert out.started_at is not None
    print(f"\ntimeout to shell reaped for a tree of {len(pids) + 2}: {out.ended_at - out.started_at - 1.5:.3f} s")
    assert 1.5 <= out.ended_at - out.started_at < 2.5
    left = {p for p in pids | {task_run.pid or 0} if not gone(p)}
    assert not left


async def test_process_mode_leaves_children_on_timeout() -> None:
    """TerminationMode=Process kills the shell alone at the timeout: its child lives on (and holding stdout
    open, it delays run() by the short drain only)."""
    buffer = OutputBuffer()
    task_run = execution(spec("sleep 1000 & echo $!; sleep 1000", timeout=0.5, termination_mode="Process"), buffer)
    task = asyncio.create_task(task_run.run())
    (child,) = [int(line) for line in await wait_for_output(buffer, 1)]
    out = await task
    assert task_run.pid is not None
    survivors = proctree.members(task_run.pid, task_run.marker) - {task_run.pid}  # both sleeps live on
    try:
        assert (out.kind, out.exit_code) == ("timeout", 137)
        assert out.started_at is not None
        assert out.ended_at - out.started_at < 1.5
        assert proctree.alive(child)
        assert child in survivors
        assert len(survivors) == 2
    finally:
        cleanup(survivors)


async def test_stop_kills_a_running_task_quickly() -> None:
    """stop() on a running `sleep 100` ends run() within a fraction of a second with kind stopped."""
    task_run = execution(spec("sleep 100"), OutputBuffer())
    task = asyncio.create_task(task_run.run())
    assert await eventually(lambda: task_run.started)
    await asyncio.sleep(0.1)
    start = time.monotonic()
    task_run.stop()
    out = await task
    assert time.monotonic() - start < 0.5
    assert (out.kind, out.exit_code) == ("stopped", 137)
    assert task_run.pid is not None
    assert gone(task_run.pid)


async def test_stop_before_start() -> None:
    """stop() before run() means the task never starts: kind stopped, started_at None."""
    task_run = execution(spec("echo never"), OutputBuffer())
    task_run.stop()
    out = await task_run.run()
    assert (out.kind, out.started_at, out.output) == ("stopped", None, b"")
    assert not task_run.started


async def test_cancelling_run_kills_the_task() -> None:
    """Cancelling run() (agent shutdown) kills the task's tree and lets the cancellation through."""
    buffer = OutputBuffer()
    task_run = execution(spec("sleep 1000 & echo $!; sleep 1000"), buffer)
    task = asyncio.create_task(task_run.run())
    (child,) = [int(line) for line in await wait_for_output(buffer, 1)]
    await asyncio.sleep(0.1)
    assert task_run.pid is not None
    pids = {task_run.pid} | proctree.descendants(task_run.pid)
    assert child in pids
    assert len(pids) == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await eventually(lambda: all(gone(p) for p in pids))  # killed, and reaped by the executor


async def test_background_daemon_survives_a_normal_exit() -> None:
    """On a normal exit background children are left alone: a detached `nohup … &` does not delay the
    result, and one still holding stdout delays it by the ~1 s drain only."""
    started = time.monotonic()
    out = await run(spec("nohup sleep 1000 >/dev/null 2>&1 & echo $!"))
    assert time.monotonic() - started < 0.8
    detached = int(out.output)
    out = await run(spec("sleep 1000 & echo $!; echo done"))
    attached = int(out.output.split()[0])
    try:
        assert (out.kind, out.exit_code, out.output.split()[1]) == ("finished", 0, b"done")
        assert out.ended_at - out.started_at < 0.5  # type: ignore[operator]
        assert proctree.alive(detached)
        assert proctree.alive(attached)
    finally:
        cleanup({detached, attached})


async def test_missing_working_directory_is_invalid() -> None:
    """A working directory that does not exist → kind invalid, param workingDirectory, nothing started."""
    out = await run(spec("echo x", working_dir="/nonexistent/dir"))
    assert (out.kind, out.invalid_param, out.started_at) == ("invalid", "workingDirectory", None)
    assert "/nonexistent/dir" in out.error


async def test_missing_user_is_invalid() -> None:
    """A username with no passwd entry → kind invalid, param username, nothing started."""
    out = await run(spec("echo x", username="no-such-user-ca"))
    assert (out.kind, out.invalid_param, out.started_at) == ("invalid", "username", None)


@pytest.mark.parametrize("command_type", ["RunBatScript", "RunPowerShellScript", "RunPythonScript"])
async def test_windows_types_are_invalid(command_type: str, tmp_path: Path) -> None:
    """A type Linux cannot run → kind invalid, param TypeInvalid, and the script never runs."""
    flag = tmp_path / "ran"
    out = await run(spec(f"touch {flag}", command_type=command_type))
    assert (out.kind, out.invalid_param, out.started_at) == ("invalid", "TypeInvalid", None)
    assert not flag.exists()


async def test_launch_failure_is_an_error() -> None:
    """An OSError before the shell runs (here: the script cannot be written) → kind error with the detail."""
    out = await run(spec("echo x", script_dir=Path("/proc/1/no-such-dir")))
    assert (out.kind, out.started_at) == ("error", None)
    assert "no-such-dir" in out.error


async def test_default_working_dir_is_home_and_env_is_added() -> None:
    """Without working_dir the agent's user runs in its home (root: /root); `env` adds variables."""
    home = pwd.getpwuid(os.geteuid()).pw_dir
    expected = home if await asyncio.to_thread(os.path.isdir, home) else "/"
    out = await run(spec('pwd; echo "$EXTRA"', env={"EXTRA": "v 1"}))
    assert out.output.decode().splitlines() == [expected, "v 1"]


async def test_script_file_is_private_and_removed(tmp_path: Path) -> None:
    """While the task runs its script file is 0700 in a 0700 directory (not world-readable); both are
    gone once run() returns."""
    buffer = OutputBuffer()
    task_run = execution(spec('echo "$0"; sleep 100', script_dir=tmp_path), buffer)
    task = asyncio.create_task(task_run.run())
    (path,) = [Path(line.decode()) for line in await wait_for_output(buffer, 1)]
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    task_run.stop()
    await task
    assert os.listdir(tmp_path) == []  # the private directory went with it


def _owner(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return None


async def test_stale_script_dirs_are_swept(tmp_path: Path) -> None:
    """remove_stale_script_dirs() removes script directories a killed agent left behind, keeps the one of a
    run still live in this process, and touches nothing else."""
    stale = tmp_path / "cloudassist-stale"
    stale.mkdir()
    (stale / "t-1.sh").write_text("echo secret")
    other = tmp_path / "unrelated"
    other.mkdir()
    buffer = OutputBuffer()
    task_run = execution(spec('echo "$0"; sleep 100', script_dir=tmp_path), buffer)
    task = asyncio.create_task(task_run.run())
    (live,) = [Path(line.decode()).parent for line in await wait_for_output(buffer, 1)]
    assert remove_stale_script_dirs(tmp_path) == [stale]
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "unrelated"])
    task_run.stop()
    await task


@pytest.fixture
def user() -> Iterator[tuple[str, str]]:
    """A throwaway user with a home and a supplementary group, deleted afterwards."""
    name, group = f"catest{uuid.uuid4().hex[:8]}", f"cagrp{uuid.uuid4().hex[:8]}"
    subprocess.run(["groupadd", group], check=True)
    try:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", "-G", group, name], check=True)
        try:
            yield name, group
        finally:
            uid = pwd.getpwnam(name).pw_uid
            cleanup({p for p in proctree.table() if _owner(p) == uid})
            subprocess.run(["userdel", "-r", name], check=False, capture_output=True)
    finally:
        subprocess.run(["groupdel", group], check=False)


async def test_runs_as_another_user(user: tuple[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """username runs the script as that user, with its supplementary groups, HOME/USER/LOGNAME/SHELL from
    passwd, cwd its home, a script file it owns (0700), and none of the agent's own environment."""
    name, group = user
    monkeypatch.setenv("AGENT_SECRET", "s3cret")
    home = pwd.getpwnam(name).pw_dir
    out = await run(spec('id -un; id -Gn; echo "$HOME $USER $LOGNAME $SHELL"; pwd; stat -c "%U %a" "$0" '
                         '"$(dirname "$0")"; echo "secret=$AGENT_SECRET extra=$EXTRA"',
                         username=name, env={"EXTRA": "e"}))
    assert (out.kind, out.exit_code) == ("finished", 0), out
    whoami, groups, env, cwd, file_owner, dir_owner, secret = out.output.decode().splitlines()
    assert whoami == name
    assert group in groups.split()
    assert env == f"{home} {name} {name} /bin/sh"
    assert cwd == home
    assert file_owner == dir_owner == f"{name} 700"
    assert secret == "secret= extra=e"


async def test_stop_is_idempotent_and_harmless_after_the_end() -> None:
    """stop() after run() returned, or twice, changes nothing and raises nothing."""
    task_run = execution(spec("exit 0"), OutputBuffer())
    out = await task_run.run()
    task_run.stop()
    task_run.stop()
    assert out.kind == "finished"


async def test_no_zombies_after_many_runs() -> None:
    """A hundred runs, five at a time, each killing a shell and two children at its timeout, leave no
    zombie of theirs behind and no shell registered as live."""
    shells: set[int] = set()
    for _ in range(20):
        runs = [execution(spec("sleep 100 & sleep 100", timeout=0.05)) for _ in range(5)]
        outs = await asyncio.gather(*(r.run() for r in runs))
        assert {o.kind for o in outs} == {"timeout"}
        shells |= {r.pid for r in runs if r.pid is not None}
    assert len(shells) == 100
    zombies = [p for p in proctree.table().values() if p.state == "Z" and (p.session in shells or p.pid in shells)]
    assert zombies == []
    assert not live_shell_pids() & shells


def test_signal_exit_codes_follow_the_shell_convention() -> None:
    """A shell ended by signal N reports 128 + N, as sh itself would."""
    from cloudassist.agent.executor import _exit_code

    assert (_exit_code(-signal.SIGKILL), _exit_code(-signal.SIGTERM), _exit_code(5), _exit_code(None)) == (
        137, 143, 5, -1)
