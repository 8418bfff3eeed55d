"""ClientToken records: the answer given to a request, to give again when it is retried."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update

from cloudassist.store._base import Repository
from cloudassist.store.tables import client_tokens


class ClientTokens(Repository):
    async def find(self, account_id: int, action: str, token: str) -> tuple[str, str] | None:
        """(fingerprint, response) of an earlier request with this token, if any."""
        row = (
            await self.conn.execute(
                select(client_tokens.c.fingerprint, client_tokens.c.response).where(
                    client_tokens.c.account_id == account_id,
                    client_tokens.c.action == action,
                    client_tokens.c.token == token,
                )
            )
        ).first()
        return None if row is None else (row.fingerprint, row.response)

    async def remember(
        self, account_id: int, action: str, token: str, fingerprint: str, response: str, now: datetime
    ) -> bool:
        return await self.insert_or_skip(
            client_tokens,
            {
                "account_id": account_id,
                "action": action,
                "token": token,
                "fingerprint": fingerprint,
                "response": response,
                "creation_time": now,
            },
        )

    async def record(self, account_id: int, action: str, token: str, response: str) -> None:
        """Store the answer of a request whose token was claimed with `remember`."""
        await self.conn.execute(
            update(client_tokens)
            .where(
                client_tokens.c.account_id == account_id,
                client_tokens.c.action == action,
                client_tokens.c.token == token,
            )
            .values(response=response)
        )
