"""`cloudassist session` on a real pseudo-terminal against a test relay that speaks the official client's framing
(domain/frames.py): raw mode, the size after the first output and on SIGWINCH, Ctrl-C as a byte, the exit status,
the terminal restored, and a forwarded port."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from cloudassist.domain import frames
from cloudassist.domain.frames import Frame, MessageType, StatusCode
from ptyterm import Screen, spawn


def out(kind: MessageType, payload: bytes) -> bytes:
    return frames.encode_client(Frame(kind, payload, int(time.time() * 1000)))


@dataclass
class PeerRelay:
    """Records what clients sent; answers as a shell would: echoes input, says what it got."""

    paths: list[str] = field(default_factory=list)
    tokens: list[str | None] = field(default_factory=list)
    sizes: list[tuple[int, int]] = field(default_factory=list)
    inputs: bytearray = field(default_factory=bytearray)
    exit_code: int = 5

    async def handler(self, ws: ServerConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            await self._serve(ws)

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        self.paths.append(ws.request.path)
        self.tokens.append(ws.request.headers.get("x-acs-session-token"))
        await ws.send(out(MessageType.OUTPUT, b"remote$ "))
        async for message in ws:
            assert isinstance(message, bytes)
            frame = frames.decode_client(message)
            if frame.type is MessageType.SET_SIZE:
                size = frames.Size.from_client(frame.payload)
                self.sizes.append((size.rows, size.cols))
                await ws.send(out(MessageType.OUTPUT, f"[size {size.rows}x{size.cols}]".encode()))
            elif frame.type is MessageType.INPUT:
                self.inputs += frame.payload
                if frame.payload == b"\x03":
                    await ws.send(out(MessageType.OUTPUT, b"[got ctrl-c]"))
                elif b"exit\r" in self.inputs:
                    await ws.send(
                        out(MessageType.STATUS, frames.status(StatusCode.NOOP, b"exitCode=%d" % self.exit_code))
                    )
                    await ws.send(out(MessageType.STATUS, frames.status(StatusCode.CLOSED, b"Exit")))
                    return
                else:
                    await ws.send(out(MessageType.OUTPUT, frame.payload))


@pytest.fixture
async def relay() -> AsyncIterator[tuple[PeerRelay, int]]:
    peer = PeerRelay()
    async with serve(peer.handler, "127.0.0.1", 0) as server:
        yield peer, next(iter(server.sockets)).getsockname()[1]


def forwarder(local: int, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cloudassist", "session", "mi-test", "--port-forward", f"{local}:80", "--wss-url", url],
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def test_an_interactive_session_is_raw_resizes_passes_ctrl_c_and_exits_with_the_remote_status(
    relay: tuple[PeerRelay, int],
) -> None:
    """The client dials the URL as the official one does (sessionid → sessionId, an empty token header), puts
    the terminal in raw mode (Enter arrives as CR, ^C as the byte 0x03 and the client lives on), sends the size
    after the first output and again on SIGWINCH, exits with the status the relay tells, and restores the
    terminal."""
    peer, port = relay
    proc, master, slave = spawn(
        "session", "mi-test", "--wss-url", f"ws://127.0.0.1:{port}/session?sessionid=s-1&token=t0k"
    )
    before = termios.tcgetattr(slave)
    screen = Screen(master)
    try:
        await screen.until(b"[size 40x100]")
        os.write(master, b"echo hi\r")
        await screen.until(b"echo hi\r")
        os.write(master, b"\x03")
        await screen.until(b"[got ctrl-c]")
        assert proc.poll() is None
        fcntl.ioctl(master, termios.TIOCSWINSZ, struct.pack("HHHH", 33, 77, 0, 0))
        os.killpg(proc.pid, signal.SIGWINCH)
        await screen.until(b"[size 33x77]")
        os.write(master, b"exit\r")
        status = await asyncio.to_thread(proc.wait, 30)
        assert status == 5
        assert termios.tcgetattr(slave) == before
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        os.close(slave)
    assert peer.paths == ["/session?sessionId=s-1&token=t0k"]
    assert peer.tokens == [""]
    assert peer.sizes == [(40, 100), (33, 77)]
    assert bytes(peer.inputs) == b"echo hi\r\x03exit\r"


async def test_a_port_forward_relays_each_local_connection_through_its_own_socket(
    relay: tuple[PeerRelay, int], unused_tcp_port: int
) -> None:
    """--port-forward LOCAL:REMOTE listens on 127.0.0.1:LOCAL; each connection dials the URL once and its bytes
    go out as input frames, the relay's output frames come back."""
    peer, port = relay
    proc = forwarder(unused_tcp_port, f"ws://127.0.0.1:{port}/session?sessionId=s-2&token=t")
    try:
        for attempt in range(2):
            async with asyncio.timeout(30):
                while True:
                    try:
                        reader, writer = await asyncio.open_connection("127.0.0.1", unused_tcp_port)
                        break
                    except OSError:
                        await asyncio.sleep(0.1)
                assert await reader.readexactly(8) == b"remote$ "
                writer.write(b"ping %d" % attempt)
                assert await reader.readexactly(6) == b"ping %d" % attempt
                writer.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
    assert len(peer.paths) == 2
