"""The rules of the settings record, as a table: when an agent may upgrade, which time zones and windows are
taken, and that a record survives its JSON document."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from cloudassist.domain.assistant_settings import (
    AgentUpgradeConfig,
    AssistantSettings,
    modified,
    next_upgrade_check,
    zone_of,
)
from cloudassist.errors import ApiError

NOON = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("config", "now", "wait"), [
    (AgentUpgradeConfig(), NOON, None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("12:00-13:00",)), NOON, None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("11:00-12:00",)), NOON, 23 * 3600),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("13:00-14:00", "12:30-13:30")), NOON, 1800),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("23:00-01:00",)),
     datetime(2026, 11, 26, 0, 30, tzinfo=UTC), None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("20:00-21:00",), time_zone="Asia/Shanghai"),
     NOON, None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("20:00-21:00",), time_zone="GMT+8:00"), NOON, None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("05:00-06:00",), time_zone="GMT-7:00"), NOON, None),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("12:00-13:00",), disable_upgrade=True), NOON, 1800),
    (AgentUpgradeConfig(enabled=True, allowed_upgrade_windows=("12:01-13:01",)),
     datetime(2026, 11, 26, 12, 0, 59, tzinfo=UTC), 60),
])
def test_when_an_agent_may_upgrade(config: AgentUpgradeConfig, now: datetime, wait: int | None) -> None:
    """Off: any time. On: inside a window (in its time zone, across midnight too) now, else the seconds until the
    nearest opens (at least a minute); DisableUpgrade: never, checked again after the default 1800 s."""
    assert next_upgrade_check(config, now) == wait


@pytest.mark.parametrize("name", ["UTC", "Asia/Shanghai", "America/Los_Angeles", "GMT+8:00", "GMT-7:00", "GMT+8",
                                  "GMT+5:30", "GMT+0"])
def test_time_zones_taken(name: str) -> None:
    """Full zone names and GMT offsets without a leading zero."""
    zone_of(name)


@pytest.mark.parametrize("name", ["GMT+08:00", "GMT+15:00", "UTC+8", "Shanghai", "Mars/Olympus", "", "../etc/passwd",
                                  "GMT+8:60"])
def test_time_zones_refused(name: str) -> None:
    """A leading zero, an offset past 14 hours, no such zone: InvalidParameter.TimeZone."""
    with pytest.raises(ApiError) as caught:
        zone_of(name)
    assert caught.value.code == "InvalidParameter.TimeZone"


def test_a_record_survives_its_document() -> None:
    """Every section set, written as JSON and read back, is the same record."""
    record = AssistantSettings()
    for setting_type, configs in [
        ("SessionManagerConfig", {"SessionManagerConfig": {"SessionManagerEnabled": False}}),
        ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["01:00-02:00"]}}),
        ("SessionManagerDelivery", {"OssDeliveryConfig": {"Enabled": True, "BucketName": "bkt"}}),
        ("InvocationDelivery", {"SlsDeliveryConfig": {"Enabled": True, "ProjectName": "prj", "LogstoreName": "ls_1"}}),
        ("ResourceUsageConfig", {"ResourceUsageConfig": {"CpuLimit": 10, "LogSizeLimit": "10MB"}}),
    ]:
        record = modified(record, setting_type, configs)
    assert AssistantSettings.from_document(record.to_document()) == record
    assert record.session_transcript_enabled is True


def test_disabling_upgrades_needs_no_window() -> None:
    """Enabled with DisableUpgrade and no window is allowed (nothing to schedule); Enabled alone is not."""
    modified(AssistantSettings(), "AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True,
                                                                                "DisableUpgrade": True}})
    with pytest.raises(ApiError) as caught:
        modified(AssistantSettings(), "AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True}})
    assert caught.value.code == "InvalidAllowedUpgradeWindow.Required"


def test_a_type_ignores_the_objects_of_other_types() -> None:
    """SessionManagerConfig with an AgentUpgradeConfig object too changes only Session Manager's switch."""
    record = modified(AssistantSettings(), "SessionManagerConfig", {
        "SessionManagerConfig": {"SessionManagerEnabled": False}, "AgentUpgradeConfig": {"Enabled": True}})
    assert record.agent_upgrade == AgentUpgradeConfig()
    assert record.session_manager_enabled is False
