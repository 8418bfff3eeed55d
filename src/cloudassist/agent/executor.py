"""Run one task's script and report what happened: the agent's executor (Linux).

What it does differently from the official agent (agent-protocol.md §1.6-§1.7, field-lessons.md §4):

* the script runs as a file, `/bin/sh <file>`, from a private 0700 directory owned by the task's user, and
  both are removed afterwards; the file is never world-readable;
* `username` switches uid, gid and the user's supplementary groups, with HOME/USER/LOGNAME/SHELL from
  the passwd entry; cwd defaults to that user's home;
* stdin is /dev/null, stdout and stderr share one pipe (their order is kept) read into a bounded
  `OutputBuffer`, so a task printing gigabytes costs O(head + tail) memory;
* every task gets its own session; on timeout or stop, TerminationMode=ProcessTree kills the shell and
  everything it started (`proctree.kill_tree`: descendants, session, and an environment marker for
  daemons), Process kills the shell alone;
* the task ends when the shell exits; pipes held open by background children are drained for at most
  `DRAIN_SECONDS`, so a daemon started with `nohup … &` neither hangs the task nor gets killed by it.

Call `run()` and `stop()` from the event loop's thread. Cancelling `run()` kills the task like `stop()`
and lets the CancelledError through; otherwise `run()` never raises.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pwd
import re
import shutil
import signal
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from cloudassist.agent import proctree
from cloudassist.agent.output import OutputBuffer, PipeReader

SHELL = "/bin/sh"
DRAIN_SECONDS = 1.0  # how long output is still read after the shell exited
KILL_WAIT_SECONDS = 10.0  # how long a SIGKILLed shell may take to be reaped before run() gives up on it
READ_CHUNK = 64 * 1024
MARKER_ENV = "CLOUDASSIST_EXECUTION"  # unique per execution; proctree finds daemonised descendants by it
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# For a different user, the agent's own environment is not passed on (it may hold the agent's secrets), only:
PASSED_TO_OTHER_USERS = frozenset({"PATH", "LANG", "LANGUAGE", "TZ", "TERM"})

Kind = Literal["finished", "timeout", "stopped", "invalid", "error"]

SCRIPT_DIR_PREFIX = "cloudassist-"

_live_shells: set[int] = set()
_live_script_dirs: set[Path] = set()


def live_shell_pids() -> frozenset[int]:
    """Pids of the shells being waited for now: pass them to `proctree.reap_orphans`."""
    return frozenset(_live_shells)


def remove_stale_script_dirs(script_dir: Path = Path("/tmp")) -> list[Path]:  # noqa: S108
    """Remove the private script directories a killed agent left under `script_dir` (their scripts may hold
    filled-in parameters), except those of runs live in this process. Call at agent startup."""
    removed = []
    with contextlib.suppress(OSError):
        for entry in script_dir.iterdir():
            if entry.name.startswith(SCRIPT_DIR_PREFIX) and entry not in _live_script_dirs and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry)
    return removed


@dataclass(frozen=True)
class TaskSpec:
    """One task as the agent received it."""

    task_id: str
    command_type: str  # RunShellScript | RunBatScript | RunPowerShellScript
    content: bytes  # the script, already decoded (custom params already filled by the server)
    timeout: float  # seconds; math.inf = none
    working_dir: str = ""  # "" = the user's home (root: /root; fall back to / if missing)
    username: str = ""  # "" = the agent's own user
    termination_mode: str = "ProcessTree"  # Process | ProcessTree (anything else counts as ProcessTree)
    env: Mapping[str, str] = field(default_factory=dict)  # extra env vars
    script_dir: Path = Path("/tmp")  # noqa: S108 - holds a private mkdtemp dir per task, never a bare file


@dataclass(frozen=True)
class Outcome:
    """What happened to one task."""

    kind: Kind
    exit_code: int  # shell's exit code; 128+N when a signal N ended it (137 = SIGKILL); -1 if none
    output: bytes  # the REMAINING output (OutputBuffer.finish()[0]) — the caller streamed the head already
    dropped: int
    started_at: float | None  # time.time() when the process started (None if it never started)
    ended_at: float  # time.time() when the shell's exit was seen (or when run() gave up)
    invalid_param: str = ""  # for kind=invalid: "workingDirectory" | "username" | "TypeInvalid"
    error: str = ""  # human-readable detail for invalid/error


class _Invalid(Exception):
    def __init__(self, param: str, detail: str) -> None:
        super().__init__(detail)
        self.param = param


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int
    groups: list[int]
    name: str
    home: str
    shell: str
    switch: bool  # setuid/setgid/setgroups in the child


def _account(username: str) -> _Account:
    if not username:
        try:
            pw = pwd.getpwuid(os.geteuid())
        except KeyError:  # a uid without a passwd entry (containers): keep what we have
            home = os.environ.get("HOME", "/")
            return _Account(os.geteuid(), os.getegid(), [], "", home, SHELL, switch=False)
        return _Account(pw.pw_uid, pw.pw_gid, [], pw.pw_name, pw.pw_dir, pw.pw_shell, switch=False)
    try:
        pw = pwd.getpwnam(username)
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    except (KeyError, ValueError, OSError) as exc:
        raise _Invalid("username", f"UserNotExist: {username}") from exc
    switch = os.geteuid() == 0 or pw.pw_uid != os.geteuid()
    return _Account(pw.pw_uid, pw.pw_gid, groups, pw.pw_name, pw.pw_dir, pw.pw_shell, switch)


def _environment(spec: TaskSpec, account: _Account, marker: str) -> dict[str, str]:
    if spec.username:
        env = {k: v for k, v in os.environ.items() if k in PASSED_TO_OTHER_USERS or k.startswith("LC_")}
        env.update(HOME=account.home, USER=account.name, LOGNAME=account.name, SHELL=account.shell or SHELL)
    else:  # as the official agent: its own environment, plus HOME
        env = dict(os.environ)
        env.setdefault("HOME", account.home)
        if account.name:
            env.setdefault("USER", account.name)
            env.setdefault("LOGNAME", account.name)
    env.setdefault("PATH", DEFAULT_PATH)
    env.update(spec.env)
    env[MARKER_ENV] = marker
    return env


def _write_script(spec: TaskSpec, account: _Account) -> Path:
    """The script in a new private directory under script_dir; both 0700 and owned by the task's user."""
    spec.script_dir.mkdir(mode=0o711, parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(prefix=SCRIPT_DIR_PREFIX, dir=spec.script_dir))
    _live_script_dirs.add(directory)
    try:
        name = re.sub(r"[^A-Za-z0-9._-]", "_", spec.task_id)[:100].lstrip(".") or "task"
        path = directory / f"{name}.sh"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o700)
        with os.fdopen(fd, "wb") as f:
            if account.switch:
                os.fchown(f.fileno(), account.uid, account.gid)
            os.fchmod(f.fileno(), 0o700)
            f.write(spec.content)
        if account.switch:
            os.chown(directory, account.uid, account.gid)
    except BaseException:
        _remove_script_dir(directory)
        raise
    return path


def _remove_script_dir(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    _live_script_dirs.discard(directory)


def _exit_code(returncode: int | None) -> int:
    return -1 if returncode is None else 128 - returncode if returncode < 0 else returncode


class Execution:
    """One run of one task. `run()` once; `stop()` any time, from the same event loop thread."""

    def __init__(self, spec: TaskSpec, buffer: OutputBuffer) -> None:
        self.spec = spec
        self.buffer = buffer
        self._proc: asyncio.subprocess.Process | None = None
        self._started_at: float | None = None
        self._stop_requested = False
        self._kill_reason: Kind | None = None  # set when we killed the shell
        self._victims: set[int] = set()  # pids kill_tree signalled: reaped after the kill
        self._token = uuid.uuid4().hex  # MARKER_ENV's value in the task's environment

    @property
    def started(self) -> bool:
        """True once the shell has been spawned."""
        return self._proc is not None

    @property
    def pid(self) -> int | None:
        """The shell's pid (also its session and process group id), once started."""
        return None if self._proc is None else self._proc.pid

    @property
    def marker(self) -> str:
        """NAME=value set in the task's environment: `proctree.kill_tree(pid, marker=…)` finds its daemons."""
        return f"{MARKER_ENV}={self._token}"

    def stop(self) -> None:
        """Request a stop (StopInvocation): kill per termination_mode now; run() then returns kind="stopped"."""
        self._stop_requested = True
        self._kill("stopped")

    def _kill(self, reason: Kind) -> None:
        proc = self._proc
        if proc is None or proc.returncode is not None:
            return
        self._kill_reason = self._kill_reason or reason
        if self.spec.termination_mode == "Process":
            proctree.kill_process(proc.pid)
        else:
            self._victims |= proctree.kill_tree(proc.pid, marker=self.marker)

    def _outcome(self, kind: Kind, exit_code: int = -1, param: str = "", error: str = "") -> Outcome:
        output, dropped = self.buffer.finish()
        return Outcome(kind, exit_code, output, dropped, self._started_at, time.time(), param, error)

    async def run(self) -> Outcome:
        """Validate, write the script file, run it, wait (killing on timeout), clean up; never raises."""
        if self._proc is not None:
            return self._outcome("error", error="Execution.run() called twice")
        script: Path | None = None
        try:
            if self._stop_requested:
                return self._outcome("stopped")
            account, cwd = self._validate()
            script = _write_script(self.spec, account)
            return await self._run(script, account, cwd)
        except _Invalid as exc:
            return self._outcome("invalid", param=exc.param, error=str(exc))
        except asyncio.CancelledError:
            self._kill("stopped")
            _reap_later(self._victims - {self.pid or -1}, self.pid or -1)
            raise
        except Exception as exc:  # an OSError launching, mostly: report it, never raise
            return self._outcome("error", error=f"{type(exc).__name__}: {exc}")
        finally:
            if script is not None:
                _remove_script_dir(script.parent)

    def _validate(self) -> tuple[_Account, str]:
        """The account to run as and the working directory, in the official agent's order of checks."""
        spec = self.spec
        if spec.command_type != "RunShellScript":
            raise _Invalid("TypeInvalid", f"{spec.command_type or 'the command type'} cannot run on Linux")
        account = _account(spec.username)
        if spec.working_dir and not os.path.isdir(spec.working_dir):
            raise _Invalid("workingDirectory", f"WorkingDirectoryNotExist: {spec.working_dir}")
        return account, spec.working_dir or (account.home if os.path.isdir(account.home) else "/")

    async def _run(self, script: Path, account: _Account, cwd: str) -> Outcome:
        spec = self.spec
        env = _environment(spec, account, self._token)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        reader: PipeReader | None = None
        try:
            try:
                self._proc = await asyncio.create_subprocess_exec(
                    SHELL, str(script), stdin=asyncio.subprocess.DEVNULL, stdout=write_fd,
                    stderr=asyncio.subprocess.STDOUT, cwd=cwd, env=env, start_new_session=True,
                    user=account.uid if account.switch else None,
                    group=account.gid if account.switch else None,
                    extra_groups=account.groups if account.switch else None,
                )
            finally:
                os.close(write_fd)
            self._started_at = time.time()
            _live_shells.add(self._proc.pid)
            reader = PipeReader(read_fd, self.buffer, READ_CHUNK)
            read_fd = -1
            kind, returncode, error = await self._wait(self._proc)
            ended_at = time.time()
            await reader.drain(DRAIN_SECONDS)
            await self._reap_victims()
        finally:
            if reader is not None:
                reader.close()
            if read_fd >= 0:
                os.close(read_fd)
        output, dropped = self.buffer.finish()
        return Outcome(kind, _exit_code(returncode), output, dropped, self._started_at, ended_at, error=error)

    async def _wait(self, proc: asyncio.subprocess.Process) -> tuple[Kind, int | None, str]:
        """Wait for the shell, killing it at the timeout; (kind, returncode, error)."""
        if self._stop_requested:  # stop() came while the shell was being spawned
            self._kill("stopped")
        timeout = None if math.isinf(self.spec.timeout) else max(0.0, self.spec.timeout)
        # A task of its own, never cancelled: asyncio waits for the shell until it is reaped, and only then
        # may reap_orphans() touch its pid.
        exited = asyncio.ensure_future(proc.wait())
        exited.add_done_callback(lambda _: _live_shells.discard(proc.pid))
        done, _ = await asyncio.wait({exited}, timeout=timeout)
        if not done:
            self._kill("timeout")
            done, _ = await asyncio.wait({exited}, timeout=KILL_WAIT_SECONDS)
        if not done:
            reason = self._kill_reason or "timeout"
            return reason, None, f"the shell (pid {proc.pid}) did not exit {KILL_WAIT_SECONDS:g} s after SIGKILL"
        returncode = exited.result()
        # Killed by us, or did it exit on its own just before the kill landed? Its status says which.
        if self._kill_reason is not None and returncode == -signal.SIGKILL:
            return self._kill_reason, returncode, ""
        return "finished", returncode, ""

    async def _reap_victims(self) -> None:
        """Reap the killed processes that ended up as our zombie children (we are a subreaper)."""
        if not self._victims:
            return
        shell = self._proc.pid if self._proc is not None else -1
        pending = (self._victims | proctree.children_in_session(shell)) - {shell}  # + any only killpg() reached
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 1.0
        while pending := proctree.reap_dead(pending, keep=live_shell_pids() | {shell}):
            if loop.time() > deadline:
                break
            await asyncio.sleep(0.01)


def _reap_later(pids: set[int], shell: int, tries: int = 100) -> None:
    """Reap `pids` from loop callbacks, every 50 ms for at most `tries` times (when run() cannot await)."""
    pids = proctree.reap_dead(pids, keep=live_shell_pids() | {shell})
    if pids and tries > 0:
        asyncio.get_running_loop().call_later(0.05, _reap_later, pids, shell, tries - 1)
