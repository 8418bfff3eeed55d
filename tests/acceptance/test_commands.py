"""CreateCommand, DescribeCommands, ModifyCommand and DeleteCommand through the official SDKs."""

from __future__ import annotations

import re

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.CreateCommandRequest import CreateCommandRequest
from aliyunsdkecs.request.v20140526.DeleteCommandRequest import DeleteCommandRequest
from aliyunsdkecs.request.v20140526.DescribeCommandsRequest import DescribeCommandsRequest
from aliyunsdkecs.request.v20140526.ModifyCommandRequest import ModifyCommandRequest

from acceptance.sdk import ISO, REGION, Core, b64, core_fails, create, fails, round_trips, unique

pytestmark = pytest.mark.acceptance

SCRIPT = b"#!/bin/sh\necho {{greeting}} from {{ ACS::InstanceId }}\n"


def describe_one(tea: EcsClient, command_id: str, **fields: object) -> ecs.DescribeCommandsResponseBodyCommandsCommand:
    body = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id, **fields)).body
    assert body.total_count == 1
    assert len(body.commands.command) == 1
    return body.commands.command[0]


def test_create_command_is_described_with_every_attribute(tea: EcsClient) -> None:
    """A command created with every attribute is described back with each of them in the typed model."""
    name = unique("full")
    created = tea.create_command(ecs.CreateCommandRequest(
        region_id=REGION, name=name, type="RunShellScript", command_content=b64(SCRIPT), description="greets",
        timeout=120, working_dir="/tmp", enable_parameter=True, launcher="",
        tag=[ecs.CreateCommandRequestTag(key="team", value="ops")]))
    assert created.status_code == 200
    assert re.match(r"^c-[0-9a-z]{22}$", created.body.command_id)
    assert created.body.request_id

    command = describe_one(tea, created.body.command_id)
    assert command.command_id == created.body.command_id
    assert command.name == name
    assert command.description == "greets"
    assert command.type == "RunShellScript"
    assert command.command_content == b64(SCRIPT)
    assert command.timeout == 120
    assert command.working_dir == "/tmp"
    assert command.enable_parameter is True
    assert command.parameter_names.parameter_name == ["greeting"]
    assert [(t.tag_key, t.tag_value) for t in command.tags.tag] == [("team", "ops")]
    assert command.invoke_times == 0
    assert ISO.match(command.creation_time)


def test_create_command_defaults(tea: EcsClient) -> None:
    """Unset attributes take their documented defaults: Timeout 60, no custom parameters, no tags."""
    command = describe_one(tea, create(tea))
    assert command.timeout == 60
    assert command.enable_parameter is False
    assert command.parameter_names.parameter_name == []
    assert command.tags.tag == []
    assert command.description == ""


def test_create_command_plaintext_content(tea: EcsClient) -> None:
    """CreateCommand with ContentEncoding=PlainText stores the text as given; DescribeCommands answers Base64
    by default and the original text with ContentEncoding=PlainText."""
    command_id = create(tea, command_content="echo 'plain' && ls ~", content_encoding="PlainText")
    assert describe_one(tea, command_id).command_content == b64(b"echo 'plain' && ls ~")
    assert describe_one(tea, command_id, content_encoding="PlainText").command_content == "echo 'plain' && ls ~"


def test_describe_commands_filters_by_name_and_type(tea: EcsClient) -> None:
    """DescribeCommands narrows by Name and Type, and counts what it found in TotalCount."""
    name = unique("byname")
    command_id = create(tea, name=name, type="RunPowerShellScript")
    found = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, name=name)).body
    assert (found.total_count, [c.command_id for c in found.commands.command]) == (1, [command_id])
    none = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, name=name, type="RunBatScript")).body
    assert (none.total_count, none.commands.command) == (0, [])
    assert found.page_number == 1
    assert found.page_size == 10


def test_describe_commands_unknown_id_is_empty(tea: EcsClient) -> None:
    """DescribeCommands with a CommandId that does not exist is an empty page, not an error."""
    body = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id="c-hz0000nothere")).body
    assert (body.total_count, body.commands.command) == (0, [])


def test_modify_command_changes_what_is_described(tea: EcsClient) -> None:
    """ModifyCommand changes Name, Description, Timeout and WorkingDir; DescribeCommands shows the new values
    and the content is unchanged."""
    command_id = create(tea)
    response = tea.modify_command(ecs.ModifyCommandRequest(
        region_id=REGION, command_id=command_id, name="renamed", description="new words", timeout=300,
        working_dir="/srv"))
    assert response.status_code == 200
    assert response.body.request_id
    command = describe_one(tea, command_id)
    assert (command.name, command.description, command.timeout, command.working_dir) == (
        "renamed", "new words", 300, "/srv")
    assert command.command_content == b64(b"echo hello")


def test_delete_command_removes_it(tea: EcsClient) -> None:
    """DeleteCommand removes the command: DescribeCommands no longer finds it and a second delete is
    InvalidCmdId.NotFound (404)."""
    command_id = create(tea)
    response = tea.delete_command(ecs.DeleteCommandRequest(region_id=REGION, command_id=command_id))
    assert response.status_code == 200
    assert response.body.request_id
    body = tea.describe_commands(ecs.DescribeCommandsRequest(region_id=REGION, command_id=command_id)).body
    assert body.total_count == 0
    fails(lambda: tea.delete_command(ecs.DeleteCommandRequest(region_id=REGION, command_id=command_id)),
          "InvalidCmdId.NotFound", 404)


def test_command_lifecycle_through_aliyunsdkcore(core: Core) -> None:
    """The aliyunsdkecs request classes create, describe, modify and delete a command over RPC v1."""
    create_request = CreateCommandRequest()
    create_request.set_Name("core-made")
    create_request.set_Type("RunBatScript")
    create_request.set_CommandContent(b64(b"echo %DATE%"))
    create_request.set_Timeout(90)
    create_request.set_Tags([{"Key": "via", "Value": "core"}])
    command_id = core.send(create_request)["CommandId"]
    assert command_id.startswith("c-")

    describe = DescribeCommandsRequest()
    describe.set_CommandId(command_id)
    body = core.send(describe)
    assert body["TotalCount"] == 1
    command = body["Commands"]["Command"][0]
    assert (command["Name"], command["Type"], command["Timeout"], command["CommandContent"]) == (
        "core-made", "RunBatScript", 90, b64(b"echo %DATE%"))
    assert command["Tags"] == {"Tag": [{"TagKey": "via", "TagValue": "core"}]}

    modify = ModifyCommandRequest()
    modify.set_CommandId(command_id)
    modify.set_Description("changed by core")
    assert set(core.send(modify)) == {"RequestId"}
    assert core.send(describe)["Commands"]["Command"][0]["Description"] == "changed by core"

    delete = DeleteCommandRequest()
    delete.set_CommandId(command_id)
    assert set(core.send(delete)) == {"RequestId"}
    assert core.send(describe)["TotalCount"] == 0
    core_fails(core.error(delete), "InvalidCmdId.NotFound", 404)


def test_command_responses_match_the_sdk_models(core: Core) -> None:
    """The raw JSON of CreateCommand, DescribeCommands, ModifyCommand and DeleteCommand is exactly what the
    SDK models read and write back: the same keys, nesting and wrapped lists."""
    created = core.call("CreateCommand", {"Name": "shape", "Type": "RunShellScript", "CommandContent": b64(SCRIPT),
                                          "EnableParameter": "true", "Tag.1.Key": "k", "Tag.1.Value": "v"})
    round_trips(ecs.CreateCommandResponseBody, created)
    described = core.call("DescribeCommands", {"CommandId": created["CommandId"]})
    assert described["TotalCount"] == 1
    round_trips(ecs.DescribeCommandsResponseBody, described)
    round_trips(ecs.ModifyCommandResponseBody, core.call("ModifyCommand", {"CommandId": created["CommandId"],
                                                                          "Name": "shape2"}))
    round_trips(ecs.DeleteCommandResponseBody, core.call("DeleteCommand", {"CommandId": created["CommandId"]}))


def test_unknown_command_type(tea_v3: EcsClient) -> None:
    """A Type other than RunShellScript, RunBatScript or RunPowerShellScript is InvalidCmdType.NotFound (404)."""
    fails(lambda: create(tea_v3, type="RunPythonScript"), "InvalidCmdType.NotFound", 404)


def test_content_limit_is_24_kb_base64(tea_v3: EcsClient) -> None:
    """CommandContent of exactly 24 KB once Base64-encoded is accepted; one more byte of script is
    CmdContent.ExceedLimit (403)."""
    at_limit = b"#" * (24 * 1024 // 4 * 3)
    assert len(b64(at_limit)) == 24 * 1024
    assert describe_one(tea_v3, create(tea_v3, command_content=b64(at_limit))).command_content == b64(at_limit)
    fails(lambda: create(tea_v3, command_content=b64(at_limit + b"#")), "CmdContent.ExceedLimit", 403)


def test_name_limit_is_128_characters(tea_v3: EcsClient) -> None:
    """A Name of 128 characters (any charset) is accepted; 129 is CmdName.ExceedLimit (403)."""
    name = "命" * 128
    assert describe_one(tea_v3, create(tea_v3, name=name)).name == name
    fails(lambda: create(tea_v3, name="n" * 129), "CmdName.ExceedLimit", 403)


def test_description_limit_is_512_characters(tea_v3: EcsClient) -> None:
    """A Description of 512 characters is accepted; 513 is CmdDesc.ExceedLimit (403)."""
    assert describe_one(tea_v3, create(tea_v3, description="d" * 512)).description == "d" * 512
    fails(lambda: create(tea_v3, description="d" * 513), "CmdDesc.ExceedLimit", 403)


def test_modify_command_limits(tea_v3: EcsClient) -> None:
    """ModifyCommand holds to the same limits: a 129-character Name is CmdName.ExceedLimit, a 513-character
    Description CmdDesc.ExceedLimit (both 403), and the command is left as it was."""
    command_id = create(tea_v3, name="keep-me")
    fails(lambda: tea_v3.modify_command(ecs.ModifyCommandRequest(region_id=REGION, command_id=command_id,
                                                                 name="n" * 129)), "CmdName.ExceedLimit", 403)
    fails(lambda: tea_v3.modify_command(ecs.ModifyCommandRequest(region_id=REGION, command_id=command_id,
                                                                 description="d" * 513)), "CmdDesc.ExceedLimit", 403)
    assert describe_one(tea_v3, command_id).name == "keep-me"


def test_unknown_command_id(tea_v3: EcsClient) -> None:
    """ModifyCommand and DeleteCommand of a CommandId that does not exist are InvalidCmdId.NotFound (404)."""
    fails(lambda: tea_v3.modify_command(ecs.ModifyCommandRequest(region_id=REGION, command_id="c-hz0000nothere",
                                                                 name="x")), "InvalidCmdId.NotFound", 404)
    fails(lambda: tea_v3.delete_command(ecs.DeleteCommandRequest(region_id=REGION, command_id="c-hz0000nothere")),
          "InvalidCmdId.NotFound", 404)


def test_describe_commands_next_token_walk(tea: EcsClient) -> None:
    """DescribeCommands pages by MaxResults and NextToken: three commands with MaxResults 2 come in pages of
    2 and 1, each command once, and the last page has no NextToken."""
    tag = unique("walk")
    made = {create(tea, tag=[ecs.CreateCommandRequestTag(key="walk", value=tag)]) for _ in range(3)}
    seen: list[str] = []
    sizes: list[int] = []
    token = None
    for _ in range(10):
        body = tea.describe_commands(ecs.DescribeCommandsRequest(
            region_id=REGION, tag=[ecs.DescribeCommandsRequestTag(key="walk", value=tag)], max_results=2,
            next_token=token)).body
        sizes.append(len(body.commands.command))
        seen += [c.command_id for c in body.commands.command]
        token = body.next_token
        if not token:
            break
    assert sizes == [2, 1]
    assert sorted(seen) == sorted(made)


def test_describe_commands_next_token_not_issued(tea_v3: EcsClient) -> None:
    """A NextToken DescribeCommands never issued is InvalidParameter.NextToken (400)."""
    for token in ("abc", "YWJj", "not a token!", "LTE"):
        fails(lambda token=token: tea_v3.describe_commands(ecs.DescribeCommandsRequest(
            region_id=REGION, max_results=5, next_token=token)), "InvalidParameter.NextToken", 400)
