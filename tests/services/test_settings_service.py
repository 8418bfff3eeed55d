"""AssistantSettingsService: each account's settings on both engines, one section changed at a time."""

from __future__ import annotations

import asyncio

import pytest

from cloudassist.errors import ApiError
from cloudassist.services.assistant_settings import AssistantSettings, AssistantSettingsService
from cloudassist.services.context import Context
from cloudassist.testing import FixedClock


async def account(ctx: Context, name: str) -> int:
    async with ctx.store.write() as tx:
        return await tx.accounts.ensure(name, FixedClock().now())


async def test_an_account_that_never_changed_a_setting_has_the_defaults(ctx: Context) -> None:
    """Session Manager on, no transcripts, no upgrade windows: what an account starts with."""
    got = await AssistantSettingsService(ctx).get(await account(ctx, "alice"))
    assert got == AssistantSettings()
    assert got.session_manager_enabled is True
    assert got.session_transcript_enabled is False
    assert got.agent_upgrade.enabled is False


async def test_one_section_changes_and_the_others_stay(ctx: Context) -> None:
    """Turning Session Manager off keeps the upgrade windows set before; both are read back after a commit."""
    service = AssistantSettingsService(ctx)
    alice = await account(ctx, "alice")
    windows = {"Enabled": True, "AllowedUpgradeWindow": ["02:00-03:00"], "TimeZone": "Asia/Shanghai"}
    await service.modify(alice, "AgentUpgradeConfig", {"AgentUpgradeConfig": windows})
    await service.modify(alice, "SessionManagerConfig", {"SessionManagerConfig": {"SessionManagerEnabled": False}})
    got = await service.get(alice)
    assert got.session_manager_enabled is False
    assert got.agent_upgrade.allowed_upgrade_windows == ("02:00-03:00",)
    assert got.agent_upgrade.time_zone == "Asia/Shanghai"
    assert await service.session_manager_enabled(alice) is False


async def test_session_delivery_turns_transcripts_on(ctx: Context) -> None:
    """A SessionManagerDelivery enabled to SLS is what keeps session transcripts; InvocationDelivery does not."""
    service = AssistantSettingsService(ctx)
    alice = await account(ctx, "alice")
    sls = {"Enabled": True, "ProjectName": "audit-project", "LogstoreName": "sessions_log"}
    await service.modify(alice, "InvocationDelivery", {"SlsDeliveryConfig": sls})
    assert (await service.get(alice)).session_transcript_enabled is False
    await service.modify(alice, "SessionManagerDelivery", {"SlsDeliveryConfig": sls})
    got = await service.get(alice)
    assert got.session_transcript_enabled is True
    assert got.session_delivery.sls.project_name == "audit-project"


async def test_settings_are_per_account(ctx: Context) -> None:
    """One account's change is invisible to another's settings."""
    service = AssistantSettingsService(ctx)
    alice, bob = await account(ctx, "alice"), await account(ctx, "bob")
    await service.modify(alice, "SessionManagerConfig", {"SessionManagerConfig": {"SessionManagerEnabled": False}})
    assert (await service.get(bob)).session_manager_enabled is True


async def test_a_refused_change_changes_nothing(ctx: Context) -> None:
    """A window too short is refused and the earlier windows remain."""
    service = AssistantSettingsService(ctx)
    alice = await account(ctx, "alice")
    await service.modify(
        alice, "AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["01:00-02:00"]}}
    )
    with pytest.raises(ApiError) as caught:
        await service.modify(
            alice, "AgentUpgradeConfig", {"AgentUpgradeConfig": {"AllowedUpgradeWindow": ["01:00-01:30"]}}
        )
    assert caught.value.code == "InvalidAllowedUpgradeWindow.DurationTooShort"
    assert (await service.get(alice)).agent_upgrade.allowed_upgrade_windows == ("01:00-02:00",)


async def test_concurrent_changes_of_two_sections_both_remain(ctx: Context) -> None:
    """Two modifications at once, of different sections, lose neither (the row is held while it changes)."""
    service = AssistantSettingsService(ctx)
    alice = await account(ctx, "alice")
    await asyncio.gather(
        service.modify(alice, "SessionManagerConfig", {"SessionManagerConfig": {"SessionManagerEnabled": False}}),
        service.modify(alice, "InvocationDelivery", {"OssDeliveryConfig": {"Enabled": True, "BucketName": "logs-1"}}),
    )
    got = await service.get(alice)
    assert got.session_manager_enabled is False
    assert got.invocation_delivery.oss.bucket_name == "logs-1"
