"""Session Manager on the agent (agent/session.py, terminal.py, portforward.py) with a real PTY and a real shell,
against a test relay that speaks the agent framing (domain/frames.py) over in-memory sockets."""

from __future__ import annotations

import asyncio
import os
import pwd
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from cloudassist.agent import proctree
from cloudassist.agent.session import Ended, Pacer, Rules, Session, SessionOrder, Sessions, utf8_cut
from cloudassist.agent.transport import ConnectionClosed, WebSocketRefused
from cloudassist.domain import frames
from cloudassist.domain.frames import Frame, MessageType, StatusCode
from users import throwaway_user


class PeerSocket:
    """The agent's end of a data socket; the test holds the relay's end (`to_agent`, `from_agent`)."""

    def __init__(self) -> None:
        self.to_agent: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.from_agent: asyncio.Queue[bytes] = asyncio.Queue()
        self.closed = False

    async def recv(self) -> str | bytes:
        item = await self.to_agent.get()
        if item is None:
            self.closed = True
            raise ConnectionClosed(1006, "dropped by the test relay")
        return item

    async def send(self, message: str | bytes) -> None:
        if self.closed:
            raise ConnectionClosed(1006)
        assert isinstance(message, bytes)
        self.from_agent.put_nowait(message)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed = True


class Relay:
    """A test relay: answers session/list with `entries`, hands out sockets, records the status reports."""

    def __init__(self, *entries: dict[str, Any]) -> None:
        self.entries = list(entries)
        self.sockets: list[PeerSocket] = []
        self.reports: list[tuple[str, str, str, dict[str, str]]] = []
        self.refuse = False
        self.dialled = asyncio.Event()
        self.reported = asyncio.Event()
        self.socket_closed_at_report: list[bool] = []

    async def session_list(self, channel_id: str) -> dict[str, Any]:
        return {"code": 200, "session": self.entries}

    async def session_socket(self, channel_id: str) -> PeerSocket:
        if self.refuse:
            raise WebSocketRefused(409, b"ended")
        socket = PeerSocket()
        self.sockets.append(socket)
        self.dialled.set()
        return socket

    async def session_status(self, channel_id: str, status: str, errorcode: str, **extra: str) -> None:
        self.socket_closed_at_report.append(self.sockets[-1].closed if self.sockets else True)
        self.reports.append((channel_id, status, errorcode, extra))
        self.reported.set()

    @property
    def socket(self) -> PeerSocket:
        return self.sockets[-1]

    def send(self, kind: MessageType, payload: bytes) -> None:
        frame = Frame(kind, payload, int(time.time() * 1000), 0, "relay")
        self.socket.to_agent.put_nowait(frames.encode_agent(frame))

    def type(self, text: str) -> None:
        self.send(MessageType.INPUT, text.encode())

    async def output_until(self, needle: bytes) -> bytes:
        """Agent output frames (type 1) joined, until `needle` appears in them (20 s at most)."""
        seen = b""
        async with asyncio.timeout(20):
            while needle not in seen:
                frame = frames.decode_agent(await self.socket.from_agent.get())
                assert frame.type is MessageType.OUTPUT
                seen += frame.payload
        return seen


@pytest.fixture
def user() -> Iterator[str]:
    """A throwaway user whose login shell is /bin/sh (the agent runs as root in these tests)."""
    with throwaway_user() as name:
        yield name


def order(**fields: Any) -> dict[str, Any]:
    return {"channelId": "ch-" + uuid.uuid4().hex[:12], **fields}


async def started(relay: Relay, **rules: Any) -> tuple[Session, asyncio.Task[Ended]]:
    session = Session(SessionOrder.parse(relay.entries[0]), relay, Rules(**rules))
    task = asyncio.create_task(session.run())
    async with asyncio.timeout(10):
        await relay.dialled.wait()
    return session, task


@pytest.fixture
async def echo_server() -> AsyncIterator[int]:
    """A local TCP echo server; its port."""

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(4096):
            if data == b"bye\n":
                break
            writer.write(data)
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_a_shell_runs_as_the_user_on_a_real_tty_resizes_and_reports_its_exit(user: str) -> None:
    """The login shell of the user runs on a PTY (a tty, its uid, its home); a resize is what `stty size`
    shows; `exit 7` ends the session `Success/Ok` with exitCode 7, reported before the socket is closed."""
    relay = Relay(order(username=user))
    session, task = await started(relay)
    relay.send(MessageType.SET_SIZE, b'{"cols":123,"rows":45}')
    relay.type('echo "who=$(id -un) home=$HOME tty=$(tty) zero=$0"; stty size\n')
    seen = await relay.output_until(b"45 123")
    home = pwd.getpwnam(user).pw_dir
    assert f"who={user} home={home} tty=/dev/pts/".encode() in seen
    assert b" zero=-sh\r\n" in seen  # a login shell
    relay.send(MessageType.SET_SIZE, (30).to_bytes(2, "little") + (100).to_bytes(2, "little"))  # the CLI's form
    relay.type("stty size; exit 7\n")
    await relay.output_until(b"30 100")
    ended = await asyncio.wait_for(task, 20)
    assert relay.reports == [(session.order.channel_id, "Success", "Ok", {"exitCode": "7"})]
    assert relay.socket_closed_at_report == [False]
    assert relay.socket.closed
    assert ended.errorcode == "Ok"


async def test_ctrl_c_reaches_the_program_and_the_stop_kick_kills_the_whole_tree(user: str) -> None:
    """^C (0x03) interrupts the foreground program; the stop kick ends the session `Success/Notified` and
    kills the shell and everything it started (a background job too)."""
    relay = Relay(order(username=user))
    session, task = await started(relay)
    relay.type("sleep 300 & echo bg=$!; sleep 400\n")
    seen = await relay.output_until(b"bg=")
    await asyncio.sleep(0.5)
    relay.type("\x03")
    relay.type("echo after-ctrl-c\n")
    seen = await relay.output_until(b"after-ctrl-c\r\n")
    background = int(seen.split(b"bg=")[1].split()[0])
    shell = session.pid
    assert shell is not None
    assert proctree.alive(background)
    session.stop()
    await asyncio.wait_for(task, 20)
    assert relay.reports[0][1:3] == ("Success", "Notified")
    for _ in range(100):
        if not proctree.alive(background) and not proctree.alive(shell):
            break
        await asyncio.sleep(0.05)
    assert not proctree.alive(background)
    assert not proctree.alive(shell)


async def test_a_command_line_runs_directly_and_its_end_is_the_session_end(user: str) -> None:
    """CommandLine is split shell-style and run without a shell; its exit ends the session Ok."""
    relay = Relay(order(username=user, cmdContent="printf '%s|' 'a b' c"))
    _, task = await started(relay)
    await relay.output_until(b"a b|c|")
    ended = await asyncio.wait_for(task, 20)
    assert (ended.status, ended.errorcode, ended.extra) == ("Success", "Ok", {"exitCode": "0"})


async def test_what_a_command_leaves_in_the_pty_is_all_sent_before_its_end(user: str) -> None:
    """Output still in the PTY when the command exits (here about 3 s of it at the slowest pacing, 1 KB/s, much
    more than DRAIN_SECONDS) is all read and sent, paced, before the session ends Ok and reports."""
    relay = Relay(order(username=user, cmdContent="sh -c 'seq 1 600; echo END'", flowLimit=1))
    _, task = await started(relay)
    ended = await asyncio.wait_for(task, 30)
    assert (ended.status, ended.errorcode, ended.extra) == ("Success", "Ok", {"exitCode": "0"})
    sent = b""
    while not relay.socket.from_agent.empty():  # all of it sent before the report (nothing is sent after)
        sent += frames.decode_agent(relay.socket.from_agent.get_nowait()).payload
    assert sent.replace(b"\r\n", b"\n") == b"".join(b"%d\n" % n for n in range(1, 601)) + b"END\n"


async def test_root_is_refused_unless_allowed_and_a_missing_user_fails_open_pty() -> None:
    """Username root fails `Open_pty_failed` by default; with allow_root the shell runs as uid 0. A user that does
    not exist fails the same way, as does an empty username when `ecs-assist-user` does not exist here."""
    assert os.geteuid() == 0, "these tests run the agent as root"
    relay = Relay(order(username="root"))
    _, task = await started(relay)
    assert (await asyncio.wait_for(task, 20)).errorcode == "Open_pty_failed"
    assert relay.reports[0][1:3] == ("Failed", "Open_pty_failed")

    relay = Relay(order(username="root"))
    _, task = await started(relay, allow_root=True)
    relay.type("id -u; exit\n")
    await relay.output_until(b"0\r\n")
    assert (await asyncio.wait_for(task, 20)).errorcode == "Ok"

    for name in (f"nouser{uuid.uuid4().hex[:8]}", ""):
        relay = Relay(order(username=name))
        _, task = await started(relay, default_user=f"ecs-assist-user-{uuid.uuid4().hex[:6]}")
        assert (await asyncio.wait_for(task, 20)).errorcode == "Open_pty_failed"


async def test_idle_limit_ends_the_session_timeout_and_inbound_frames_keep_it(user: str) -> None:
    """Without an inbound frame for the idle limit the session ends `Success/Timeout`; frames of any type (here
    empty input keep-alives) reset the count."""
    relay = Relay(order(username=user))
    _, task = await started(relay, idle_seconds=2.0)
    for _ in range(6):
        await asyncio.sleep(0.5)
        relay.send(MessageType.INPUT, b"")
    assert not task.done()
    ended = await asyncio.wait_for(task, 20)
    assert (ended.status, ended.errorcode) == ("Success", "Timeout")


async def test_the_duration_cap_ends_the_session_timeout(user: str) -> None:
    """A session reaching its cap ends `Timeout` however busy it is."""
    relay = Relay(order(username=user))
    _, task = await started(relay, max_seconds=1.5)
    deadline = time.monotonic() + 20
    while not task.done() and time.monotonic() < deadline:
        relay.send(MessageType.INPUT, b"")
        await asyncio.sleep(0.2)
    assert (task.result().status, task.result().errorcode) == ("Success", "Timeout")


async def test_a_malformed_frame_ends_the_session_process_data_error(user: str) -> None:
    """A frame with a created date of 0, or shorter than its header, ends the session `Failed/Process_data_error`;
    the agent goes on."""
    good = frames.encode_agent(Frame(MessageType.INPUT, b"x", 1))
    for bad in (good[:40] + b"\x00" * 8 + good[48:], b"\x00" * 20):
        relay = Relay(order(username=user))
        _, task = await started(relay)
        relay.socket.to_agent.put_nowait(bad)
        ended = await asyncio.wait_for(task, 20)
        assert (ended.status, ended.errorcode) == ("Failed", "Process_data_error")


async def test_a_dropped_socket_is_dialled_again_and_a_refused_redial_ends_it(user: str) -> None:
    """The data socket dropping makes the agent dial again and the shell lives on; a re-dial the relay refuses
    ends the session `Timeout`."""
    relay = Relay(order(username=user))
    _, task = await started(relay)
    relay.type("X=kept\n")
    relay.socket.to_agent.put_nowait(None)
    relay.dialled.clear()
    async with asyncio.timeout(10):
        await relay.dialled.wait()
    relay.type("echo $X-again\n")
    await relay.output_until(b"kept-again")
    relay.refuse = True
    relay.socket.to_agent.put_nowait(None)
    ended = await asyncio.wait_for(task, 20)
    assert (ended.status, ended.errorcode) == ("Success", "Timeout")


async def test_port_forward_relays_a_tcp_stream_and_ends_ok_when_the_target_closes(echo_server: int) -> None:
    """A port session connects to targetHost:portNumber, relays bytes both ways (binary intact) and ends Ok when
    the target closes; a port nobody listens on fails `Open_port_failed`."""
    relay = Relay(order(portNumber=str(echo_server), targetHost="127.0.0.1"))
    _, task = await started(relay)
    payload = bytes(range(256)) * 4
    relay.send(MessageType.INPUT, payload)
    assert (await relay.output_until(payload))[: len(payload)] == payload
    relay.type("bye\n")
    ended = await asyncio.wait_for(task, 20)
    assert (ended.status, ended.errorcode) == ("Success", "Ok")

    relay = Relay(order(portNumber="1", targetHost="127.0.0.1"))
    _, task = await started(relay)
    assert (await asyncio.wait_for(task, 20)).errorcode == "Open_port_failed"


async def test_a_tiny_flow_limit_paces_without_crashing(echo_server: int) -> None:
    """flowLimit 1 bit/s (which crashes the official agent) is raised to the floor: 16384 bit/s for a port, so
    4 KiB take about 2 s; a status-7 rate of 0 is ignored, a high one speeds it up."""
    relay = Relay(order(portNumber=str(echo_server), targetHost="127.0.0.1", flowLimit=1))
    _, task = await started(relay)
    begin = time.monotonic()
    relay.send(MessageType.INPUT, b"a" * 4096)
    await relay.output_until(b"a" * 4096)
    assert time.monotonic() - begin >= 1.0
    relay.send(MessageType.STATUS, frames.status(StatusCode.RATE, b"\x00"))
    relay.send(MessageType.STATUS, frames.status(StatusCode.RATE, frames.rate_bytes(100_000_000)))
    await asyncio.sleep(0.2)
    begin = time.monotonic()
    relay.send(MessageType.INPUT, b"b" * 4096)
    await relay.output_until(b"b" * 4096)
    assert time.monotonic() - begin < 1.0
    relay.type("bye\n")
    await asyncio.wait_for(task, 20)


async def test_sessions_run_a_kicked_channel_once_and_only_its_own_entries(user: str) -> None:
    """`kick_vm session start <id>` runs the listed entry of that channel; a repeated kick does not start it
    again; an entry of another channel is not run; the stop kick ends it `Notified`."""
    mine = order(username=user)
    relay = Relay(order(username=user), mine)
    sessions = Sessions(relay)
    sessions.kick("start", mine["channelId"])
    sessions.kick("start", mine["channelId"])
    async with asyncio.timeout(10):
        await relay.dialled.wait()
    relay.type("echo running\n")
    await relay.output_until(b"running")
    assert len(relay.sockets) == 1
    sessions.kick("stop", mine["channelId"])
    async with asyncio.timeout(20):
        await relay.reported.wait()
    assert relay.reports[0][:3] == (mine["channelId"], "Success", "Notified")
    await sessions.close()


async def test_an_agent_shutting_down_ends_its_sessions_agent_stopped(user: str) -> None:
    """Sessions.close() (the agent stops) ends a running session `Failed/Agent_stopped`, reported, its shell
    killed."""
    entry = order(username=user)
    relay = Relay(entry)
    sessions = Sessions(relay)
    sessions.kick("start", entry["channelId"])
    async with asyncio.timeout(10):
        await relay.dialled.wait()
    relay.type("echo up\n")
    await relay.output_until(b"up\r\n")
    [shell] = sessions.pids()
    await sessions.close()
    assert relay.reports[0][1:3] == ("Failed", "Agent_stopped")
    assert not proctree.alive(shell)


def test_utf8_cut_and_pacing_rules() -> None:
    """An incomplete UTF-8 tail (up to 3 bytes) is held back, invalid bytes are not; flow limits below the floor
    count as the floor, 0 keeps the rate."""
    euro = "€".encode()
    assert utf8_cut(b"ab" + euro[:2]) == 2
    assert utf8_cut(b"ab" + euro) == 5
    assert utf8_cut(b"ab\xff") == 3
    assert utf8_cut("é".encode()[:1]) == 0
    pacer = Pacer(25600.0, 8192, 1)
    assert pacer.rate == 1024
    pacer.set_bits(0)
    assert pacer.rate == 1024
    pacer.set_bits(80_000)
    assert pacer.rate == 10_000
