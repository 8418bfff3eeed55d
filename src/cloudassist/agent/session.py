"""Session Manager on the agent: a shell on a real PTY, or a TCP port forward, relayed by the server.

Loaded with the first `kick_vm session …` (a starting agent does not import it). The protocol is the official
agent's (session-protocol.md §2, §3, §5, §6): the kick `kick_vm session start <channelId>` makes the agent POST
`v1/session/list?channelId=…`, dial `wss://<server>/luban/session/backend?channelId=…` with its signed headers,
and relay agent-format frames (`domain/frames.py`) between that socket and the shell or the target; how the
session ended goes to `v1/session/status?channelId&status&errorcode` once, before the socket is closed.

Decisions:
* an empty username means `ecs-assist-user`. When that user does not exist the session fails
  `Open_pty_failed` and the log says how to create it: unlike the official agent, ours never creates an
  account nor a sudoers entry by itself. uid or gid 0 (root) fails `Open_pty_failed` unless the agent runs
  with `--session-allow-root` (CLOUDASSIST_AGENT_SESSION_ALLOW_ROOT=true);
* a shell's end reports `Ok` with an extra `exitCode` (its exit status, 128+N for a signal) the official
  protocol has no place for; the stop kick `Notified`; 181 s without an inbound frame, the 3 h cap, or a
  data socket that cannot be dialled again `Timeout`; a frame that breaks the framing `Process_data_error`;
  the agent shutting down `Agent_stopped` (Failed);
* pacing is by bytes sent, not a sleep per frame: `flowLimit` (and a status-7 rate) in bit/s, 0 meaning the
  official default (about 200 kbit/s); rates below what the official agent survives (8192 for a shell, 16384
  for a port) are raised to that floor instead of dividing by zero. A keystroke's echo is never held back;
* the shell's process tree is killed when the session ends, however it ends;
* when the shell exits, what it left in the PTY is sent (paced, which may take seconds) before the end is
  reported: the report goes over another connection and would overtake it. A background job holding the tty
  open cuts this short after 1 s with nothing to read, and 10 s at most;
* when the data socket drops, it is dialled again (up to 11 times over about 13 s, as the official agent):
  a session survives a relay restart; a refused re-dial (the relay ended it) ends it at once;
* only the entries of a `session/list` answer whose channelId is the kicked one are run, one after another;
  a channel is run once (a repeated kick is ignored).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cloudassist.agent import portforward, terminal
from cloudassist.agent.transport import TransportError, WebSocketRefused
from cloudassist.domain import frames
from cloudassist.domain.frames import Frame, FrameError, MessageType, StatusCode

log = logging.getLogger("cloudassist.agent.session")

DEFAULT_USER = "ecs-assist-user"
IDLE_SECONDS = 181.0  #: without an inbound frame (of any type) the session ends `Timeout`
MAX_SECONDS = 3 * 3600.0  #: the official agent's cap
SHELL_READ, PORT_READ = 1024, 2048  #: bytes per output frame
#: Default pacing (bytes/s): 1024 B every 40 ms for a shell, 2048 B every 83 ms for a port (the official's).
SHELL_RATE, PORT_RATE = 25600.0, 2048 / 0.083
#: The smallest flow limits (bit/s) the official agent survives; smaller ones are raised to these.
SHELL_FLOOR, PORT_FLOOR = 8192, 16384
REDIAL_SLEEPS = (0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 2.0, 2.0, 2.0)
#: After the shell exited, what it left in the PTY is read and sent (paced) to its end, unless the PTY stays open
#: (a background job holds the tty) with nothing to read for DRAIN_SECONDS, or for DRAIN_MAX_SECONDS in all.
DRAIN_SECONDS = 1.0
DRAIN_MAX_SECONDS = 10.0


class Socket(Protocol):
    """The data websocket (transport.WebSocket)."""

    async def recv(self) -> str | bytes: ...

    async def send(self, message: str | bytes) -> None: ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...


class Server(Protocol):
    """What a session needs from the agent's server client (client.ServerClient)."""

    async def session_list(self, channel_id: str) -> dict[str, Any]: ...

    async def session_socket(self, channel_id: str) -> Socket: ...

    async def session_status(self, channel_id: str, status: str, errorcode: str, **extra: str) -> None: ...


@dataclass(frozen=True)
class SessionOrder:
    """One `session` entry of `v1/session/list` (session-protocol.md §2)."""

    channel_id: str
    command_line: str = ""
    username: str = ""
    port: int | None = None  #: `portNumber` (a string on the wire): a port forward
    target_host: str = ""
    flow_limit: int = 0  #: bit/s; 0 = the default pacing

    @classmethod
    def parse(cls, entry: Mapping[str, Any]) -> SessionOrder:
        """Read one entry; ValueError when its channelId or portNumber cannot be used."""
        channel_id = str(entry.get("channelId") or "")
        if not frames.valid_channel_id(channel_id):
            raise ValueError(f"channelId {channel_id!r} is not 1-32 URL-safe characters")
        raw_port = str(entry.get("portNumber") or "").strip()
        port = None
        if raw_port:
            if not raw_port.isdigit() or not 1 <= int(raw_port) <= 65535:
                raise ValueError(f"portNumber {raw_port!r} is not a port")
            port = int(raw_port)
        try:
            flow = int(entry.get("flowLimit") or 0)
        except (TypeError, ValueError):
            flow = 0
        return cls(
            channel_id,
            str(entry.get("cmdContent") or ""),
            str(entry.get("username") or ""),
            port,
            str(entry.get("targetHost") or ""),
            max(flow, 0),
        )


class Pacer:
    """Send pacing: after n bytes, the next frame waits n / rate seconds (rate in bytes/s)."""

    def __init__(self, default: float, floor_bits: int, flow_limit: int = 0) -> None:
        self.default, self.floor = default, floor_bits
        self.rate = default
        self.set_bits(flow_limit)

    def set_bits(self, bits_per_second: int) -> None:
        """A flow limit or status-7 rate: 0 keeps the current rate; below the floor counts as the floor."""
        if bits_per_second > 0:
            self.rate = max(bits_per_second, self.floor) / 8

    async def pace(self, sent: int) -> None:
        await asyncio.sleep(sent / self.rate)


def utf8_cut(data: bytes) -> int:
    """Where to cut `data` so that no UTF-8 character is split: len(data) minus an incomplete tail of at most
    3 bytes (invalid bytes pass through)."""
    for back in range(1, min(3, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for its lead
        need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4 if byte & 0xF8 == 0xF0 else 1
        return len(data) - back if need > back else len(data)
    return len(data)


@dataclass(frozen=True)
class Rules:
    """What the agent allows and enforces for every session."""

    allow_root: bool = False  #: shells as uid or gid 0 (agent --session-allow-root)
    default_user: str = DEFAULT_USER  #: the user of a session that names none
    idle_seconds: float = IDLE_SECONDS
    max_seconds: float = MAX_SECONDS


class Ended(Exception):
    """How a session ended: the status and errorcode of `v1/session/status`."""

    def __init__(self, status: str, errorcode: str, detail: str = "", **extra: str) -> None:
        super().__init__(f"{status} {errorcode}{f': {detail}' if detail else ''}")
        self.status, self.errorcode, self.extra = status, errorcode, extra


class Session:
    """One channel: dial, open the shell or the target, relay until it ends, report, close."""

    def __init__(self, order: SessionOrder, server: Server, rules: Rules | None = None) -> None:
        self.order, self.server = order, server
        self.rules = rules or Rules()
        port = order.port is not None
        self.pacer = Pacer(PORT_RATE if port else SHELL_RATE, PORT_FLOOR if port else SHELL_FLOOR, order.flow_limit)
        self.terminal: terminal.Terminal | None = None
        self.target: portforward.Target | None = None
        self._socket: Socket | None = None
        self._up = asyncio.Event()
        self._drained = asyncio.Event()  #: the output side read the PTY to its end
        self._waiting_since: float | None = None  #: since when the output side waits for output (None: it sends)
        self._ended: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self._last_inbound = time.monotonic()
        self._sequence = 0

    @property
    def pid(self) -> int | None:
        return self.terminal.pid if self.terminal is not None else None

    def end(self, ended: Ended) -> None:
        """End the session (the first reason given counts)."""
        if not self._ended.done():
            self._ended.set_result(ended)

    def stop(self) -> None:
        """The stop kick."""
        self.end(Ended("Success", "Notified"))

    async def run(self) -> Ended:
        """Serve the channel until it ends; the report sent (never raises but CancelledError)."""
        tasks: list[asyncio.Task[None]] = []
        try:
            try:
                self._socket = await self.server.session_socket(self.order.channel_id)
            except Exception as exc:
                raise Ended("Failed", "Open_channel_failed", f"{type(exc).__name__}: {exc}") from None
            self._up.set()
            await self._open()
            tasks = [asyncio.create_task(c) for c in (self._inbound(), self._outbound(), self._watchdog())]
            if self.terminal is not None:
                tasks.append(asyncio.create_task(self._exit()))
            ended = await self._ended
        except Ended as exc:
            ended = exc
        except Exception as exc:
            log.exception("session %s failed in the agent", self.order.channel_id)
            ended = Ended("Failed", "Unknown_error", f"{type(exc).__name__}: {exc}")
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._teardown()
        log.info("session %s ended: %s", self.order.channel_id, ended)
        await self._report(ended)
        if self._socket is not None:
            with contextlib.suppress(Exception):
                await self._socket.close()
        return ended

    async def _open(self) -> None:
        order = self.order
        if order.port is not None:
            self.target = portforward.Target(order.target_host, order.port)
            try:
                await self.target.open()
            except portforward.OpenFailed as exc:
                raise Ended("Failed", "Open_port_failed", str(exc)) from None
            return
        name = order.username or self.rules.default_user
        try:
            user = terminal.account(name, allow_root=self.rules.allow_root)
            self.terminal = terminal.Terminal(user, order.command_line)
            await self.terminal.open()
        except terminal.OpenFailed as exc:
            if not order.username:
                log.error(
                    "session %s names no user and %r does not exist here: create it (useradd -m -s /bin/bash %s) "
                    "or start sessions with a Username",
                    order.channel_id,
                    name,
                    name,
                )
            raise Ended("Failed", "Open_pty_failed", str(exc)) from None

    async def _teardown(self) -> None:
        if self.terminal is not None:
            await self.terminal.aclose()
        if self.target is not None:
            self.target.close()

    async def _report(self, ended: Ended) -> None:
        try:
            async with asyncio.timeout(5):
                await self.server.session_status(self.order.channel_id, ended.status, ended.errorcode, **ended.extra)
        except Exception as exc:
            log.warning("session %s: its status could not be reported (%s)", self.order.channel_id, exc)

    async def _exit(self) -> None:
        """The shell exited: send what it left in the PTY, then end `Ok` (the report must not overtake output).
        Paced, that may take seconds; the wait ends early only when nothing is left to read for DRAIN_SECONDS
        (a background job holds the tty open), and after DRAIN_MAX_SECONDS in any case."""
        assert self.terminal is not None
        code = await self.terminal.wait()
        deadline = time.monotonic() + DRAIN_MAX_SECONDS
        while not self._drained.is_set():
            now, waiting = time.monotonic(), self._waiting_since
            if now >= deadline or (waiting is not None and now - waiting >= DRAIN_SECONDS):
                break
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.05):
                    await self._drained.wait()
        self.end(Ended("Success", "Ok", exitCode=str(code)))

    async def _watchdog(self) -> None:
        started = time.monotonic()
        while True:
            now = time.monotonic()
            if now - self._last_inbound > self.rules.idle_seconds:
                self.end(Ended("Success", "Timeout", f"no inbound frame for {self.rules.idle_seconds:g} s"))
                return
            if now - started > self.rules.max_seconds:
                self.end(Ended("Success", "Timeout", f"the session reached its {self.rules.max_seconds:g} s cap"))
                return
            await asyncio.sleep(min(1.0, self.rules.idle_seconds / 4))

    async def _outbound(self) -> None:
        """Program or target output → type-1 frames, paced."""
        source: Callable[[int], Awaitable[bytes]]
        if self.terminal is not None:
            source, size, shell = self.terminal.read, SHELL_READ, True
        else:
            assert self.target is not None
            source, size, shell = self.target.read, PORT_READ, False
        held = b""
        while True:
            self._waiting_since = time.monotonic()
            data = await source(size)
            self._waiting_since = None
            if not data:
                if held:
                    await self._send(held)
                self._drained.set()
                if not shell:
                    self.end(Ended("Success", "Ok", "the target closed the connection"))
                return
            data = held + data
            cut = utf8_cut(data) if shell else len(data)
            data, held = data[:cut], data[cut:]
            if data:
                await self._send(data)
                await self.pacer.pace(len(data))

    async def _send(self, payload: bytes) -> None:
        frame = Frame(MessageType.OUTPUT, payload, int(time.time() * 1000), self._sequence, self.order.channel_id)
        message = frames.encode_agent(frame)
        self._sequence += 1
        while True:
            await self._up.wait()
            assert self._socket is not None
            try:
                await self._socket.send(message)
                return
            except Exception:
                await asyncio.sleep(0.05)  # the inbound side re-dials

    async def _inbound(self) -> None:
        """Frames from the relay → the program or the target; the socket is dialled again when it drops."""
        while True:
            assert self._socket is not None
            try:
                message = await self._socket.recv()
            except Exception as exc:
                self._up.clear()
                log.info("session %s: data socket lost (%s); dialling again", self.order.channel_id, exc)
                await self._redial()
                continue
            if isinstance(message, str):
                message = message.encode()
            try:
                frame = frames.decode_agent(message)
                await self._handle(frame)
            except FrameError as exc:
                self.end(Ended("Failed", "Process_data_error", f"malformed frame: {exc}"))
                return
            self._last_inbound = time.monotonic()

    async def _handle(self, frame: Frame) -> None:
        if frame.type is MessageType.INPUT and frame.payload:
            if self.terminal is not None:
                await self.terminal.write(frame.payload)
            elif self.target is not None:
                await self.target.write(frame.payload)
        elif frame.type is MessageType.SET_SIZE and self.terminal is not None:
            payload = frame.payload
            size = frames.Size.from_client(payload) if len(payload) == 4 else frames.Size.from_agent(payload)
            self.terminal.resize(size.rows, size.cols)
        elif frame.type is MessageType.STATUS:
            code, rest = frames.parse_status(frame.payload)
            if code == StatusCode.RATE:
                self.pacer.set_bits(frames.parse_rate(rest))

    async def _redial(self) -> None:
        old = self._socket
        if old is not None:
            with contextlib.suppress(Exception):
                await old.close()
        for pause in REDIAL_SLEEPS:
            await asyncio.sleep(pause)
            try:
                self._socket = await self.server.session_socket(self.order.channel_id)
            except WebSocketRefused as exc:  # the relay ended the session
                self.end(Ended("Success", "Timeout", f"the data socket was refused: {exc}"))
                await asyncio.Future()  # cancelled as the session ends
            except Exception as exc:
                log.info("session %s: dialling again failed (%s)", self.order.channel_id, exc)
                continue
            self._up.set()
            log.info("session %s: data socket dialled again", self.order.channel_id)
            return
        self.end(Ended("Success", "Timeout", "the data socket could not be dialled again"))
        await asyncio.Future()


class Sessions:
    """The agent's sessions: started and stopped by kicks, each channel once."""

    def __init__(self, server: Server, rules: Rules | None = None) -> None:
        self.server = server
        self.rules = rules or Rules()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._running: dict[str, Session] = {}
        self._seen: list[str] = []

    def pids(self) -> set[int]:
        """The pids of the sessions' shells (asyncio waits for them: not to be reaped by anyone else)."""
        return {pid for s in self._running.values() if (pid := s.pid) is not None and pid > 0}

    def kick(self, action: str, channel_id: str) -> None:
        """`kick_vm session start|stop <channelId>`."""
        if not frames.valid_channel_id(channel_id):
            log.warning("session kick with an unusable channelId %r ignored", channel_id)
            return
        if action == "start":
            if channel_id in self._seen:
                log.info("session %s: kicked again; it runs once", channel_id)
                return
            self._seen = [*self._seen[-4095:], channel_id]
            task = asyncio.create_task(self._serve(channel_id))
            self._tasks[channel_id] = task
            task.add_done_callback(lambda _: self._tasks.pop(channel_id, None))
        elif action == "stop":
            session = self._running.get(channel_id)
            if session is not None:
                session.stop()
            elif (waiting := self._tasks.get(channel_id)) is not None:
                waiting.cancel()  # not dialled yet: nothing to report

    async def close(self) -> None:
        """The agent stops: every session ends `Agent_stopped` (reported), every fetch is cancelled."""
        for session in self._running.values():
            session.end(Ended("Failed", "Agent_stopped", "the agent was shut down"))
        for channel_id, task in list(self._tasks.items()):
            if channel_id not in self._running:
                task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)

    async def _serve(self, channel_id: str) -> None:
        try:
            entries = await self._fetch(channel_id)
        except Exception as exc:
            log.warning("session %s: session/list failed (%s)", channel_id, exc)
            return
        for entry in entries:
            try:
                order = SessionOrder.parse(entry)
            except ValueError as exc:
                log.error("session %s: malformed session entry (%s)", channel_id, exc)
                continue
            if order.channel_id != channel_id:
                log.error("session %s: the list named channel %s; not run", channel_id, order.channel_id)
                continue
            session = Session(order, self.server, self.rules)
            self._running[channel_id] = session
            try:
                await session.run()
            finally:
                self._running.pop(channel_id, None)

    async def _fetch(self, channel_id: str) -> list[dict[str, Any]]:
        """The `session` entries of `v1/session/list`: network errors tried 3 times 2 s apart, an answer with no
        session asked again once after 3 s (session-protocol.md §2)."""
        for round_ in range(2):
            for attempt in range(3):
                try:
                    reply = await self.server.session_list(channel_id)
                    break
                except Exception as exc:
                    if attempt == 2 or not isinstance(exc, TransportError):
                        raise
                    await asyncio.sleep(2)
            found = reply.get("session")
            entries = [e for e in found if isinstance(e, dict)] if isinstance(found, list) else []
            if entries or round_:
                return entries
            await asyncio.sleep(3)
        return []
