"""Cloud Assistant settings, plug-in status and InstallCloudAssistant through the official SDKs on a live server:
DescribeCloudAssistantSettings and ModifyCloudAssistantSettings (each test in an account of its own, as settings
belong to an account), ListPluginStatus of an agent registered with `cloudassist agent register` that reports
its plug-ins over HTTPS as the official agent's plug-in manager does, and its update check ruled by the
account's upgrade windows."""

from __future__ import annotations

import base64
import json
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeCloudAssistantSettingsRequest import (
    DescribeCloudAssistantSettingsRequest,
)
from aliyunsdkecs.request.v20140526.InstallCloudAssistantRequest import InstallCloudAssistantRequest
from aliyunsdkecs.request.v20140526.ListPluginStatusRequest import ListPluginStatusRequest
from aliyunsdkecs.request.v20140526.ModifyCloudAssistantSettingsRequest import ModifyCloudAssistantSettingsRequest

from acceptance.agents import Agent, activation
from acceptance.sdk import ISO, REGION, Core, Server, core_fails, fails, round_trips, tea_client, unique
from cloudassist.agent import identity, keys
from cloudassist.agent.client import ssl_context
from cloudassist.services.access import AccessService

pytestmark = pytest.mark.acceptance


def own_account(server: Server, flavour: str = "v3") -> tuple[EcsClient, Core]:
    """Both SDKs with the key of a new account, so no other test sees its settings."""
    key = server.loop.run_until_complete(AccessService(server.ctx).create_key(unique("settings")))
    tea = tea_client(server.endpoint, None if flavour == "v3" else "v2", access_key_id=key.access_key_id,
                     secret=key.secret)
    return tea, Core(server.endpoint, key.access_key_id, key.secret)


@pytest.mark.parametrize("flavour", ["v3", "v2"])
def test_tea_modifies_and_describes_every_setting(server: Server, flavour: str) -> None:
    """Each SettingType set through the tea SDK (its JSON objects as it sends them) is described back in the
    typed model; the raw body is exactly what the model reads."""
    tea, core = own_account(server, flavour)
    modify = tea.modify_cloud_assistant_settings
    Request = ecs.ModifyCloudAssistantSettingsRequest
    modify(Request(region_id=REGION, setting_type="SessionManagerConfig",
                   session_manager_config=ecs.ModifyCloudAssistantSettingsRequestSessionManagerConfig(
                       session_manager_enabled=False)))
    modify(Request(region_id=REGION, setting_type="AgentUpgradeConfig",
                   agent_upgrade_config=ecs.ModifyCloudAssistantSettingsRequestAgentUpgradeConfig(
                       enabled=True, allowed_upgrade_window=["02:00-03:00", "05:00-06:00"],
                       time_zone="Asia/Shanghai")))
    modify(Request(region_id=REGION, setting_type="SessionManagerDelivery",
                   oss_delivery_config=ecs.ModifyCloudAssistantSettingsRequestOssDeliveryConfig(
                       enabled=True, bucket_name="audit-bucket", prefix="sessions/", encryption_type="Inherit")))
    modify(Request(region_id=REGION, setting_type="InvocationDelivery",
                   sls_delivery_config=ecs.ModifyCloudAssistantSettingsRequestSlsDeliveryConfig(
                       enabled=True, project_name="ops", logstore_name="runs")))
    modify(Request(region_id=REGION, setting_type="ResourceUsageConfig",
                   resource_usage_config=ecs.ModifyCloudAssistantSettingsRequestResourceUsageConfig(
                       cpu_limit=50, memory_limit="100MB")))
    body = tea.describe_cloud_assistant_settings(ecs.DescribeCloudAssistantSettingsRequest(
        region_id=REGION, setting_type=["SessionManagerConfig", "AgentUpgradeConfig", "SessionManagerDelivery",
                                        "InvocationDelivery", "ResourceUsageConfig"])).body
    assert body.session_manager_config.session_manager_enabled is False
    upgrade = body.agent_upgrade_config
    assert (upgrade.enabled, upgrade.time_zone) == (True, "Asia/Shanghai")
    assert upgrade.allowed_upgrade_windows.allowed_upgrade_window == ["02:00-03:00", "05:00-06:00"]
    oss = body.oss_delivery_configs.oss_delivery_config
    assert [(c.delivery_type, c.enabled, c.bucket_name) for c in oss] == [
        ("SessionManager", True, "audit-bucket"), ("Invocation", False, "")]
    sls = body.sls_delivery_configs.sls_delivery_config
    assert [(c.delivery_type, c.enabled, c.project_name, c.logstore_name) for c in sls] == [
        ("SessionManager", False, "", ""), ("Invocation", True, "ops", "runs")]
    assert (body.resource_usage_config.cpu_limit, body.resource_usage_config.memory_limit) == (50, "100MB")
    raw = core.call("DescribeCloudAssistantSettings", {"SettingType.1": "AgentUpgradeConfig",
                                                       "SettingType.2": "SessionManagerDelivery"})
    round_trips(ecs.DescribeCloudAssistantSettingsResponseBody, raw)


def test_core_modifies_and_describes(server: Server) -> None:
    """aliyunsdkecs's request classes (json.dumps of the objects) set and read the settings too."""
    _, core = own_account(server)
    request = ModifyCloudAssistantSettingsRequest()
    request.set_SettingType("AgentUpgradeConfig")
    request.set_AgentUpgradeConfig({"Enabled": True, "AllowedUpgradeWindow": ["22:00-23:30"], "TimeZone": "GMT-7:00"})
    assert set(core.send(request)) == {"RequestId"}
    describe = DescribeCloudAssistantSettingsRequest()
    describe.set_SettingTypes(["AgentUpgradeConfig"])
    body = core.send(describe)
    assert body["AgentUpgradeConfig"]["AllowedUpgradeWindows"] == {"AllowedUpgradeWindow": ["22:00-23:30"]}
    assert body["AgentUpgradeConfig"]["TimeZone"] == "GMT-7:00"


def test_refusals_reach_both_sdks(server: Server) -> None:
    """A sixth upgrade window (403), an unknown SettingType (400) and a bad bucket name (400) are the documented
    codes in both SDKs."""
    tea, core = own_account(server)
    windows = [f"{h:02d}:00-{h + 1:02d}:00" for h in range(0, 12, 2)]
    fails(lambda: tea.modify_cloud_assistant_settings(ecs.ModifyCloudAssistantSettingsRequest(
        region_id=REGION, setting_type="AgentUpgradeConfig",
        agent_upgrade_config=ecs.ModifyCloudAssistantSettingsRequestAgentUpgradeConfig(
            enabled=True, allowed_upgrade_window=windows))), "InvalidAllowedUpgradeWindow.CountLimitExceeded", 403)
    fails(lambda: tea.describe_cloud_assistant_settings(ecs.DescribeCloudAssistantSettingsRequest(
        region_id=REGION, setting_type=["Everything"])), "InvalidParameter.SettingType", 400)
    request = ModifyCloudAssistantSettingsRequest()
    request.set_SettingType("SessionManagerDelivery")
    request.set_OssDeliveryConfig({"Enabled": True, "BucketName": "Not_A_Bucket"})
    core_fails(core.error(request), "InvalidParameter.OssBucketName", 400)


def registered(server: Server, tmp_path: Path) -> Agent:
    """An agent registered with `cloudassist agent register` (not running: the test speaks for it)."""
    code = activation(tea_client(server.endpoint), 1)
    return Agent(tmp_path / "agent").register(server.live, *code)


def agent_post(server: Server, agent: Agent, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST `body` to the agent face over HTTPS, signed with the agent's key as every agent request is."""
    me = identity.load(agent.state_dir)
    stamp, request_id = str(int(time.time() * 1000)), str(uuid.uuid4())
    signature = keys.sign_md5(me.private_key, (me.instance_id + me.machine_id + stamp + request_id).encode())
    request = urllib.request.Request(
        f"https://{server.live.agent_endpoint}/luban/api/{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json; charset=utf-8", "User-Agent": "linux_amd64/2.2.3.578",
                 "X-Acs-Instance-Id": me.instance_id, "X-Acs-Timestamp": stamp, "X-Acs-Request-Id": request_id,
                 "X-Acs-Signature": base64.b64encode(signature).decode()})
    with urllib.request.urlopen(request, context=ssl_context(me.ca_file), timeout=30) as answer:  # noqa: S310
        found = json.loads(answer.read())
    assert isinstance(found, dict)
    return found


def test_list_plugin_status_shows_what_the_agent_reported(server: Server, core: Core, tea: EcsClient,
                                                          tmp_path: Path) -> None:
    """The plug-in manager's report (ONCE_INSTALLED, PERSIST_RUNNING) is listed as Installed and Running with
    times, through both SDKs; by Name, the instance's plug-in alone; another name is NotInstalled."""
    agent = registered(server, tmp_path)
    answer = agent_post(server, agent, "v1/plugin/report_status", {"os": "linux", "arch": "x64", "plugin": [
        {"pluginId": "", "name": "ecs-tool", "version": "1.0", "status": "ONCE_INSTALLED", "uptime": 0},
        {"pluginId": "", "name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING", "uptime": 60}]})
    assert answer == {"code": 200, "instanceId": agent.instance_id}
    body = tea.list_plugin_status(ecs.ListPluginStatusRequest(region_id=REGION, instance_id=[agent.instance_id])).body
    [listed] = body.instance_plugin_status_set.instance_plugin_status
    assert listed.instance_id == agent.instance_id
    plugins = listed.plugin_status_set.plugin_status
    assert [(p.plugin_name, p.plugin_version, p.plugin_status) for p in plugins] == [
        ("ecs-tool", "1.0", "Installed"), ("monitor", "2.1", "Running")]
    assert all(ISO.match(p.first_heartbeat_time) and ISO.match(p.last_heartbeat_time) for p in plugins)
    request = ListPluginStatusRequest()
    request.set_InstanceIds([agent.instance_id])
    request.set_Name("monitor")
    raw = core.send(request)
    round_trips(ecs.ListPluginStatusResponseBody, raw)
    [only] = raw["InstancePluginStatusSet"]["InstancePluginStatus"]
    assert [p["PluginStatus"] for p in only["PluginStatusSet"]["PluginStatus"]] == ["Running"]
    other = tea.list_plugin_status(ecs.ListPluginStatusRequest(region_id=REGION, instance_id=[agent.instance_id],
                                                               name="absent-plugin")).body
    [absent] = other.instance_plugin_status_set.instance_plugin_status[0].plugin_status_set.plugin_status
    assert (absent.plugin_name, absent.plugin_status) == ("absent-plugin", "NotInstalled")


def test_list_plugin_status_refusals(tea: EcsClient, core: Core, server: Server) -> None:
    """Two instances without Name (403) and an instance that does not exist (404), in both SDKs."""
    first, second = server.register(2)
    fails(lambda: tea.list_plugin_status(ecs.ListPluginStatusRequest(region_id=REGION, instance_id=[first, second])),
          "InstanceIds.ExceedLimit", 403)
    core_fails(core.call_error("ListPluginStatus", {"InstanceId.1": "mi-hz0000nothere"}),
               "InvalidInstance.NotFound", 404)


def test_install_cloud_assistant_on_a_managed_instance(tea: EcsClient, core: Core, server: Server) -> None:
    """A managed instance is not an ECS instance: InstallCloudAssistant answers InvalidInstance.NotFound (404),
    saying why, in both SDKs; no instance at all is MissingParam.InstanceId (400)."""
    [instance] = server.register()
    body = fails(lambda: tea.install_cloud_assistant(ecs.InstallCloudAssistantRequest(
        region_id=REGION, instance_id=[instance])), "InvalidInstance.NotFound", 404)
    assert "managed instance" in body["Message"]
    request = InstallCloudAssistantRequest()
    request.set_InstanceIds([instance])
    core_fails(core.error(request), "InvalidInstance.NotFound", 404)
    core_fails(core.call_error("InstallCloudAssistant"), "MissingParam.InstanceId", 400)


def test_update_check_follows_the_upgrade_window(server: Server, tmp_path: Path) -> None:
    """The agent's update check over HTTPS: never an update; with an upgrade window that is not now, the next
    check is asked for when it opens (at most a day away), with DisableUpgrade after the default 1800 s."""
    agent = registered(server, tmp_path)
    check = {"os": "linux", "arch": "amd64", "app_id": "aliyun assistant", "app_version": "2.2.3.578"}
    assert agent_post(server, agent, "v1/update/update_check", check)["need_update"] == 0
    hour = time.gmtime().tm_hour
    window = f"{(hour + 2) % 24:02d}:00-{(hour + 3) % 24:02d}:00"
    tea = tea_client(server.endpoint)
    tea.modify_cloud_assistant_settings(ecs.ModifyCloudAssistantSettingsRequest(
        region_id=REGION, setting_type="AgentUpgradeConfig",
        agent_upgrade_config=ecs.ModifyCloudAssistantSettingsRequestAgentUpgradeConfig(
            enabled=True, allowed_upgrade_window=[window], time_zone="UTC")))
    try:
        answer = agent_post(server, agent, "v1/update/update_check", check)
        assert answer["need_update"] == 0
        assert 3600 < answer["next_interval"] <= 2 * 3600
        tea.modify_cloud_assistant_settings(ecs.ModifyCloudAssistantSettingsRequest(
            region_id=REGION, setting_type="AgentUpgradeConfig",
            agent_upgrade_config=ecs.ModifyCloudAssistantSettingsRequestAgentUpgradeConfig(disable_upgrade=True)))
        assert agent_post(server, agent, "v1/update/update_check", check)["next_interval"] == 1800
    finally:  # the default account is shared by the session's tests: back to the defaults
        tea.modify_cloud_assistant_settings(ecs.ModifyCloudAssistantSettingsRequest(
            region_id=REGION, setting_type="AgentUpgradeConfig",
            agent_upgrade_config=ecs.ModifyCloudAssistantSettingsRequestAgentUpgradeConfig(
                enabled=False, disable_upgrade=False, allowed_upgrade_window=[])))
