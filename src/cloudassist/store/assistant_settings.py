"""Each account's Cloud Assistant settings: one JSON document per account (domain/assistant_settings.py)."""

from __future__ import annotations

import json
from datetime import datetime

from sqlalchemy import select, update

from cloudassist.domain.assistant_settings import AssistantSettings
from cloudassist.store._base import Repository
from cloudassist.store.tables import assistant_settings

S = assistant_settings.c


class AssistantSettingsRepo(Repository):
    async def get(self, account_id: int) -> AssistantSettings:
        """The account's settings; the defaults when it never set any."""
        text = await self.conn.scalar(select(S.document).where(S.account_id == account_id))
        return AssistantSettings() if text is None else AssistantSettings.from_document(json.loads(text))

    async def lock(self, account_id: int, now: datetime) -> None:
        """Make the account's row exist and hold it until the transaction ends, so two modifications of
        different sections never lose one of them (read, change, write)."""
        await self.insert_or_skip(
            assistant_settings,
            {"account_id": account_id, "document": json.dumps(AssistantSettings().to_document()), "update_time": now},
        )
        await self.conn.execute(update(assistant_settings).where(S.account_id == account_id).values(update_time=now))

    async def put(self, account_id: int, settings: AssistantSettings, now: datetime) -> None:
        """Replace the account's settings (its row exists: `lock` first)."""
        document = json.dumps(settings.to_document(), separators=(",", ":"))
        await self.conn.execute(
            update(assistant_settings).where(S.account_id == account_id).values(document=document, update_time=now)
        )
