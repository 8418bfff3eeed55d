"""Websocket connections of agents, by instance, and the kick that tells them to fetch.

A kick carries no work: it only says "fetch your task list". Losing one loses nothing, since
heart-beats and the server's sweeper kick again while work is waiting.

An instance holds at most SOCKETS_PER_INSTANCE websockets here: a new one replaces the oldest, which is
closed (an agent opens one; a second is a reconnect whose old socket has not been seen to die yet, or a
copy of the machine, which reconnects in turn). The hub also remembers the last sign of life it saw of
each connected instance, so that the close of its last socket can mark it offline (services/instances.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterable
from datetime import datetime
from typing import Any, Final

from starlette.websockets import WebSocket

from cloudassist.store.channel import KickChannel

log = logging.getLogger("cloudassist.agent_face")
#: Websockets one instance may hold on this server; a new one beyond it closes the oldest.
SOCKETS_PER_INSTANCE: Final = 1


class KickHub:
    """Implements services.context.Notifier for agents connected to this process."""

    def __init__(self) -> None:
        self._sockets: dict[str, list[WebSocket]] = {}  # oldest first
        self._seen: dict[str, datetime] = {}  # of the instances connected here
        self._tasks: set[asyncio.Task[None]] = set()
        #: Other servers sharing the database (PostgreSQL), told of every kick this one makes.
        self.channel: KickChannel | None = None

    def add(self, instance_id: str, ws: WebSocket, now: datetime) -> None:
        """A websocket of `instance_id` opened at `now`; the oldest beyond the cap is closed."""
        sockets = self._sockets.setdefault(instance_id, [])
        while len(sockets) >= SOCKETS_PER_INSTANCE:
            self._spawn(self._close(instance_id, sockets.pop(0)))
        sockets.append(ws)
        self.seen(instance_id, now)

    def remove(self, instance_id: str, ws: WebSocket) -> datetime | None:
        """`ws` closed. When it was the instance's last websocket here: the last sign of life seen of it."""
        sockets = self._sockets.get(instance_id)
        if sockets is None or ws not in sockets:
            return None  # replaced by a newer one
        sockets.remove(ws)
        if sockets:
            return None
        del self._sockets[instance_id]
        return self._seen.pop(instance_id, None)

    def seen(self, instance_id: str, when: datetime) -> None:
        """A sign of life of `instance_id` (its websocket opened, a heart-beat) at `when`."""
        if instance_id in self._sockets:
            self._seen[instance_id] = max(when, self._seen.get(instance_id, when))

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

    def say(self, instance_id: str, text: str) -> None:
        """Send `text` (a session kick, `kick_vm session start <channel>`) to the agent of `instance_id` if it is
        connected to this server."""
        for ws in list(self._sockets.get(instance_id, ())):
            self._spawn(self._send(instance_id, ws, text))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _close(self, instance_id: str, ws: WebSocket) -> None:
        try:
            await ws.close(code=1000, reason="replaced by a newer connection")
        except Exception:  # already closing
            log.debug("closing a replaced websocket of %s failed", instance_id)

    async def _send(self, instance_id: str, ws: WebSocket, text: str = "kick_vm") -> None:
        try:
            await ws.send_text(text)
        except Exception:  # a dead socket is removed by its own receive loop
            log.debug("kick to %s failed", instance_id)
