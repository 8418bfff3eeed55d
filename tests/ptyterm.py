"""A command on a real pseudo-terminal, for tests of `cloudassist session`: `spawn` it, read its `Screen`."""

from __future__ import annotations

import asyncio
import fcntl
import os
import struct
import subprocess
import sys
import termios


class Screen:
    """The master side of the client's pty."""

    def __init__(self, master: int) -> None:
        self.master = master
        self.seen = b""

    async def until(self, needle: bytes) -> bytes:
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(30):
            while needle not in self.seen:
                ready: asyncio.Future[None] = loop.create_future()
                loop.add_reader(self.master, lambda f=ready: f.done() or f.set_result(None))
                try:
                    await ready
                finally:
                    loop.remove_reader(self.master)
                try:
                    self.seen += os.read(self.master, 4096)
                except OSError:
                    break
        return self.seen


def spawn(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int, int]:
    """`cloudassist *args` on a new pty (40x100) whose slave is its controlling terminal; (process, master,
    slave)."""
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    proc = subprocess.Popen(
        [sys.executable, "-m", "cloudassist", *args],
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
        preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),
    )
    return proc, master, slave
