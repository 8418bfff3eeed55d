"""Kicks between the servers that share one PostgreSQL database: PostgreSQL's LISTEN/NOTIFY.

RunCommand may land on server A while the instance's agent keeps its websocket to server B. A publishes the
instance ids on the channel after its transaction commits; every server listening kicks the agents it holds.
A kick carries no work, so one lost (a server restarting, the database away) costs only time: the delivery
loop of every server kicks again, within seconds, every agent whose work still waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Final

log = logging.getLogger("cloudassist.channel")

CHANNEL: Final = "cloudassist_kick"
#: NOTIFY payloads must stay below 8000 bytes.
PAYLOAD_LIMIT: Final = 7000


class KickChannel:
    #: The LISTEN/NOTIFY channel (the session relay's bus listens on its own: api/session/relay.py).
    name: str = CHANNEL

    def __init__(self, url: str, on_kick: Callable[[list[str]], None], retry: float = 2.0) -> None:
        self.url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        self.on_kick = on_kick
        self.retry = retry
        #: Marks this server's own messages, which it has acted on already.
        self.origin = uuid.uuid4().hex[:12]
        self._conn: Any = None
        self._using = asyncio.Lock()  # an asyncpg connection runs one query at a time

    async def run(self) -> None:
        """Listen until cancelled, reconnecting whenever the connection is lost."""
        import asyncpg  # type: ignore[import-untyped]

        try:
            while True:
                try:
                    self._conn = await asyncpg.connect(self.url, timeout=10)
                    await self._conn.add_listener(self.name, self._heard)
                    while not self._conn.is_closed():
                        await asyncio.sleep(self.retry)
                        async with self._using:
                            await self._conn.fetchval("SELECT 1", timeout=10)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.warning("kick channel lost (%s); reconnecting", type(exc).__name__)
                await self._close()
                await asyncio.sleep(self.retry)
        finally:
            await self._close()

    def _heard(self, _conn: Any, _pid: int, _channel: str, payload: str) -> None:
        origin, _, ids = payload.partition(" ")
        if origin != self.origin and ids:
            self.on_kick(ids.split())

    async def publish(self, instance_ids: Iterable[str]) -> None:
        """Tell the other servers; silently nothing while the channel is down (the delivery loop covers it)."""
        conn = self._conn
        if conn is None or conn.is_closed():
            return
        batch: list[str] = []
        size = 0
        for instance_id in instance_ids:
            if size + len(instance_id) + 1 > PAYLOAD_LIMIT:
                await self._notify(conn, batch)
                batch, size = [], 0
            batch.append(instance_id)
            size += len(instance_id) + 1
        if batch:
            await self._notify(conn, batch)

    async def _notify(self, conn: Any, ids: list[str]) -> None:
        try:
            async with self._using:
                await conn.execute("SELECT pg_notify($1, $2)", self.name, f"{self.origin} {' '.join(ids)}")
        except Exception as exc:
            log.debug("kick not published (%s)", type(exc).__name__)

    async def _close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close(timeout=2)
            self._conn = None
