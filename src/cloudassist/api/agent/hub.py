"""Websocket connections of agents, by instance, and the kick that tells them to fetch.

A kick carries no work: it only says "fetch your task list". Losing one loses nothing, since
heart-beats and the server's sweeper kick again while work is waiting.
"""

from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Coroutine, Iterable
from typing import Any

from starlette.websockets import WebSocket

from cloudassist.store.channel import KickChannel

log = logging.getLogger("cloudassist.agent_face")


class KickHub:
    """Implements services.context.Notifier for agents connected to this process."""

    def __init__(self) -> None:
        self._sockets: dict[str, set[WebSocket]] = defaultdict(set)
        self._tasks: set[asyncio.Task[None]] = set()
        #: Other servers sharing the database (PostgreSQL), told of every kick this one makes.
        self.channel: KickChannel | None = None

    def add(self, instance_id: str, ws: WebSocket) -> None:
        self._sockets[instance_id].add(ws)

    def remove(self, instance_id: str, ws: WebSocket) -> None:
        self._sockets[instance_id].discard(ws)
        if not self._sockets[instance_id]:
            del self._sockets[instance_id]

    def connected(self, instance_id: str) -> bool:
        return bool(self._sockets.get(instance_id))

    def count(self) -> int:
        """Instances with an agent connected here (the metric `cloudassist_agents_connected`)."""
        return len(self._sockets)

    def kick(self, instance_ids: Iterable[str]) -> None:
        """Kick these instances' agents, here and (through the channel) on every other server sharing the store."""
        wanted = set(instance_ids)
        self.kick_local(wanted)
        if self.channel is not None and wanted:
            self._spawn(self.channel.publish(sorted(wanted)))

    def kick_local(self, instance_ids: Iterable[str]) -> None:
        """Send `kick_vm` to every agent among `instance_ids` connected to this server (fire and forget)."""
        for instance_id in set(instance_ids):
            for ws in list(self._sockets.get(instance_id, ())):
                self._spawn(self._send(instance_id, ws))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, instance_id: str, ws: WebSocket) -> None:
        try:
            await ws.send_text("kick_vm")
        except Exception:  # a dead socket is removed by its own receive loop
            log.debug("kick to %s failed", instance_id)
