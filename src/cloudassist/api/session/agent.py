"""The agent's side of a session on the agent face: `v1/session/list`, `v1/session/status` and the data
websocket `/luban/session/backend?channelId=…` (session-protocol.md §2-3). Every one is signed like any agent
request, and a channel is served only to the instance it was made for, only while it is open."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from starlette.websockets import WebSocket

from cloudassist.api.session.relay import Relay, messages
from cloudassist.domain import frames
from cloudassist.domain.frames import FrameError, MessageType
from cloudassist.domain.sessions import Connection, TerminalSession
from cloudassist.services.context import Context

log = logging.getLogger("cloudassist.sessions")


def list_entry(session: TerminalSession, connection: Connection, flow_limit: int) -> dict[str, Any]:
    """The one `session[]` entry of a v1/session/list answer (portNumber is a string; flowLimit 0 or ≥ 16384)."""
    spec = session.spec
    return {
        "channelId": connection.channel_id,
        "websocketUrl": "",
        "cmdContent": spec.command_line,
        "username": spec.username,
        "windowsPasswordName": spec.password_name,
        "portNumber": "" if spec.port_number is None else str(spec.port_number),
        "targetHost": spec.target_server,
        "flowLimit": flow_limit,
    }


class AgentChannel:
    """This process's end of one channel toward the agent: moves frames, nothing else."""

    def __init__(self, ws: WebSocket, channel: str, relay: Relay) -> None:
        self.ws = ws
        self.channel = channel
        self.relay = relay
        self.outbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()

    def told(self, kind: str, data: bytes) -> None:
        self.outbox.put_nowait((kind, data))

    async def run(self) -> None:
        older = self.relay.agents.get(self.channel)
        if older is not None:  # a re-dial while the old socket is not seen dead yet
            older.told("close", b"")
        self.relay.agents[self.channel] = self
        self.relay.to_client(self.channel, "attached")
        writer = asyncio.create_task(self._write())
        try:
            await self._read()
        finally:
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await writer
            if self.relay.agents.get(self.channel) is self:
                del self.relay.agents[self.channel]
                self.relay.to_client(self.channel, "dropped")
            with contextlib.suppress(Exception):
                await self.ws.close()

    async def _read(self) -> None:
        async for data in messages(self.ws):
            try:
                frame = frames.decode_agent(data)
            except FrameError as exc:
                self.relay.to_client(self.channel, "invalid", str(exc).encode())
                return
            if frame.type == MessageType.OUTPUT:
                self.relay.to_client(self.channel, "output", frame.payload)

    async def _write(self) -> None:
        while True:
            kind, data = await self.outbox.get()
            if kind == "close":
                await self.ws.close(code=1000)
                return
            await self.ws.send_bytes(data)


async def agent_websocket(ws: WebSocket, ctx: Context, relay: Relay, instance_id: str) -> None:
    """The data websocket of an authenticated instance: accepted only for an open channel of its own."""
    from cloudassist.services.sessions import SessionService

    channel = ws.query_params.get("channelId", "")
    service = SessionService(ctx)
    if not frames.valid_channel_id(channel) or await service.channel(channel, instance_id) is None:
        log.info("refused session data socket of %s for channel %r", instance_id, channel[:40])
        await ws.close(code=1008)  # before accept: HTTP 403, which the agent takes as a failed dial
        return
    await ws.accept()
    if not await service.agent_connected(channel):
        await ws.close(code=1008)
        return
    await AgentChannel(ws, channel, relay).run()
