"""DescribeCloudAssistantSettings and ModifyCloudAssistantSettings in-process: every SettingType, every rule
on the JSON objects with its documented code, and one account's settings invisible to another's."""

from __future__ import annotations

import json
from typing import Any

import pytest
from apiwire import REGION, Api, Reply

from cloudassist.services.access import AccessService
from cloudassist.testing import sign_v1

ALL = {f"SettingType.{i}": t for i, t in enumerate(
    ["SessionManagerDelivery", "InvocationDelivery", "AgentUpgradeConfig", "SessionManagerConfig",
     "ResourceUsageConfig"], start=1)}


async def modify(api: Api, setting_type: str, **configs: Any) -> Reply:
    return await api.call("ModifyCloudAssistantSettings", {
        "SettingType": setting_type, **{k: v if isinstance(v, str) else json.dumps(v) for k, v in configs.items()}})


async def test_defaults_of_every_setting_type(api: Api) -> None:
    """An account that never changed a setting: Session Manager on, no delivery, default upgrade and limits; each
    list wrapped as the SDK model has it, one delivery entry per asked delivery type."""
    body = await api.ok("DescribeCloudAssistantSettings", ALL)
    assert body["SessionManagerConfig"] == {"SessionManagerEnabled": True}
    assert body["AgentUpgradeConfig"] == {"AllowedUpgradeWindows": {"AllowedUpgradeWindow": []},
                                          "BootstrapUpgrade": True, "DisableUpgrade": False, "Enabled": False,
                                          "TimeZone": "UTC"}
    assert [c["DeliveryType"] for c in body["OssDeliveryConfigs"]["OssDeliveryConfig"]] == [
        "SessionManager", "Invocation"]
    assert [c["Enabled"] for c in body["SlsDeliveryConfigs"]["SlsDeliveryConfig"]] == [False, False]
    assert body["ResourceUsageConfig"] == {"CpuLimit": 20, "KeepScriptFile": False, "LogFileCountLimit": 30,
                                           "LogSizeLimit": "100MB", "MemoryLimit": "50MB", "OverloadLimit": 3}


async def test_only_the_asked_sections_are_returned(api: Api) -> None:
    """SettingType.1=SessionManagerConfig returns that object alone."""
    body = await api.ok("DescribeCloudAssistantSettings", {"SettingType.1": "SessionManagerConfig"})
    assert set(body) == {"RequestId", "SessionManagerConfig"}


async def test_modify_then_describe_every_type(api: Api) -> None:
    """What ModifyCloudAssistantSettings sets, DescribeCloudAssistantSettings returns, type by type."""
    oss = {"Enabled": True, "BucketName": "audit-bucket", "Prefix": "sessions/", "EncryptionType": "KMS",
           "EncryptionAlgorithm": "SM4", "EncryptionKeyId": "key-1"}
    assert (await modify(api, "SessionManagerDelivery", OssDeliveryConfig=oss)).status == 200
    sls = {"Enabled": True, "ProjectName": "ops-logs", "LogstoreName": "invocation_store"}
    assert (await modify(api, "InvocationDelivery", SlsDeliveryConfig=sls)).status == 200
    upgrade = {"Enabled": True, "AllowedUpgradeWindow": ["02:00-03:00", "23:30-00:30"], "TimeZone": "GMT+8:00",
               "BootstrapUpgrade": False}
    assert (await modify(api, "AgentUpgradeConfig", AgentUpgradeConfig=upgrade)).status == 200
    off = {"SessionManagerEnabled": False}
    assert (await modify(api, "SessionManagerConfig", SessionManagerConfig=off)).status == 200
    usage = {"CpuLimit": 95, "MemoryLimit": "1024MB", "LogSizeLimit": "10240KB", "LogFileCountLimit": 7,
             "OverloadLimit": 3, "KeepScriptFile": True}
    assert (await modify(api, "ResourceUsageConfig", ResourceUsageConfig=usage)).status == 200
    body = await api.ok("DescribeCloudAssistantSettings", ALL)
    session_oss = body["OssDeliveryConfigs"]["OssDeliveryConfig"][0]
    assert session_oss == {"BucketName": "audit-bucket", "DeliveryType": "SessionManager", "Enabled": True,
                           "EncryptionAlgorithm": "SM4", "EncryptionKeyId": "key-1", "EncryptionType": "KMS",
                           "Prefix": "sessions/"}
    assert body["SlsDeliveryConfigs"]["SlsDeliveryConfig"][1] == {
        "DeliveryType": "Invocation", "Enabled": True, "LogstoreName": "invocation_store", "ProjectName": "ops-logs"}
    assert body["AgentUpgradeConfig"]["AllowedUpgradeWindows"]["AllowedUpgradeWindow"] == ["02:00-03:00",
                                                                                           "23:30-00:30"]
    assert body["AgentUpgradeConfig"]["TimeZone"] == "GMT+8:00"
    assert body["AgentUpgradeConfig"]["BootstrapUpgrade"] is False
    assert body["SessionManagerConfig"] == {"SessionManagerEnabled": False}
    assert body["ResourceUsageConfig"]["CpuLimit"] == 95
    assert body["ResourceUsageConfig"]["LogSizeLimit"] == "10240KB"


async def test_xml_answer_wraps_the_window_list(api: Api) -> None:
    """Format=XML repeats <AllowedUpgradeWindow> inside <AllowedUpgradeWindows>."""
    await modify(api, "AgentUpgradeConfig", AgentUpgradeConfig={"Enabled": True,
                                                                "AllowedUpgradeWindow": ["01:00-02:00"]})
    reply = await api.call("DescribeCloudAssistantSettings", {"SettingType.1": "AgentUpgradeConfig"}, fmt="XML")
    assert reply.status == 200
    assert reply.root == "DescribeCloudAssistantSettingsResponse"
    assert b"<AllowedUpgradeWindows><AllowedUpgradeWindow>01:00-02:00</AllowedUpgradeWindow>" in reply.response.content


@pytest.mark.parametrize(("setting_type", "configs", "code", "status"), [
    ("Nope", {}, "InvalidParameter.SettingType", 400),
    ("SessionManagerDelivery", {"OssDeliveryConfig": {"Enabled": True, "BucketName": "Upper"}},
     "InvalidParameter.OssBucketName", 400),
    ("SessionManagerDelivery", {"OssDeliveryConfig": {"Enabled": True}}, "InvalidParameter.OssBucketName", 400),
    ("SessionManagerDelivery", {"OssDeliveryConfig": {"BucketName": "b" * 64}}, "InvalidParameter.OssBucketName", 400),
    ("SessionManagerDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "Prefix": "/abs"}},
     "InvalidParameter.OssPrefix", 400),
    ("SessionManagerDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "Prefix": "p" * 255}},
     "InvalidParameter.OssPrefix", 400),
    ("InvocationDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "EncryptionType": "Plain"}},
     "InvalidParameter.OssEncryptionType", 400),
    ("InvocationDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "EncryptionAlgorithm": "DES"}},
     "InvalidParameter.OssEncryptionAlgorithm", 400),
    ("InvocationDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "EncryptionType": "KMS"}},
     "InvalidParameter.OssEncryptionKeyId", 400),
    ("InvocationDelivery", {"OssDeliveryConfig": {"BucketName": "ok-b", "EncryptionKeyId": "k"}},
     "InvalidParameter.OssEncryptionKeyId", 400),
    ("InvocationDelivery", {"SlsDeliveryConfig": {"Enabled": True, "ProjectName": "p_1", "LogstoreName": "ls1"}},
     "InvalidParameter.SlsProjectName", 400),
    ("InvocationDelivery", {"SlsDeliveryConfig": {"Enabled": True, "ProjectName": "p-1", "LogstoreName": "-x-"}},
     "InvalidParameter.SlsLogstoreName", 400),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["2:00-3:00"]}},
     "InvalidParameter.AllowedUpgradeWindow", 400),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["02:00-02:59"]}},
     "InvalidAllowedUpgradeWindow.DurationTooShort", 400),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": []}},
     "InvalidAllowedUpgradeWindow.Required", 400),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": [
        f"{h:02d}:00-{h + 1:02d}:00" for h in range(6)]}}, "InvalidAllowedUpgradeWindow.CountLimitExceeded", 403),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["01:00-02:00"],
                                                   "TimeZone": "GMT+08:00"}}, "InvalidParameter.TimeZone", 400),
    ("AgentUpgradeConfig", {"AgentUpgradeConfig": {"Enabled": True, "AllowedUpgradeWindow": ["01:00-02:00"],
                                                   "TimeZone": "Mars/Olympus"}}, "InvalidParameter.TimeZone", 400),
    ("SessionManagerConfig", {"SessionManagerConfig": {"SessionManagerEnabled": "maybe"}},
     "InvalidParameter.SessionManagerConfig", 400),
    ("SessionManagerConfig", {"SessionManagerConfig": "[1]"}, "InvalidParameter.SessionManagerConfig", 400),
    ("ResourceUsageConfig", {"ResourceUsageConfig": {"CpuLimit": 9}}, "InvalidParameter.ResourceUsageConfig", 400),
    ("ResourceUsageConfig", {"ResourceUsageConfig": {"MemoryLimit": "34MB"}},
     "InvalidParameter.ResourceUsageConfig", 400),
    ("ResourceUsageConfig", {"ResourceUsageConfig": {"LogSizeLimit": "2GB"}},
     "InvalidParameter.ResourceUsageConfig", 400),
    ("ResourceUsageConfig", {"ResourceUsageConfig": {"LogFileCountLimit": 366}},
     "InvalidParameter.ResourceUsageConfig", 400),
    ("ResourceUsageConfig", {"ResourceUsageConfig": {"OverloadLimit": 2}},
     "InvalidParameter.ResourceUsageConfig", 400),
])
async def test_each_rule_has_its_code(api: Api, setting_type: str, configs: dict[str, Any], code: str,
                                      status: int) -> None:
    """A value a rule refuses is answered with the documented code and status, and changes nothing."""
    before = await api.ok("DescribeCloudAssistantSettings", ALL)
    reply = await modify(api, setting_type, **configs)
    assert (reply.status, reply.code) == (status, code), reply.body
    after = await api.ok("DescribeCloudAssistantSettings", ALL)
    assert {k: v for k, v in after.items() if k != "RequestId"} == {k: v for k, v in before.items()
                                                                    if k != "RequestId"}


async def test_a_window_past_midnight_of_an_hour_is_taken(api: Api) -> None:
    """23:30-00:30 lasts an hour: accepted; 23:30-00:29 does not: refused."""
    ok = await modify(api, "AgentUpgradeConfig", AgentUpgradeConfig={"Enabled": True,
                                                                     "AllowedUpgradeWindow": ["23:30-00:30"]})
    assert ok.status == 200
    short = await modify(api, "AgentUpgradeConfig", AgentUpgradeConfig={"AllowedUpgradeWindow": ["23:30-00:29"]})
    assert short.code == "InvalidAllowedUpgradeWindow.DurationTooShort"


@pytest.mark.parametrize(("action", "params", "code"), [
    ("DescribeCloudAssistantSettings", {}, "MissingParameter.SettingType"),
    ("DescribeCloudAssistantSettings", {"SettingType.1": "Everything"}, "InvalidParameter.SettingType"),
    ("ModifyCloudAssistantSettings", {}, "MissingParameter.SettingType"),
    ("ModifyCloudAssistantSettings", {"SettingType": "AgentUpgradeConfig", "AgentUpgradeConfig": "{not json"},
     "InvalidParameter.AgentUpgradeConfig"),
])
async def test_missing_and_malformed_parameters(api: Api, action: str, params: dict[str, str], code: str) -> None:
    """No SettingType, an unknown one, or a JSON parameter that is not an object: a 400 with its code."""
    reply = await api.call(action, params)
    assert (reply.status, reply.code) == (400, code)


async def test_settings_of_one_account_are_not_another_s(api: Api) -> None:
    """Account bob turning Session Manager off leaves the default account's on, and bob reads his own."""
    await AccessService(api.ctx).ensure_key("AKBOB0000000000", "bob-secret", "bob")

    async def as_bob(params: dict[str, str]) -> Reply:
        signed = sign_v1({"Format": "JSON", "RegionId": REGION, **params}, "AKBOB0000000000", "bob-secret",
                         method="POST", timestamp=api.ctx.clock.now())
        return api.check(await api.send(signed), "JSON")

    off = json.dumps({"SessionManagerEnabled": False})
    assert (await as_bob({"Action": "ModifyCloudAssistantSettings", "SettingType": "SessionManagerConfig",
                          "SessionManagerConfig": off})).status == 200
    mine = await api.ok("DescribeCloudAssistantSettings", {"SettingType.1": "SessionManagerConfig"})
    bobs = await as_bob({"Action": "DescribeCloudAssistantSettings", "SettingType.1": "SessionManagerConfig"})
    assert mine["SessionManagerConfig"]["SessionManagerEnabled"] is True
    assert bobs.body["SessionManagerConfig"]["SessionManagerEnabled"] is False
