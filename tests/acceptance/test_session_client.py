"""Session Manager end to end: a live server, a real `cloudassist agent` process and the `cloudassist session`
client on a real pseudo-terminal, a shell as a throwaway user, and a port forward to a local TCP echo server."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from acceptance.agents import Agent, clean_env, one_agent
from acceptance.sdk import AK, SECRET, Server
from cloudassist.testing import free_port
from ptyterm import Screen, spawn
from users import throwaway_user


@pytest.fixture
def agent(server: Server, tmp_path: Path) -> Iterator[Agent]:
    with one_agent(server, tmp_path) as one:
        yield one


@pytest.fixture
def user() -> Iterator[str]:
    """A throwaway user whose login shell is /bin/sh (tests/users.py)."""
    with throwaway_user() as name:
        yield name


def credentials(server: Server) -> list[str]:
    return ["--endpoint", server.endpoint, "--access-key-id", AK, "--access-key-secret", SECRET]


async def test_an_interactive_shell_echoes_resizes_takes_ctrl_c_and_exits_with_its_status(
    server: Server, agent: Agent, user: str
) -> None:
    """`cloudassist session mi-… --username U` on a pty: the user's login shell answers `echo`, a window resize
    is what `stty size` shows there, Ctrl-C interrupts the remote `sleep` (the client lives on), `exit 3` ends
    the client with status 3 and its terminal is as it was."""
    env = {**clean_env(), "HOME": "/nonexistent"}
    proc, master, slave = spawn("session", agent.instance_id, "--username", user, *credentials(server), env=env)
    before = termios.tcgetattr(slave)
    screen = Screen(master)
    try:
        await screen.until(b"$ ")
        os.write(master, b"echo hello-$((6*7)) $(id -un)\r")
        await screen.until(f"hello-42 {user}".encode())
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))  # SIGWINCH to the client
        await asyncio.sleep(1)
        os.write(master, b"stty size\r")
        await screen.until(b"33 77")
        os.write(master, b"sleep 60\r")
        await asyncio.sleep(1)
        began = time.monotonic()
        os.write(master, b"\x03")
        os.write(master, b"echo after-$((1+1))\r")
        await screen.until(b"after-2")
        assert time.monotonic() - began < 30
        os.write(master, b"exit 3\r")
        status = await asyncio.to_thread(proc.wait, 60)
        assert status == 3, screen.seen.decode(errors="replace")
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        os.close(master)
        os.close(slave)
    (server.live.data_dir / f"transcript-{user}.txt").write_bytes(screen.seen)


@pytest.fixture
async def echo_port() -> AsyncIterator[int]:
    """A TCP echo server on 127.0.0.1; its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


def forwarder(server: Server, instance_id: str, local: int, remote: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cloudassist",
            "session",
            instance_id,
            "--port-forward",
            f"{local}:{remote}",
            "--target-server",
            "127.0.0.1",
            *credentials(server),
        ],
        env={**clean_env(), "HOME": "/nonexistent"},
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_a_port_forward_reaches_a_tcp_server_on_the_instance(
    server: Server, agent: Agent, echo_port: int
) -> None:
    """`--port-forward LOCAL:REMOTE`: bytes sent to 127.0.0.1:LOCAL reach the echo server through the relay and
    the agent, and come back; two connections one after the other each get their own channel."""
    local = free_port()
    proc = forwarder(server, agent.instance_id, local, echo_port)
    try:
        for attempt in range(2):
            async with asyncio.timeout(60):
                while True:
                    try:
                        reader, writer = await asyncio.open_connection("127.0.0.1", local)
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
                message = b"ping-%d " % attempt + bytes(range(256))
                writer.write(message)
                assert await reader.readexactly(len(message)) == message
                writer.close()
    finally:
        proc.send_signal(signal.SIGINT)
        await asyncio.to_thread(proc.wait, 30)


def test_a_session_as_root_is_refused_by_the_agent(server: Server, agent: Agent) -> None:
    """Username root: the agent refuses it (no --session-allow-root), the client says OpenPtyFailed and exits 1."""
    done = subprocess.run(
        [sys.executable, "-m", "cloudassist", "session", agent.instance_id, "--username", "root", *credentials(server)],
        env={**clean_env(), "HOME": "/nonexistent"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stderr
    assert b"session closed: OpenPtyFailed" in done.stderr

    # `cloudassist sessions` shows who asked for root there, and how it ended (DescribeTerminalSessions)
    listing = [sys.executable, "-m", "cloudassist", "sessions", "-i", agent.instance_id, "--endpoint", server.endpoint]
    env = {**clean_env(), "HOME": "/nonexistent"}
    env.update(ALIBABA_CLOUD_ACCESS_KEY_ID=AK, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET)
    answer = subprocess.run([*listing, "--json"], env=env, capture_output=True, timeout=60, check=True)
    newest = json.loads(answer.stdout)[0]
    assert (newest["Username"], newest["PrincipalId"]) == ("root", AK)
    (connection,) = newest["Connections"]["Connection"]
    assert (connection["InstanceId"], connection["Status"]) == (agent.instance_id, "Failed")
    assert connection["EndTime"]
    table = subprocess.run(listing, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    line = next(row for row in table.splitlines() if newest["SessionId"] in row)
    assert "root" in line
    assert "Failed" in line


def test_a_command_lines_whole_output_arrives_before_its_end(server: Server, agent: Agent, user: str) -> None:
    """--command-line runs without a shell; all of its output (about 14 KB, paced by the agent) reaches the client
    before the session ends, and the client exits with the command's status."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "cloudassist",
            "session",
            agent.instance_id,
            "--username",
            user,
            "--command-line",
            "sh -c 'seq 1 3000; exit 4'",
            *credentials(server),
        ],
        env={**clean_env(), "HOME": "/nonexistent"},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 4, done.stderr
    assert done.stdout.replace(b"\r\n", b"\n") == b"".join(b"%d\n" % n for n in range(1, 3001))
