"""A real terminal for a Session Manager shell: a PTY whose slave is the controlling tty of a new session
running the login shell (or a `CommandLine`) of one user.

Decisions (session-protocol.md §5 says what the official agent does; we differ where noted):

* the program is the user's login shell from passwd, started as a login shell (`argv[0]` = `-sh`), so
  /etc/profile and ~/.profile are read; the official agent runs `bash` from its own PATH, not as a login
  shell. A `CommandLine` is split shell-style and run directly, as the official agent does;
* the environment is a login's, not the agent's (which may hold its secrets): HOME, SHELL, USER, LOGNAME,
  PATH, TERM=xterm-256color, LANG (the agent's, else C.UTF-8) and the agent's LC_* and TZ;
* the working directory is the user's home (`/` when it does not exist);
* the slave is owned by the user (mode 0620) when the agent is root, as login(1) leaves a tty;
* the process leads its own session; `kill()` kills it and everything it started (`proctree.kill_tree`:
  descendants, its session and groups, and processes carrying its environment marker).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import pwd
import shlex
import shutil
import struct
import termios
import uuid
from dataclasses import dataclass

from cloudassist.agent import proctree

#: The environment marker proctree finds daemonised descendants by (unique per terminal).
MARKER_ENV = "CLOUDASSIST_SESSION"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
FALLBACK_SHELL = "/bin/sh"


class OpenFailed(Exception):
    """The terminal cannot be opened: no such user, a refused user (root), no shell, a bad command line."""


@dataclass(frozen=True)
class Account:
    """Who the terminal runs as."""

    name: str
    uid: int
    gid: int
    groups: list[int]
    home: str
    shell: str

    @property
    def switch(self) -> bool:
        """True when the child must change uid/gid (the agent runs as someone else)."""
        return self.uid != os.geteuid() or os.geteuid() == 0


def account(name: str, *, allow_root: bool = False) -> Account:
    """The passwd entry of `name`; OpenFailed if there is none, if it is uid or gid 0 and `allow_root` is
    false, or if the agent (not root) would have to switch to another user to run it."""
    try:
        pw = pwd.getpwnam(name)
        groups = os.getgrouplist(pw.pw_name, pw.pw_gid)
    except (KeyError, OSError, ValueError):
        raise OpenFailed(f"no user {name!r} on this machine") from None
    if (pw.pw_uid == 0 or pw.pw_gid == 0) and not allow_root:
        raise OpenFailed(f"user {name!r} has uid or gid 0: sessions as root are off (agent --session-allow-root)")
    if os.geteuid() != 0 and pw.pw_uid != os.geteuid():
        raise OpenFailed(f"the agent does not run as root, so it can open sessions only as its own user, not {name!r}")
    return Account(pw.pw_name, pw.pw_uid, pw.pw_gid, groups, pw.pw_dir, pw.pw_shell or FALLBACK_SHELL)


def argv_of(user: Account, command_line: str) -> tuple[str, list[str]]:
    """(the executable, argv): the login shell (`-sh`), or the command line split shell-style."""
    if not command_line:
        shell = user.shell if os.access(user.shell, os.X_OK) else ""
        if not shell:
            raise OpenFailed(f"the login shell of {user.name!r} ({user.shell}) cannot be run")
        return shell, ["-" + os.path.basename(shell)]
    try:
        argv = shlex.split(command_line)
    except ValueError as exc:
        raise OpenFailed(f"the command line cannot be split: {exc}") from None
    if not argv:
        raise OpenFailed("the command line is empty")
    path = ROOT_PATH if user.uid == 0 else DEFAULT_PATH
    found = argv[0] if "/" in argv[0] else shutil.which(argv[0], path=path)
    if not found or not os.access(found, os.X_OK):
        raise OpenFailed(f"no program {argv[0]!r} (PATH {path})")
    return found, argv


def environment(user: Account, marker: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k.startswith("LC_") or k == "TZ"}
    env.update(
        HOME=user.home,
        SHELL=user.shell,
        USER=user.name,
        LOGNAME=user.name,
        PATH=ROOT_PATH if user.uid == 0 else DEFAULT_PATH,
        TERM="xterm-256color",
        LANG=os.environ.get("LANG") or "C.UTF-8",
    )
    env[MARKER_ENV] = marker
    return env


def _controlling_tty() -> None:  # pragma: no cover - runs in the child between fork and exec
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Terminal:
    """One process on a PTY. `open()` once, then `read()`/`write()`/`resize()`, `wait()`; `kill()` any time."""

    def __init__(self, user: Account, command_line: str = "") -> None:
        self.user = user
        self.executable, self.argv = argv_of(user, command_line)
        self.marker = f"{MARKER_ENV}={uuid.uuid4().hex}"
        self.master = -1
        self.process: asyncio.subprocess.Process | None = None

    async def open(self, rows: int = 24, cols: int = 80) -> None:
        """Start the process on a new PTY; OpenFailed if it cannot start."""
        master, slave = os.openpty()
        try:
            self.master = master
            _set_size(master, rows, cols)
            if self.user.switch and os.geteuid() == 0:
                os.fchown(slave, self.user.uid, _tty_gid(self.user.gid))
                os.fchmod(slave, 0o620)
            cwd = _home_or_root(self.user.home)
            switch = self.user.switch
            self.process = await asyncio.create_subprocess_exec(
                self.argv[0],
                *self.argv[1:],
                executable=self.executable,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                cwd=cwd,
                env=environment(self.user, self.marker.partition("=")[2]),
                start_new_session=True,
                preexec_fn=_controlling_tty,  # one ioctl in the child: the only way to a controlling tty
                user=self.user.uid if switch else None,
                group=self.user.gid if switch else None,
                extra_groups=self.user.groups if switch else None,
            )
        except OSError as exc:
            os.close(master)
            self.master = -1
            raise OpenFailed(f"cannot start {self.executable}: {exc}") from None
        finally:
            os.close(slave)
        os.set_blocking(master, False)

    @property
    def pid(self) -> int:
        return self.process.pid if self.process is not None else -1

    async def read(self, size: int) -> bytes:
        """The next bytes the program wrote (at most `size`); b"" once the PTY is closed (the program and every
        process holding the tty are gone)."""
        loop = asyncio.get_running_loop()
        while True:
            try:
                return os.read(self.master, size)
            except BlockingIOError:
                pass
            except OSError:  # EIO: no process holds the slave any more
                return b""
            ready: asyncio.Future[None] = loop.create_future()
            loop.add_reader(self.master, _wake, ready)
            try:
                await ready
            finally:
                loop.remove_reader(self.master)

    async def write(self, data: bytes) -> None:
        """Type `data` into the terminal (waits while the PTY's input queue is full)."""
        view = memoryview(data)
        while view:
            try:
                written = os.write(self.master, view)
            except BlockingIOError:
                await asyncio.sleep(0.01)
                continue
            except OSError:
                return  # the program is gone
            view = view[written:]

    def resize(self, rows: int, cols: int) -> None:
        """Set the window size (the program gets SIGWINCH)."""
        if self.master >= 0:
            with contextlib.suppress(OSError):
                _set_size(self.master, rows, cols)

    async def wait(self) -> int:
        """The program's exit status (128+N for a signal N)."""
        assert self.process is not None
        code = await self.process.wait()
        return 128 - code if code < 0 else code

    def kill(self) -> None:
        """Kill the program and everything it started (also what it left behind once it exited: its session's
        background jobs and daemons carrying its marker)."""
        if self.process is not None:
            proctree.kill_tree(self.process.pid, marker=self.marker)

    async def aclose(self) -> None:
        """Kill what is left, wait for the program (a few seconds at most) and close the PTY."""
        self.kill()
        if self.process is not None:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await self.process.wait()
        if self.master >= 0:
            os.close(self.master)
            self.master = -1


def _home_or_root(home: str) -> str:
    return home if os.path.isdir(home) else "/"


def _wake(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _tty_gid(fallback: int) -> int:
    import grp

    try:
        return grp.getgrnam("tty").gr_gid
    except KeyError:
        return fallback
