"""The Session Manager relay: pairs each client websocket (API port, client framing) with the agent's data
websocket of its channel (agent face, agent framing), re-framing every message both ways.

    client ws ──ClientEnd──┐                         ┌──AgentEnd── agent ws
      (this or another     └── Relay.to_agent/to_client ──┘   (this or another
       server process)          local call, or the bus         server process)

The two ends of one channel may live in different server processes sharing one PostgreSQL database: what one
end says to the other goes through `SessionBus` (LISTEN/NOTIFY), addressed by channel id, and only the process
holding that end acts on it. Session kicks (`kick_vm session start|stop <channel>`) go the same way to whichever
process holds the instance's notify websocket. The database stays the judge of what may open: a channel that
has ended is refused to the agent's re-dials, whatever process it dials.

The client end owns the connection's life (buffering until the agent is ready, the idle, start and re-dial
timeouts, the flow limit, the transcript, the audit record); the agent end only moves frames.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import replace
from typing import Any, Final, Protocol

from starlette.websockets import WebSocket, WebSocketDisconnect

from cloudassist.api.agent.hub import KickHub
from cloudassist.services.context import Context
from cloudassist.store.channel import KickChannel

log = logging.getLogger("cloudassist.sessions")
BUS: Final = "cloudassist_session"


async def messages(ws: WebSocket) -> AsyncIterator[bytes]:
    """Each message of a websocket as bytes (a text message as its UTF-8), until it closes or drops."""
    try:
        while True:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes")
            yield data if data is not None else (message.get("text") or "").encode()
    except (WebSocketDisconnect, RuntimeError):
        return


class End(Protocol):
    """One end of a channel held by this process: told what the other end says."""

    def told(self, kind: str, data: bytes) -> None: ...


class SessionBus(KickChannel):
    """The relay's messages between server processes: `<origin> <json>` on its own NOTIFY channel."""

    name = BUS

    def __init__(self, url: str, relay: Relay) -> None:
        super().__init__(url, lambda _ids: None)
        self.relay = relay

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, body = payload.partition(" ")
        if origin == self.origin:
            return
        try:
            message = json.loads(body)
            self.relay.heard(message["w"], message["c"], message["k"], base64.b64decode(message["d"]))
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a malformed session bus message")

    async def send(self, where: str, channel: str, kind: str, data: bytes) -> None:
        conn = self._conn
        if conn is None or conn.is_closed():
            log.warning("session bus down: %s for %s not sent", kind, channel)
            return
        body = json.dumps({"w": where, "c": channel, "k": kind, "d": base64.b64encode(data).decode()})
        try:
            async with self._using:
                await conn.execute("SELECT pg_notify($1, $2)", self.name, f"{self.origin} {body}")
        except Exception as exc:
            log.warning("session bus message not sent (%s)", type(exc).__name__)


class Relay:
    """This process's ends of session channels, and the way to the other processes' (implements
    services.context.SessionSignals)."""

    def __init__(self) -> None:
        self.clients: dict[str, End] = {}
        self.agents: dict[str, End] = {}
        self.hub: KickHub | None = None
        self.ctx: Context | None = None
        self.bus: SessionBus | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def bind(self, ctx: Context) -> None:
        """Use the process's kick hub and, on PostgreSQL, a bus to the other server processes."""
        self.ctx = ctx
        self.hub = ctx.notify if isinstance(ctx.notify, KickHub) else None
        if not ctx.store.sqlite and self.bus is None:
            self.bus = SessionBus(ctx.store.url, self)

    async def run(self, every: float = 30.0) -> None:
        """Until cancelled: listen on the bus (PostgreSQL), vouch for the connections held here, and (the leader)
        end connections whose process is gone and forget sessions past retention."""
        listening = asyncio.create_task(self.bus.run()) if self.bus is not None else None
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.upkeep()
                except Exception:
                    log.exception("session upkeep failed; will retry")
        finally:
            if listening is not None:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listening

    async def upkeep(self) -> None:
        from cloudassist.services.sessions import SessionService  # (services import no api module)

        if self.ctx is None:
            return
        service = SessionService(self.ctx)
        await service.vouch(sorted(self.clients))
        if self.ctx.leader.is_leader:
            lost, forgotten = await service.sweep()
            if lost or forgotten:
                log.info(
                    "session sweep: %d connections of stopped servers ended, %d old sessions forgotten", lost, forgotten
                )

    # saying things

    def heard(self, where: str, channel: str, kind: str, data: bytes) -> None:
        """A message for an end of `channel`, from this process or (through the bus) another one."""
        if where == "kick":
            if self.hub is not None:
                self.hub.say(channel, data.decode())
            return
        ends = self.agents if where == "agent" else self.clients
        end = ends.get(channel)
        if end is not None:
            end.told(kind, data)

    def _send(self, where: str, channel: str, kind: str, data: bytes = b"") -> None:
        if channel in (self.agents if where == "agent" else self.clients):
            self.heard(where, channel, kind, data)
        elif self.bus is not None:
            self._spawn(self.bus.send(where, channel, kind, data))

    def to_agent(self, channel: str, kind: str, data: bytes = b"") -> None:
        self._send("agent", channel, kind, data)

    def to_client(self, channel: str, kind: str, data: bytes = b"") -> None:
        self._send("client", channel, kind, data)

    def kick(self, instance_id: str, text: str) -> None:
        """`kick_vm session …` to the instance's agent, wherever its notify websocket is."""
        if self.hub is not None:
            self.hub.say(instance_id, text)
        if self.bus is not None:
            self._spawn(self.bus.send("kick", instance_id, "say", text.encode()))

    def start(self, channel: str, instance_id: str) -> None:
        self.kick(instance_id, f"kick_vm session start {channel}")

    def stop(self, channel: str, instance_id: str) -> None:
        """Stop the agent's channel for good: the stop kick, then its socket closed (its re-dials are refused)."""
        self.kick(instance_id, f"kick_vm session stop {channel}")
        self.to_agent(channel, "close")

    def ended(self, channels: Iterable[tuple[str, str]], reason: str) -> None:
        """Connections ended by a call (EndTerminalSession): stop their agents, close their clients."""
        for channel, instance_id in channels:
            self.stop(channel, instance_id)
            self.to_client(channel, "end", reason.encode())

    def _spawn(self, work: Any) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task


def relay_of(ctx: Context) -> tuple[Context, Relay]:
    """The context's relay, or (tests of one face alone) a new one bound to it."""
    if isinstance(ctx.sessions, Relay):
        return ctx, ctx.sessions
    relay = Relay()
    ctx = replace(ctx, sessions=relay)
    relay.bind(ctx)
    return ctx, relay
