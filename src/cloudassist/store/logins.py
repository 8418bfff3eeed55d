"""Signed-in sessions of the web console, by the hash of their token."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select, update

from cloudassist.clock import utc
from cloudassist.store._base import Repository
from cloudassist.store.tables import access_keys, accounts, console_sessions

S = console_sessions.c


@dataclass(frozen=True)
class ConsoleSession:
    """A live session: whose account it acts as (through which key), its CSRF token and its region."""

    token_hash: str
    account_id: int
    account_name: str
    access_key_id: str
    csrf_token: str
    region_id: str
    expires_at: datetime

    def __repr__(self) -> str:  # never the CSRF token
        return f"ConsoleSession(account={self.account_name!r}, key={self.access_key_id!r})"


class Logins(Repository):
    async def add(self, session: ConsoleSession, now: datetime) -> None:
        await self.conn.execute(
            console_sessions.insert().values(
                token_hash=session.token_hash,
                account_id=session.account_id,
                access_key_id=session.access_key_id,
                csrf_token=session.csrf_token,
                region_id=session.region_id,
                creation_time=now,
                expires_at=session.expires_at,
            )
        )

    async def live(self, token_hash: str, now: datetime) -> ConsoleSession | None:
        """The session of this token hash, if it has not expired and its key is still enabled."""
        stmt = (
            select(
                S.token_hash, S.account_id, accounts.c.name, S.access_key_id, S.csrf_token, S.region_id, S.expires_at
            )
            .join(accounts, accounts.c.account_id == S.account_id)
            .join(access_keys, access_keys.c.access_key_id == S.access_key_id)
            .where(S.token_hash == token_hash, S.expires_at > now, access_keys.c.enabled.is_(True))
        )
        row = (await self.conn.execute(stmt)).first()
        if row is None:
            return None
        return ConsoleSession(row[0], int(row[1]), row[2], row[3], row[4], row[5], utc(row[6]))

    async def set_region(self, token_hash: str, region_id: str) -> None:
        await self.conn.execute(update(console_sessions).where(S.token_hash == token_hash).values(region_id=region_id))

    async def remove(self, token_hash: str) -> bool:
        result = await self.conn.execute(delete(console_sessions).where(S.token_hash == token_hash))
        return bool(result.rowcount)

    async def purge(self, now: datetime) -> int:
        result = await self.conn.execute(delete(console_sessions).where(S.expires_at <= now))
        return int(result.rowcount)
