"""Issue 8, point 1: accept() failing for want of descriptors is counted, not traced once per try.

asyncio's own loop (the server's fallback where uvloop is missing) reports each failed accept() with a
traceback. A child process with 48 descriptors, asyncio's loop and the server's handler installed
(edge/loop.py) is sent 150 connections: its log holds counted lines, and no traceback.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress

CHILD = r"""
import asyncio, logging, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))
logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s", stream=sys.stdout)
from cloudassist.edge.loop import count_accept_errors

async def main():
    loop = asyncio.get_running_loop()
    count_accept_errors(loop, interval=1.0)
    server = await loop.create_server(asyncio.Protocol, "127.0.0.1", 0)
    print("port", server.sockets[0].getsockname()[1], flush=True)
    await asyncio.sleep(5)

asyncio.run(main())
"""


def test_accept_out_of_descriptors_is_logged_as_counted_lines_without_tracebacks() -> None:
    """150 connections to a process that may open 48 descriptors: accept() fails again and again, and the log
    says so in at most one line a second, with counts, and no traceback."""
    child = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True)
    assert child.stdout is not None
    port = int(child.stdout.readline().split()[1])
    with ExitStack() as held:
        for _ in range(150):
            with suppress(OSError):  # once the backlog is full too, connecting times out
                held.enter_context(socket.create_connection(("127.0.0.1", port), timeout=0.2))
        time.sleep(2)
    output, _ = child.communicate(timeout=20)
    lines = [line for line in output.splitlines() if "accept() failed" in line]
    assert lines, output
    assert len(lines) <= 7, output
    assert "Traceback" not in output, output
    assert sum(int(line.split(": ")[1].split()[0]) for line in lines) >= 1
