"""Each account's Cloud Assistant settings: read them (DescribeCloudAssistantSettings, and every part of the
server whose behaviour they choose) and change one section (ModifyCloudAssistantSettings).

What other parts ask:

    settings = await AssistantSettingsService(ctx).get(account_id)
    settings.session_manager_enabled       # Session Manager on/off (StartTerminalSession refuses when off)
    settings.session_transcript_enabled    # keep session transcripts (the SessionManagerDelivery is on)
    settings.agent_upgrade                 # AgentUpgradeConfig: when agents may upgrade
    settings.session_delivery / .invocation_delivery   # the OSS/SLS delivery as set (nothing is sent there)

The record is per account and holds in every region (the docs say so of Session Manager's switch).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from cloudassist.domain.assistant_settings import (
    AgentUpgradeConfig,
    AssistantSettings,
    Delivery,
    modified,
    next_upgrade_check,
)
from cloudassist.services.context import Context
from cloudassist.store.store import Tx

__all__ = ["AgentUpgradeConfig", "AssistantSettings", "AssistantSettingsService", "Delivery"]


class AssistantSettingsService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def get(self, account_id: int) -> AssistantSettings:
        """The account's settings (the defaults if it never changed any)."""
        async with self.ctx.store.read() as tx:
            return await tx.assistant_settings.get(account_id)

    @staticmethod
    async def get_in(tx: Tx, account_id: int) -> AssistantSettings:
        """The same, inside a transaction the caller holds."""
        return await tx.assistant_settings.get(account_id)

    async def session_manager_enabled(self, account_id: int) -> bool:
        return (await self.get(account_id)).session_manager_enabled

    async def modify(
        self, account_id: int, setting_type: str, configs: dict[str, dict[str, Any] | None]
    ) -> AssistantSettings:
        """Replace the section `setting_type` from the request's JSON objects; the account's new settings.
        A value the rules refuse (domain/assistant_settings.py) rolls the transaction back: nothing changes."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            await tx.assistant_settings.lock(account_id, now)
            changed = modified(await tx.assistant_settings.get(account_id), setting_type, configs)
            await tx.assistant_settings.put(account_id, changed, now)
        return changed

    @staticmethod
    def upgrade_wait(settings: AssistantSettings, now: datetime) -> int | None:
        """Seconds until an agent of the account may upgrade; None when it may now."""
        return next_upgrade_check(settings.agent_upgrade, now)
