"""DescribeCloudAssistantSettings, ModifyCloudAssistantSettings (reference A.15, A.16)."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.domain.assistant_settings import (
    AGENT_UPGRADE_CONFIG,
    DELIVERY_TYPES,
    RESOURCE_USAGE_CONFIG,
    SESSION_MANAGER_CONFIG,
    SESSION_MANAGER_DELIVERY,
    AssistantSettings,
    check_setting_type,
)
from cloudassist.services.assistant_settings import AssistantSettingsService

#: The JSON-object parameters of ModifyCloudAssistantSettings, each sent as one JSON text.
CONFIGS = (
    "AgentUpgradeConfig",
    "OssDeliveryConfig",
    "ResourceUsageConfig",
    "SessionManagerConfig",
    "SlsDeliveryConfig",
)


@action("DescribeCloudAssistantSettings", Param("SettingType", "list", required=True))
async def describe_cloud_assistant_settings(call: Call) -> dict[str, Any]:
    asked = list(dict.fromkeys(check_setting_type(t) for t in call["SettingType"]))
    settings = await AssistantSettingsService(call.ctx).get(call.scope.account_id)
    body: dict[str, Any] = {}
    deliveries = [t for t in asked if t in DELIVERY_TYPES]
    if deliveries:
        body["OssDeliveryConfigs"] = {"OssDeliveryConfig": [_oss(settings, t) for t in deliveries]}
        body["SlsDeliveryConfigs"] = {"SlsDeliveryConfig": [_sls(settings, t) for t in deliveries]}
    if AGENT_UPGRADE_CONFIG in asked:
        upgrade = settings.agent_upgrade
        body["AgentUpgradeConfig"] = {
            "AllowedUpgradeWindows": {"AllowedUpgradeWindow": list(upgrade.allowed_upgrade_windows)},
            "BootstrapUpgrade": upgrade.bootstrap_upgrade,
            "DisableUpgrade": upgrade.disable_upgrade,
            "Enabled": upgrade.enabled,
            "TimeZone": upgrade.time_zone,
        }
    if SESSION_MANAGER_CONFIG in asked:
        body["SessionManagerConfig"] = {"SessionManagerEnabled": settings.session_manager_enabled}
    if RESOURCE_USAGE_CONFIG in asked:
        usage = settings.resource_usage
        body["ResourceUsageConfig"] = {
            "CpuLimit": usage.cpu_limit,
            "KeepScriptFile": usage.keep_script_file,
            "LogFileCountLimit": usage.log_file_count_limit,
            "LogSizeLimit": usage.log_size_limit,
            "MemoryLimit": usage.memory_limit,
            "OverloadLimit": usage.overload_limit,
        }
    return body


def _delivery(settings: AssistantSettings, setting_type: str) -> Any:
    return settings.session_delivery if setting_type == SESSION_MANAGER_DELIVERY else settings.invocation_delivery


def _oss(settings: AssistantSettings, setting_type: str) -> dict[str, Any]:
    oss = _delivery(settings, setting_type).oss
    return {
        "BucketName": oss.bucket_name,
        "DeliveryType": DELIVERY_TYPES[setting_type],
        "Enabled": oss.enabled,
        "EncryptionAlgorithm": oss.encryption_algorithm,
        "EncryptionKeyId": oss.encryption_key_id,
        "EncryptionType": oss.encryption_type,
        "Prefix": oss.prefix,
    }


def _sls(settings: AssistantSettings, setting_type: str) -> dict[str, Any]:
    sls = _delivery(settings, setting_type).sls
    return {
        "DeliveryType": DELIVERY_TYPES[setting_type],
        "Enabled": sls.enabled,
        "LogstoreName": sls.logstore_name,
        "ProjectName": sls.project_name,
    }


@action("ModifyCloudAssistantSettings", Param("SettingType", required=True), *(Param(n, "json") for n in CONFIGS))
async def modify_cloud_assistant_settings(call: Call) -> dict[str, Any]:
    await AssistantSettingsService(call.ctx).modify(
        call.scope.account_id, call["SettingType"], {name: call[name] for name in CONFIGS}
    )
    return {}
