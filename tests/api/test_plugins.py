"""ListPluginStatus from what agents report on `/luban/api/v1/plugin/report_status`, InstallCloudAssistant's
answer, and the agent's update check ruled by the account's upgrade windows; in-process, on both engines."""

from __future__ import annotations

import json
from typing import Any

import pytest
from agentwire import AgentFace, http
from apiwire import LINUX_1, LINUX_2, REGION, WINDOWS, Api, Reply, ServerLog

from cloudassist.services.access import AccessService
from cloudassist.testing import FixedClock, sign_v1


@pytest.fixture
async def face(api: Api, server_log: ServerLog) -> AgentFace:
    agents = AgentFace(api.ctx, server_log)
    await agents.activate()
    return agents


async def report(face: AgentFace, instance: tuple[str, str], plugins: list[dict[str, Any]] | bytes) -> dict[str, Any]:
    body = plugins if isinstance(plugins, bytes) else json.dumps({"os": "linux", "arch": "x64", "plugin": plugins})
    answer = await http(face.app, "POST", "/luban/api/v1/plugin/report_status", b"", face.sign(*instance),
                        body.encode() if isinstance(body, str) else body)
    return face.check(answer) | {"status": answer.status}


async def list_status(api: Api, **params: str) -> Reply:
    return await api.call("ListPluginStatus", params)


def statuses(body: dict[str, Any]) -> dict[str, list[tuple[str, str, str]]]:
    return {
        item["InstanceId"]: [(p["PluginName"], p["PluginVersion"], p["PluginStatus"])
                             for p in item["PluginStatusSet"]["PluginStatus"]]
        for item in body["InstancePluginStatusSet"]["InstancePluginStatus"]
    }


async def test_reported_plugins_are_listed_with_the_api_statuses(api: Api, face: AgentFace) -> None:
    """The official agent's words (ONCE_INSTALLED, PERSIST_RUNNING, PERSIST_FAIL, REMOVED) read as Installed,
    Running, Crashed, Removed; an unknown word as Unknown; times are the server's."""
    instance = await face.register()
    answer = await report(face, instance, [
        {"name": "ecs-tool", "version": "1.0", "status": "ONCE_INSTALLED"},
        {"name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING", "uptime": 30},
        {"name": "crashy", "version": "0.1", "status": "PERSIST_FAIL"},
        {"name": "gone", "version": "0.2", "status": "REMOVED"},
        {"name": "odd", "version": "9", "status": "SOMETHING_NEW"},
    ])
    assert answer == {"code": 200, "instanceId": instance[0], "status": 200}
    body = (await list_status(api, **{"InstanceId.1": instance[0]})).body
    assert statuses(body) == {instance[0]: [("crashy", "0.1", "Crashed"), ("ecs-tool", "1.0", "Installed"),
                                            ("gone", "0.2", "Removed"), ("monitor", "2.1", "Running"),
                                            ("odd", "9", "Unknown")]}
    first = body["InstancePluginStatusSet"]["InstancePluginStatus"][0]["PluginStatusSet"]["PluginStatus"][0]
    assert first["FirstHeartbeatTime"] == first["LastHeartbeatTime"] == "2026-11-26T12:00:00Z"


async def test_a_later_report_moves_the_last_heartbeat_and_keeps_the_first(api: Api, face: AgentFace) -> None:
    """A plug-in reported again an hour later: its status and version change, FirstHeartbeatTime stays."""
    instance = await face.register()
    await report(face, instance, [{"name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING"}])
    assert isinstance(api.ctx.clock, FixedClock)
    api.ctx.clock.advance(hours=1)
    await report(face, instance, [{"name": "monitor", "version": "2.2", "status": "PERSIST_FAIL"}])
    body = (await list_status(api, **{"InstanceId.1": instance[0], "Name": "monitor"})).body
    plugin = body["InstancePluginStatusSet"]["InstancePluginStatus"][0]["PluginStatusSet"]["PluginStatus"][0]
    assert (plugin["PluginVersion"], plugin["PluginStatus"]) == ("2.2", "Crashed")
    assert (plugin["FirstHeartbeatTime"], plugin["LastHeartbeatTime"]) == ("2026-11-26T12:00:00Z",
                                                                           "2026-11-26T13:00:00Z")


async def test_by_name_every_instance_is_listed_and_those_without_it_are_not_installed(api: Api,
                                                                                      face: AgentFace) -> None:
    """With Name and no instance, every instance of the account in the region is listed, paged; one whose agent
    never reported the plug-in shows NotInstalled with empty times."""
    instance = await face.register()
    await report(face, instance, [{"name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING"}])
    body = (await list_status(api, Name="monitor", PageSize="50")).body
    listed = statuses(body)
    assert set(listed) == {instance[0], LINUX_1, LINUX_2, WINDOWS}
    assert listed[instance[0]] == [("monitor", "2.1", "Running")]
    assert listed[LINUX_1] == [("monitor", "", "NotInstalled")]
    assert body["TotalCount"] == 4
    items = {i["InstanceId"]: i["PluginStatusSet"]["PluginStatus"][0]
             for i in body["InstancePluginStatusSet"]["InstancePluginStatus"]}
    assert (items[LINUX_1]["FirstHeartbeatTime"], items[LINUX_1]["LastHeartbeatTime"]) == ("", "")


async def test_pages_with_next_token_cover_every_instance_once(api: Api) -> None:
    """MaxResults=1 pages through the four named instances by NextToken, each exactly once, the last page
    without a token."""
    named = {f"InstanceId.{i}": iid for i, iid in enumerate([LINUX_1, LINUX_2, WINDOWS], start=1)}
    seen: list[str] = []
    token = ""
    for _ in range(5):
        params = {**named, "Name": "x", "MaxResults": "1", **({"NextToken": token} if token else {})}
        body = (await list_status(api, **params)).body
        seen += list(statuses(body))
        token = body["NextToken"]
        if not token:
            break
    assert seen == [LINUX_1, LINUX_2, WINDOWS]


async def test_page_number_and_size_page_the_named_instances(api: Api) -> None:
    """PageNumber=2, PageSize=2 of three named instances is the third, with TotalCount 3."""
    named = {f"InstanceId.{i}": iid for i, iid in enumerate([LINUX_1, LINUX_2, WINDOWS], start=1)}
    body = (await list_status(api, **named, Name="x", PageNumber="2", PageSize="2")).body
    assert list(statuses(body)) == [WINDOWS]
    assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (3, 2, 2)


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "MissingParam.InstanceId"),
    ({"InstanceId.1": LINUX_1, "InstanceId.2": LINUX_2}, 403, "InstanceIds.ExceedLimit"),
    ({**{f"InstanceId.{i}": f"mi-{i:020d}" for i in range(1, 52)}, "Name": "x"}, 403, "InstanceIds.ExceedLimit"),
    ({"InstanceId.1": LINUX_1, "Name": "n" * 256}, 400, "InvalidParameter.Name"),
    ({"InstanceId.1": "mi-hz0000nothere"}, 404, "InvalidInstance.NotFound"),
    ({"InstanceId.1": LINUX_1, "MaxResults": "51"}, 400, "InvalidParameter.MaxResults"),
    ({"InstanceId.1": LINUX_1, "NextToken": "!!"}, 400, "InvalidParameter.NextToken"),
    ({"InstanceId.1": LINUX_1, "PageSize": "0"}, 403, "InvalidParam.PageSize"),
    ({"InstanceId.1": LINUX_1, "PageNumber": "0"}, 403, "InvalidParam.PageNumber"),
])
async def test_list_plugin_status_limits(api: Api, params: dict[str, str], status: int, code: str) -> None:
    """Without Name one instance, with it up to 50; Name up to 255 characters; unknown instances and bad paging
    are refused with their codes."""
    reply = await list_status(api, **params)
    assert (reply.status, reply.code) == (status, code), reply.body


async def test_a_name_of_255_characters_and_fifty_instances_are_taken(api: Api) -> None:
    """The limits themselves are allowed."""
    assert (await list_status(api, **{"InstanceId.1": LINUX_1, "Name": "n" * 255})).status == 200
    fifty = {f"InstanceId.{i}": LINUX_1 for i in range(1, 51)}
    assert (await list_status(api, **fifty, Name="x")).status == 200


async def test_another_account_never_sees_the_plugins(api: Api, face: AgentFace) -> None:
    """Account bob naming the default account's instance is told it does not exist; listing by Name shows him
    none of its instances."""
    instance = await face.register()
    await report(face, instance, [{"name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING"}])
    await AccessService(api.ctx).ensure_key("AKBOB0000000000", "bob-secret", "bob")

    async def as_bob(params: dict[str, str]) -> Reply:
        signed = sign_v1({"Format": "JSON", "RegionId": REGION, "Action": "ListPluginStatus", **params},
                         "AKBOB0000000000", "bob-secret", method="POST", timestamp=api.ctx.clock.now())
        return api.check(await api.send(signed), "JSON")

    assert (await as_bob({"InstanceId.1": instance[0]})).code == "InvalidInstance.NotFound"
    assert statuses((await as_bob({"Name": "monitor"})).body) == {}


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"plugin": {"name": "x"}}', b'{"plugin": [1]}', b'{"plugin": [{"name": ""}]}',
    b'{"plugin": [{"name": 5}]}', b'{"plugin": [{"name": "a\\u0000b"}]}',
    json.dumps({"plugin": [{"name": f"p{i}"} for i in range(101)]}).encode(),
])
async def test_a_report_that_is_not_one_is_400_and_changes_nothing(api: Api, face: AgentFace, body: bytes) -> None:
    """A malformed report is refused in the agent face's shape, never a 500, and stores nothing."""
    instance = await face.register()
    answer = await report(face, instance, body)
    assert (answer["status"], answer["errCode"]) == (400, "InvalidParameter")
    assert statuses((await list_status(api, **{"InstanceId.1": instance[0]})).body) == {instance[0]: []}


async def test_a_long_name_and_version_are_cut_as_the_agent_does(api: Api, face: AgentFace) -> None:
    """Names beyond 255 and versions beyond 64 characters are kept cut to those lengths."""
    instance = await face.register()
    await report(face, instance, [{"name": "n" * 300, "version": "v" * 100, "status": "ONCE_INSTALLED"}])
    listed = statuses((await list_status(api, **{"InstanceId.1": instance[0]})).body)[instance[0]]
    assert listed == [("n" * 255, "v" * 64, "Installed")]


async def test_an_unsigned_report_is_refused(api: Api, face: AgentFace) -> None:
    """Without the instance's signature a report is 401 and nothing is kept."""
    instance = await face.register()
    answer = await http(face.app, "POST", "/luban/api/v1/plugin/report_status", b"", [],
                        json.dumps({"plugin": [{"name": "x", "status": "REMOVED"}]}).encode())
    assert face.check(answer)["code"] == 401
    assert statuses((await list_status(api, **{"InstanceId.1": instance[0]})).body) == {instance[0]: []}


@pytest.mark.parametrize(("params", "status", "code"), [
    ({}, 400, "MissingParam.InstanceId"),
    ({f"InstanceId.{i}": f"i-{i:020d}" for i in range(1, 52)}, 403, "InstanceIds.ExceedLimit"),
    ({"InstanceId.1": "i-bp1nothere"}, 404, "InvalidInstance.NotFound"),
    ({"InstanceId.1": LINUX_1}, 404, "InvalidInstance.NotFound"),
])
async def test_install_cloud_assistant_answers(api: Api, params: dict[str, str], status: int, code: str) -> None:
    """No instance, more than 50, an unknown one and a managed instance (not an ECS instance: nothing to install
    on) each get their documented answer."""
    reply = await api.call("InstallCloudAssistant", params)
    assert (reply.status, reply.code) == (status, code)
    if LINUX_1 in params.values():
        assert "managed instance" in reply.body["Message"]


async def update_check(face: AgentFace, instance: tuple[str, str]) -> dict[str, Any]:
    body = json.dumps({"os": "linux", "arch": "amd64", "app_id": "aliyun assistant", "app_version": "2.2.3.578"})
    return face.check(await http(face.app, "POST", "/luban/api/v1/update/update_check", b"", face.sign(*instance),
                                  body.encode()))


async def test_update_check_waits_for_the_upgrade_window(api: Api, face: AgentFace) -> None:
    """Never an update (no packages here); by default the next check is in 1800 s; outside the account's window
    (02:00-03:00 Asia/Shanghai = 18:00-19:00 UTC, the clock at 12:00 UTC) the next check is when it opens; inside
    it, the default again; past it, 22.5 hours; with DisableUpgrade, the default, never an update."""
    instance = await face.register()
    assert await update_check(face, instance) == {"code": 200, "need_update": 0, "next_interval": 1800,
                                                  "update_info": {}}
    upgrade = {"Enabled": True, "AllowedUpgradeWindow": ["02:00-03:00"], "TimeZone": "Asia/Shanghai"}
    await api.ok("ModifyCloudAssistantSettings", {"SettingType": "AgentUpgradeConfig",
                                                   "AgentUpgradeConfig": json.dumps(upgrade)})
    outside = await update_check(face, instance)
    assert (outside["need_update"], outside["next_interval"]) == (0, 6 * 3600)
    assert isinstance(api.ctx.clock, FixedClock)
    api.ctx.clock.advance(hours=6, minutes=30)
    inside = await update_check(face, instance)
    assert (inside["need_update"], inside["next_interval"]) == (0, 1800)
    api.ctx.clock.advance(hours=1)
    past = await update_check(face, instance)
    assert (past["need_update"], past["next_interval"]) == (0, 22 * 3600 + 1800)
    await api.ok("ModifyCloudAssistantSettings", {"SettingType": "AgentUpgradeConfig",
                                                   "AgentUpgradeConfig": json.dumps({"DisableUpgrade": True})})
    disabled = await update_check(face, instance)
    assert (disabled["need_update"], disabled["next_interval"]) == (0, 1800)


async def test_an_instance_of_another_region_is_not_found(api: Api, face: AgentFace) -> None:
    """The same account asking in another region does not find the instance, nor list it by Name."""
    instance = await face.register()
    await report(face, instance, [{"name": "monitor", "version": "2.1", "status": "PERSIST_RUNNING"}])
    elsewhere = await api.call("ListPluginStatus", {"InstanceId.1": instance[0]}, region="cn-shanghai")
    assert (elsewhere.status, elsewhere.code) == (404, "InvalidInstance.NotFound")
    listed = await api.call("ListPluginStatus", {"Name": "monitor"}, region="cn-shanghai")
    assert statuses(listed.body) == {}
