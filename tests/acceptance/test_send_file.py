"""SendFile really writing files: the official SDKs drive a live server (both engines), and a real
`cloudassist agent` process writes the file; DescribeSendFileResults shows how it went."""

from __future__ import annotations

import grp
import os
import pwd
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.DescribeSendFileResultsRequest import DescribeSendFileResultsRequest
from aliyunsdkecs.request.v20140526.SendFileRequest import SendFileRequest

from acceptance.agents import Agent, one_agent, wait_for
from acceptance.sdk import REGION, Core, Server, b64, core_fails, fails, parse_xml, round_trips, tea_client, unique

pytestmark = pytest.mark.acceptance

ME = pwd.getpwuid(os.geteuid()).pw_name
MY_GROUP = grp.getgrgid(os.getegid()).gr_name
TERMINAL = {"Success", "Failed", "Invalid", "Error", "Timeout", "Aborted"}


@pytest.fixture(scope="module")
def agent(server: Server, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Agent]:
    """One registered, connected agent; it must exit 0 on SIGTERM with no traceback."""
    with one_agent(server, tmp_path_factory.mktemp("file-agents"), "files") as one:
        yield one


def send(tea: EcsClient, instance_id: str, target_dir: Path, content: str, **fields: Any) -> str:
    wanted: dict[str, Any] = {"name": "app.conf", "file_owner": ME, "file_group": MY_GROUP, **fields}
    body = tea.send_file(ecs.SendFileRequest(region_id=REGION, instance_id=[instance_id], target_dir=str(target_dir),
                                             content=content, **wanted)).body
    assert body.invoke_id.startswith("f-")
    assert body.request_id
    return str(body.invoke_id)


def describe(tea: EcsClient, **fields: Any) -> ecs.DescribeSendFileResultsResponseBody:
    body: ecs.DescribeSendFileResultsResponseBody = tea.describe_send_file_results(
        ecs.DescribeSendFileResultsRequest(region_id=REGION, **fields)).body
    return body


Task = ecs.DescribeSendFileResultsResponseBodyInvocationsInvocation


def settled(tea: EcsClient, invoke_id: str, seconds: float = 60.0) -> Task:
    def done() -> Any:
        [task] = describe(tea, invoke_id=invoke_id).invocations.invocation
        return task if task.invocation_status not in ("Pending", "Running") else None
    found: Task = wait_for(done, seconds, f"file task {invoke_id} to end")
    return found


def test_a_file_is_written_with_its_mode_and_owner_and_reported_success(
    tea: EcsClient, core: Core, agent: Agent, tmp_path: Path
) -> None:
    target_dir = tmp_path / "deep" / "dir"
    invoke_id = send(tea, agent.instance_id, target_dir, b64(b"#!/bin/sh\necho hi\n"), content_type="Base64",
                     file_mode="0750", description="a script", timeout=5)
    task = settled(tea, invoke_id)
    written = target_dir / "app.conf"
    assert written.read_bytes() == b"#!/bin/sh\necho hi\n"
    info = written.stat()
    assert stat.S_IMODE(info.st_mode) == 0o750
    assert (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name) == (ME, MY_GROUP)
    [one] = task.invoke_instances.invoke_instance
    assert (task.invocation_status, one.invocation_status, one.error_code, one.error_info) == (
        "Success", "Success", "", "")
    assert (task.name, task.target_dir, task.file_mode, task.file_owner, task.file_group, task.overwrite,
            task.content_type, task.content, task.description, task.vm_count) == (
        "app.conf", str(target_dir), "0750", ME, MY_GROUP, "false", "Base64", b64(b"#!/bin/sh\necho hi\n"),
        "a script", 1)
    assert one.instance_id == agent.instance_id
    assert one.start_time
    assert one.finish_time
    assert one.creation_time

    request = DescribeSendFileResultsRequest()
    request.set_InvokeId(invoke_id)
    raw = core.send(request)
    round_trips(ecs.DescribeSendFileResultsResponseBody, raw)
    assert raw["Invocations"]["Invocation"][0]["InvokeInstances"]["InvokeInstance"][0]["InvocationStatus"] == "Success"


def test_an_existing_file_is_file_already_exists_unless_overwrite(
    tea_v3: EcsClient, core: Core, agent: Agent, tmp_path: Path
) -> None:
    (tmp_path / "app.conf").write_text("original\n")
    request = SendFileRequest()
    request.set_InstanceIds([agent.instance_id])
    request.set_Name("app.conf")
    request.set_TargetDir(str(tmp_path))
    request.set_Content("replacement\n")
    request.set_FileOwner(ME)
    request.set_FileGroup(MY_GROUP)
    request.set_Overwrite(False)
    refused = core.send(request)["InvokeId"]
    task = settled(tea_v3, refused)
    [one] = task.invoke_instances.invoke_instance
    assert (task.invocation_status, one.invocation_status, one.error_code, one.error_info) == (
        "Failed", "Invalid", "FileAlreadyExists", "File already exists")
    assert (tmp_path / "app.conf").read_text() == "original\n"

    request.set_Overwrite(True)
    replaced = core.send(request)["InvokeId"]
    assert settled(tea_v3, replaced).invocation_status == "Success"
    assert (tmp_path / "app.conf").read_text() == "replacement\n"
    assert stat.S_IMODE((tmp_path / "app.conf").stat().st_mode) == 0o644  # the default mode


def test_an_unknown_owner_is_reported_and_nothing_is_written(tea_v3: EcsClient, agent: Agent, tmp_path: Path) -> None:
    task = settled(tea_v3, send(tea_v3, agent.instance_id, tmp_path, "x", file_owner="no-such-user-x"))
    [one] = task.invoke_instances.invoke_instance
    assert (one.invocation_status, one.error_code, one.error_info) == (
        "Invalid", "AccountNotExists", "Owner not exists")
    assert not (tmp_path / "app.conf").exists()


@pytest.mark.parametrize(
    ("fields", "code", "status"),
    [
        ({"file_mode": "rw-r--r--"}, "FileMode.Invalid", 400),
        ({"target_dir": "relative/dir"}, "FileTargetDir.Invalid", 400),
        ({"content_type": "Base64", "content": "%%%"}, "FileContent.DecodeError", 400),
        ({"content_type": "Gzip"}, "FileContentType.Invalid", 400),
        ({"content": "x" * (24 * 1024 + 1)}, "FileSize.ExceedLimit", 403),
        ({"name": "n" * 256}, "FileName.ExceedLimit", 403),
        ({"description": "d" * 513}, "FileDesc.ExceedLimit", 403),
        ({"instance_id": ["mi-doesnotexist"]}, "InvalidInstance.NotFound", 404),
        ({"instance_id": [f"mi-{n}" for n in range(51)]}, "InstanceIds.ExceedLimit", 403),
        ({"tag": [ecs.SendFileRequestTag(key="aliyun-x", value="v")]}, "InvalidTagKey.Malformed", 400),
    ],
)
def test_bad_parameters_get_their_documented_errors(tea_v3: EcsClient, server: Server, fields: dict[str, Any],
                                                    code: str, status: int) -> None:
    [instance] = server.register()
    wanted: dict[str, Any] = {"region_id": REGION, "instance_id": [instance], "name": "f", "target_dir": "/tmp",
                              "content": "x", **fields}
    fails(lambda: tea_v3.send_file(ecs.SendFileRequest(**wanted)), code, status)


def test_missing_instances_are_missing_param_instance_id(core: Core) -> None:
    core_fails(core.call_error("SendFile", {"Name": "f", "TargetDir": "/tmp", "Content": "x"}),
               "MissingParam.InstanceId", 400)


def test_describe_filters_pages_and_shows_tags_in_json_and_xml(tea_v3: EcsClient, core: Core, server: Server) -> None:
    [instance] = server.register()
    name = unique("file")
    made = [
        str(tea_v3.send_file(ecs.SendFileRequest(
            region_id=REGION, instance_id=[instance], name=name, target_dir="/tmp", content=f"v{n}",
            tag=[ecs.SendFileRequestTag(key="batch", value=name)])).body.invoke_id)
        for n in range(3)
    ]
    first = describe(tea_v3, name=name, max_results=2)
    assert [t.invoke_id for t in first.invocations.invocation] == made[:0:-1]
    assert first.next_token
    second = describe(tea_v3, name=name, max_results=2, next_token=first.next_token)
    assert [t.invoke_id for t in second.invocations.invocation] == made[:1]
    assert not second.next_token
    numbered = describe(tea_v3, instance_id=instance, page_number=2, page_size=2)
    assert (numbered.total_count, numbered.page_number, numbered.page_size) == (3, 2, 2)
    tagged = describe(tea_v3, tag=[ecs.DescribeSendFileResultsRequestTag(key="batch", value=name)])
    assert {t.invoke_id for t in tagged.invocations.invocation} == set(made)
    assert tagged.invocations.invocation[0].tags.tag[0].tag_key == "batch"
    assert describe(tea_v3, invoke_id=made[0], invocation_status="Pending").invocations.invocation[0].vm_count == 1
    assert describe(tea_v3, invoke_id=made[0], invocation_status="Success").invocations.invocation == []
    fails(lambda: describe(tea_v3, invocation_status="Nonsense"), "InvalidParameter.InvocationStatus", 400)
    fails(lambda: describe(tea_v3, max_results=51), "InvalidParameter.MaxResults", 400)

    status, _, body = core.raw("DescribeSendFileResults", {"InvokeId": made[0]}, fmt="XML")
    assert status == 200
    root = parse_xml(body)
    assert root.tag == "DescribeSendFileResultsResponse"
    [item] = root.findall("./Invocations/Invocation")
    assert item.findtext("InvokeId") == made[0]
    assert item.findtext("./InvokeInstances/InvokeInstance/InstanceId") == instance
    assert item.findtext("./Tags/Tag/TagKey") == "batch"


def test_another_account_sees_none_of_the_files(tea_v3: EcsClient, server: Server) -> None:
    [instance] = server.register()
    invoke_id = str(tea_v3.send_file(ecs.SendFileRequest(region_id=REGION, instance_id=[instance], name="f",
                                                         target_dir="/tmp", content="x")).body.invoke_id)
    assert [t.invoke_id for t in describe(tea_v3, invoke_id=invoke_id).invocations.invocation] == [invoke_id]
    key_id, secret = unique("LTAIfiles"), unique("secret")

    async def add_key() -> None:
        async with server.ctx.store.write() as tx:
            account_id = await tx.accounts.ensure(unique("files-other"), server.ctx.clock.now())
            await tx.accounts.add_key(account_id, key_id, secret, server.ctx.clock.now())

    server.loop.run_until_complete(add_key())
    theirs = tea_client(server.endpoint, access_key_id=key_id, secret=secret)
    assert describe(theirs, invoke_id=invoke_id).invocations.invocation == []
    assert describe(theirs).invocations.invocation == []
    fails(lambda: theirs.send_file(ecs.SendFileRequest(region_id=REGION, instance_id=[instance], name="f",
                                                       target_dir="/tmp", content="x")),
          "InvalidInstance.NotFound", 404)


def test_a_repeated_client_token_returns_the_first_task_and_changed_parameters_are_refused(
    tea_v3: EcsClient, server: Server
) -> None:
    [instance] = server.register()
    token = unique("tok")

    def send(content: str) -> str:
        return str(tea_v3.send_file(ecs.SendFileRequest(region_id=REGION, instance_id=[instance], name="f",
                                                        target_dir="/tmp", content=content,
                                                        client_token=token)).body.invoke_id)

    first = send("x")
    assert send("x") == first
    assert [t.vm_count for t in describe(tea_v3, instance_id=instance).invocations.invocation] == [1]
    fails(lambda: send("y"), "IdempotentParameterMismatch", 403)


def test_blank_base64_content_and_a_mode_with_a_newline_are_refused_and_create_no_task(
        tea_v3: EcsClient, server: Server) -> None:
    """Base64 Content that decodes to no bytes is FileContent.DecodeError (not an empty file), and a FileMode
    followed by a newline is FileMode.Invalid; neither leaves a file task behind."""
    [instance] = server.register()
    name = unique("refused")
    base: dict[str, Any] = {"region_id": REGION, "instance_id": [instance], "name": name, "target_dir": "/tmp"}
    for blank in ("   ", "\n"):
        request = ecs.SendFileRequest(**base, content=blank, content_type="Base64")
        fails(lambda: tea_v3.send_file(request), "FileContent.DecodeError", 400)  # noqa: B023 - called at once
    fails(lambda: tea_v3.send_file(ecs.SendFileRequest(**base, content="x", file_mode="0644\n")),
          "FileMode.Invalid", 400)
    assert describe(tea_v3, name=name).invocations.invocation == []
