"""The client's websocket (`/session?sessionId=…&token=…` on the API port) and the life of its connection.

One loop takes, in order, what the client sends and what the agent's end says (api/session/relay.py), plus a
tick each second for the timers; it ends with one outcome (Status, ClosedReason, FailedDetail, and the reason the
client is told in a status-5 frame), which is written to the connection's audit record.

An end told out of band (the agent's `v1/session/status`, an HTTP request of its own, or EndTerminalSession) can
overtake the agent's last output, still on its way over the data socket or through the bus from another process.
So the end is held, and output still relayed, until the agent's data socket is seen closed (the agent closes it
after its report; its close comes after its output, the same way) or until no output came for END_QUIET_SECONDS,
END_GRACE_SECONDS at most; only then is the client told (the exit code, then the reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Final

from starlette.websockets import WebSocket

from cloudassist import logs
from cloudassist.api.session.relay import Relay, messages
from cloudassist.domain import frames
from cloudassist.domain import sessions as rules
from cloudassist.domain.frames import Frame, FrameError, MessageType, StatusCode
from cloudassist.errors import ApiError
from cloudassist.services.context import Context
from cloudassist.services.sessions import Opened, Refused, SessionService

log = logging.getLogger("cloudassist.sessions")
#: A port channel is taken as ready this long after the agent's socket opened (its target dial takes 1 s).
PORT_READY_SECONDS: Final = 1.5
#: The flow limit's burst: this many seconds of the allowed rate.
BURST_SECONDS: Final = 4.0
#: An end told out of band waits for output still on its way: until the agent's data socket closes, or this long
#: without output, and never longer than END_GRACE_SECONDS.
END_QUIET_SECONDS: Final = 1.0
END_GRACE_SECONDS: Final = 5.0


@dataclass(frozen=True)
class Outcome:
    status: str
    reason: str
    detail: str = ""
    #: What the client is told (status 5), or None to close without a word.
    tell: str | None = None
    #: Whether the agent's channel must be stopped (it did not end it itself).
    stop_agent: bool = True
    #: The shell's exit status when the agent reported one (our agent's `exitCode`): told to the client first as
    #: a status-3 frame `exitCode=N`, which the official client ignores (status 3 is a no-op to it).
    exit_code: int | None = None


class ClientSession:
    def __init__(self, ws: WebSocket, ctx: Context, relay: Relay, opened: Opened, transcript: bool) -> None:
        self.ws = ws
        self.ctx = ctx
        self.relay = relay
        self.session = opened.session
        self.connection = opened.connection
        self.channel = opened.connection.channel_id
        self.port = opened.session.spec.port_forward
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self.pending: list[bytes] = []
        self.ready = False
        self.started = time.monotonic()
        self.last_data = self.started
        self.attached_at: float | None = None
        self.dropped_at: float | None = None
        self.sent_agent = 0
        self.sent_client = 0
        self.bytes_in = 0
        self.bytes_out = 0
        rate = ctx.settings.session_max_input_bps / 8
        self.allowance = rate * BURST_SECONDS
        self.allowance_at = self.started
        self.transcript: bytearray | None = bytearray() if transcript else None
        self.truncated = False
        #: The end told out of band, held while output may still be on its way (see the module's docstring).
        self.ending: Outcome | None = None
        self.ending_at = 0.0
        self.ending_heard = 0.0

    def told(self, kind: str, data: bytes) -> None:
        self.inbox.put_nowait((kind, data))

    async def run(self) -> None:
        self.relay.clients[self.channel] = self
        reader = asyncio.create_task(self._read())
        try:
            outcome = await self._first_outcome()
        except ApiError as exc:  # the database is away (ServiceUnavailable): end this session, keep serving
            log.warning("session %s ended: %s", self.channel, exc.code)
            outcome = Outcome(rules.FAILED, rules.SERVER_STOPPED, exc.code, tell="ServiceUnavailable")
        finally:
            self.relay.clients.pop(self.channel, None)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        await self._finish(outcome)

    async def _first_outcome(self) -> Outcome:
        async with self.ctx.store.read() as tx:
            instance = await tx.instances.get(self.connection.instance_id)
        if instance is None:
            return Outcome(rules.FAILED, rules.INSTANCE_NOT_EXISTS, tell="InstanceNotExists", stop_agent=False)
        if not instance.online(self.ctx.clock.now()):
            return Outcome(rules.FAILED, rules.AGENT_NOT_ONLINE, tell="AgentNotOnline", stop_agent=False)
        self.relay.start(self.channel, self.connection.instance_id)
        while True:
            try:
                kind, data = await asyncio.wait_for(self.inbox.get(), timeout=self._next_tick())
            except TimeoutError:
                kind, data = "tick", b""
            outcome = await self._on(kind, data)
            if outcome is None:
                outcome = self._judge_timers()
            if outcome is not None:
                return self.ending or outcome  # once the end is told, anything else only cuts its wait short

    async def _on(self, kind: str, data: bytes) -> Outcome | None:
        if kind == "client":
            return await self._from_client(data)
        if kind == "client_closed":
            return Outcome(rules.TERMINATED, rules.CLIENT_CLOSED)
        if kind == "attached":
            self.attached_at, self.dropped_at = time.monotonic(), None
        elif kind == "output":
            return await self._output(data)
        elif kind == "dropped":
            self.dropped_at = time.monotonic()
            return self.ending  # the agent's data socket closed: nothing more comes over it
        elif kind == "status":
            code, _, exit_code = data.decode("ascii", "replace").partition(" ")
            status, reason, detail = rules.closed_reason_of(code)
            told = int(exit_code) if exit_code.isdigit() else None
            return self._end_told(
                Outcome(status, reason, detail, tell=frames.close_reason(code), stop_agent=False, exit_code=told)
            )
        elif kind == "invalid":
            return Outcome(
                rules.FAILED, rules.MESSAGE_FORMAT_INVALID, "agent: " + data.decode(), "MessageFormatInvalid"
            )
        elif kind == "end":
            return self._end_told(Outcome(rules.TERMINATED, data.decode(), tell="Exit", stop_agent=False))
        return None

    def _end_told(self, outcome: Outcome) -> Outcome | None:
        """An end told out of band: the outcome now when no data socket of the agent's is open (nothing can be
        on its way), else held (the first one told counts) until `_judge_timers` or the socket's close ends it."""
        if self.ending is not None:
            return None
        if self.attached_at is None or self.dropped_at is not None:
            return outcome
        self.ending = outcome
        self.ending_at = self.ending_heard = time.monotonic()
        return None

    def _end_deadline(self) -> float:
        """When the held end is told: END_QUIET_SECONDS after the last output, END_GRACE_SECONDS after the end."""
        return min(self.ending_at + END_GRACE_SECONDS, self.ending_heard + END_QUIET_SECONDS)

    def _next_tick(self) -> float:
        """How long to wait for the inbox before judging the timers: a second, or what is left of an end's wait."""
        if self.ending is None:
            return 1.0
        return max(self._end_deadline() - time.monotonic(), 0.0)

    def _judge_timers(self) -> Outcome | None:
        now = time.monotonic()
        if self.ending is not None:  # the end was told: its own, shorter wait is the only timer left
            return self.ending if now >= self._end_deadline() else None
        settings = self.ctx.settings
        if self.attached_at is None and now - self.started > settings.session_start_seconds:
            return Outcome(rules.FAILED, rules.DELIVERY_TIMEOUT, "the agent did not connect", "AgentTimeout")
        if self.dropped_at is not None and now - self.dropped_at > settings.session_redial_seconds:
            return Outcome(rules.TERMINATED, rules.AGENT_SOCKET_CLOSED, tell="AgentSocketClosed")
        if now - self.last_data > settings.session_idle_seconds:
            return Outcome(rules.TERMINATED, rules.IDLE_TIMEOUT, tell="IdleTimeout")
        if (
            self.port
            and not self.ready
            and self.attached_at is not None
            and now - self.attached_at > PORT_READY_SECONDS
        ):
            self.ready = True
            self._flush()
        return None

    async def _from_client(self, data: bytes) -> Outcome | None:
        try:
            frame = frames.decode_client(data)
            payload = self._to_agent_payload(frame)
        except FrameError as exc:
            return Outcome(rules.FAILED, rules.MESSAGE_FORMAT_INVALID, f"client: {exc}", "MessageFormatInvalid")
        if frame.type == MessageType.CLOSE:
            return Outcome(rules.TERMINATED, rules.CLIENT_CLOSED)
        if payload is None:
            return None
        if frame.type == MessageType.INPUT:
            self.last_data = time.monotonic()
            self.bytes_in += len(frame.payload)
            if not self._within_flow(len(frame.payload)):
                return Outcome(rules.TERMINATED, rules.FLOW_EXCEED_LIMIT, tell="FlowExceedLimit")
        encoded = frames.encode_agent(Frame(frame.type, payload, _now_ms(), self.sent_agent, session_id=self.channel))
        self.sent_agent += 1
        if self.ready:
            self.relay.to_agent(self.channel, "frame", encoded)
        else:
            self.pending.append(encoded)
        return None

    def _to_agent_payload(self, frame: Frame) -> bytes | None:
        """The payload to forward to the agent for a client frame (None: nothing to forward)."""
        if frame.type == MessageType.INPUT:
            if len(frame.payload) > frames.MAX_INPUT:
                raise FrameError(f"input frame of {len(frame.payload)} bytes exceeds {frames.MAX_INPUT}")
            return frame.payload
        if frame.type == MessageType.SET_SIZE:
            converted = frames.resize_to_agent(frame.payload)
            return None if self.port else converted  # a stray resize in port mode is dropped
        if frame.type == MessageType.STATUS:
            code, rest = frames.parse_status(frame.payload)
            if code != StatusCode.RATE:
                return None
            rate = frames.parse_rate(rest)
            if rate == 0:
                return None
            return frames.status(StatusCode.RATE, frames.rate_bytes(rate))
        return None  # CLOSE is judged by the caller; OUTPUT from a client means nothing

    def _within_flow(self, size: int) -> bool:
        now = time.monotonic()
        rate = self.ctx.settings.session_max_input_bps / 8
        self.allowance = min(rate * BURST_SECONDS, self.allowance + (now - self.allowance_at) * rate) - size
        self.allowance_at = now
        return self.allowance >= 0

    def _flush(self) -> None:
        for encoded in self.pending:
            self.relay.to_agent(self.channel, "frame", encoded)
        self.pending.clear()

    async def _output(self, payload: bytes) -> Outcome | None:
        self.last_data = self.ending_heard = time.monotonic()
        if not self.ready:
            self.ready = True
            self._flush()
        self.bytes_out += len(payload)
        if self.transcript is not None:
            room = self.ctx.settings.session_transcript_max_bytes - len(self.transcript)
            self.transcript += payload[: max(room, 0)]
            self.truncated = self.truncated or len(payload) > room
        try:
            await self._send(MessageType.OUTPUT, payload)
        except Exception:  # the client went away; its reader reports how
            return Outcome(rules.TERMINATED, rules.CLIENT_CLOSED)
        return None

    async def _send(self, kind: MessageType, payload: bytes) -> None:
        await self.ws.send_bytes(frames.encode_client(Frame(kind, payload, _now_ms(), self.sent_client)))
        self.sent_client += 1

    async def _read(self) -> None:
        async for data in messages(self.ws):
            self.inbox.put_nowait(("client", data))
        self.inbox.put_nowait(("client_closed", b""))

    async def _finish(self, outcome: Outcome) -> None:
        if outcome.stop_agent:
            self.relay.stop(self.channel, self.connection.instance_id)
        if outcome.exit_code is not None:
            with contextlib.suppress(Exception):
                await self._send(MessageType.STATUS, frames.status(StatusCode.NOOP, b"exitCode=%d" % outcome.exit_code))
        if outcome.tell is not None:
            with contextlib.suppress(Exception):
                await self._send(MessageType.STATUS, frames.status(StatusCode.CLOSED, outcome.tell.encode()))
        with contextlib.suppress(Exception):
            await self.ws.close(code=1000)
        transcript = bytes(self.transcript) if self.transcript is not None else None
        with contextlib.suppress(ApiError):  # the database is away: the record stays open (see docs/sessions.md)
            await SessionService(self.ctx).finish(
                self.connection,
                outcome.status,
                outcome.reason,
                outcome.detail,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                transcript=transcript,
                truncated=self.truncated,
            )
        seconds = time.monotonic() - self.started
        logs.access(
            "session %s channel=%s instance=%s account=%s AccessKeyId=%s client=%s status=%s reason=%s s=%.1f "
            "in=%d out=%d",
            self.session.session_id,
            self.channel,
            self.connection.instance_id,
            self.session.account_id,
            self.session.access_key_id,
            self.connection.client_ip,
            outcome.status,
            outcome.reason,
            seconds,
            self.bytes_in,
            self.bytes_out,
            kind="session",
            session=self.session.session_id,
            channel=self.channel,
            instance=self.connection.instance_id,
            account=self.session.account_id,
            access_key_id=self.session.access_key_id,
            client=self.connection.client_ip,
            status=outcome.status,
            reason=outcome.reason,
            seconds=round(seconds, 1),
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
        )


def _now_ms() -> int:
    return int(time.time() * 1000)


async def client_websocket(ws: WebSocket, ctx: Context, relay: Relay) -> None:
    """`/session`: admit the client by its token, then relay until the connection ends. A refused client is told
    why in a status-5 frame (the official CLI prints it) and closed."""
    query = ws.query_params
    token = query.get("token") or ws.headers.get("x-acs-session-token", "")
    client_ip = ws.client.host if ws.client else ""
    service = SessionService(ctx)
    try:
        opened = await service.open_connection(
            query.get("sessionId") or query.get("sessionid", ""), token, query.get("instanceId"), client_ip
        )
        keep = await service.keeps_transcripts(opened.session.account_id)
    except ApiError as exc:  # the database is away
        log.warning("session client from %s not admitted: %s", client_ip, exc.code)
        await ws.close(code=1011)
        return
    except Refused as exc:
        await ws.accept()
        payload = frames.status(StatusCode.CLOSED, str(exc).encode())
        with contextlib.suppress(Exception):
            await ws.send_bytes(frames.encode_client(Frame(MessageType.STATUS, payload, _now_ms())))
            await ws.close(code=1008)
        log.info("refused a session client from %s: %s", client_ip, exc)
        return
    await ws.accept()
    await ClientSession(ws, ctx, relay, opened, keep).run()
