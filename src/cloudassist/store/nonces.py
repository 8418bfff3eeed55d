"""Signature nonces already seen, so a replayed request is refused by every server sharing the store."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete

from cloudassist.store._base import Repository, skip_existing
from cloudassist.store.tables import nonces


class Nonces(Repository):
    async def claim(self, access_key_id: str, nonce: str, expires_at: datetime) -> bool:
        """Record a nonce; False if this key used it before (a replay)."""
        values = {"access_key_id": access_key_id, "nonce": nonce, "expires_at": expires_at}
        return bool((await self.conn.execute(skip_existing(nonces, self.dialect), values)).rowcount)

    async def purge(self, now: datetime) -> int:
        """Forget nonces whose requests would now be refused for their timestamp anyway."""
        result = await self.conn.execute(delete(nonces).where(nonces.c.expires_at < now))
        return int(result.rowcount)
