"""§1.10: SendFile as the official agent sees it. The file arrives inline in the task list's `file` list in the
shape of `models.SendFileTaskInfo` (so its `json.Unmarshal` takes it), and the agent's reports
(`task/finish?taskId&status&taskType=sendfile&errorcode=N`, `task/invalid?taskId&taskType=sendfile&param&value`,
both from `taskengine/sendfile.go`) end the record with the documented ErrorCode and ErrorInfo."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import pytest
from luban import Agent, Ecs, acknowledged, wait_for_kick

#: The JSON tags of `SendFileTaskInfo` and the Go type each must decode into.
FIELDS = {"content": str, "contentType": str, "destination": str, "group": str, "mode": str, "name": str,
          "overwrite": bool, "owner": str, "signature": str, "taskID": str, "timeout": int}


def send_file(api: Ecs, instance_id: str, **params: str) -> str:
    body = api("SendFile", {"InstanceId.1": instance_id, "Name": "app.conf", "TargetDir": "/etc/app",
                            "Content": "x=1\n", **params})
    invoke_id: str = body["InvokeId"]
    assert invoke_id.startswith("f-"), body
    return invoke_id


def file_entry(agent: Agent, invoke_id: str, reason: str = "kickoff") -> dict[str, Any]:
    listing = agent.tasks(reason)
    assert "file" in listing, listing
    [found] = [e for e in listing["file"] if e["task"]["taskID"] == invoke_id]
    return found


def record(api: Ecs, invoke_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    body = api("DescribeSendFileResults", {"InvokeId": invoke_id})
    [task] = body["Invocations"]["Invocation"]
    [instance] = task["InvokeInstances"]["InvokeInstance"]
    return task, instance


def finish(agent: Agent, invoke_id: str, code: int) -> None:
    """SendFileFinished: `?taskId=%s&status=%s&taskType=%s&errorcode=%d`, an empty text body."""
    status = "Success" if code == 0 else "Failed"
    acknowledged(agent.report("finish", ("taskId", invoke_id), ("status", status), ("taskType", "sendfile"),
                              ("errorcode", code)))


def invalid(agent: Agent, invoke_id: str, param: str, value: str) -> None:
    """SendFileInvalid: `?taskId=…&taskType=sendfile&param=<key>&value=<value>`."""
    acknowledged(agent.report("invalid", ("taskId", invoke_id), ("taskType", "sendfile"), ("param", param),
                              ("value", value)))


def test_the_file_entry_has_the_official_agents_field_names_and_types(agent: Agent, api: Ecs) -> None:
    invoke_id = send_file(api, agent.instance_id, FileMode="0600", FileOwner="app", FileGroup="staff",
                          Overwrite="true", Timeout="5")
    entry = file_entry(agent, invoke_id)
    task = entry["task"]
    assert {k: type(v) for k, v in task.items()} == FIELDS, task
    assert base64.b64decode(task["content"]) == b"x=1\n"
    assert task["signature"] == hashlib.md5(task["content"].encode(), usedforsecurity=False).hexdigest()
    assert (task["destination"], task["name"], task["mode"], task["owner"], task["group"]) == (
        "/etc/app", "app.conf", "0600", "app", "staff")
    assert task["overwrite"] is True
    assert task["timeout"] == 10  # below 10 is raised to 10
    assert isinstance(entry["output"], dict)


def test_the_agent_is_kicked_and_the_record_runs_once_fetched(agent: Agent, api: Ecs) -> None:
    with agent.websocket() as ws:
        invoke_id = send_file(api, agent.instance_id)
        wait_for_kick(ws)
    assert acknowledged(agent.heartbeat()).get("newTasks") is True  # not fetched yet
    task, instance = record(api, invoke_id)
    assert (task["InvocationStatus"], instance["InvocationStatus"]) == ("Pending", "Pending")
    file_entry(agent, invoke_id)
    task, instance = record(api, invoke_id)
    assert (task["InvocationStatus"], instance["InvocationStatus"]) == ("Running", "Running")
    assert instance["StartTime"]
    # listed until reported: an agent that restarts hears of it again
    file_entry(agent, invoke_id, "startup")


def test_a_success_report_ends_the_record_success(agent: Agent, api: Ecs) -> None:
    invoke_id = send_file(api, agent.instance_id)
    file_entry(agent, invoke_id)
    finish(agent, invoke_id, 0)
    task, instance = record(api, invoke_id)
    assert (task["InvocationStatus"], instance["InvocationStatus"]) == ("Success", "Success")
    assert (instance["ErrorCode"], instance["ErrorInfo"]) == ("", "")
    assert instance["FinishTime"]
    assert all(e["task"]["taskID"] != invoke_id for e in agent.tasks("kickoff")["file"])
    finish(agent, invoke_id, 1)  # the official agent writes again if it hears of the file again: ignored
    assert record(api, invoke_id)[1]["InvocationStatus"] == "Success"


@pytest.mark.parametrize(
    ("code", "error_code", "info"),
    [
        (1, "FileCreateFail", "the file creation is failed due to unknown error"),
        (2, "FileAuthorityInvalid", "the authority of file is invalid"),
        (3, "FileAuthorityInvalid", "the authority of file is invalid"),
        (4, "FilePathInvalid", "File path is invalid"),
    ],
)
def test_a_failed_finish_is_failed_with_its_error(agent: Agent, api: Ecs, code: int, error_code: str,
                                                  info: str) -> None:
    invoke_id = send_file(api, agent.instance_id)
    file_entry(agent, invoke_id)
    finish(agent, invoke_id, code)
    task, instance = record(api, invoke_id)
    assert (task["InvocationStatus"], instance["InvocationStatus"]) == ("Failed", "Failed")
    assert (instance["ErrorCode"], instance["ErrorInfo"]) == (error_code, info)


@pytest.mark.parametrize(
    ("param", "value", "error_code", "info"),
    [
        ("FileExist", "app.conf", "FileAlreadyExists", "File already exists"),
        ("FileNameInvalid", "app.conf", "FileNameInvalid", "File name is invalid"),
        ("EmptyFile", "", "FileContentInvalid", "File content is empty"),
        ("InvalidFileContent", "", "FileContentInvalid", "the content of file is invalid"),
        ("InvalidSignature", "0123", "FileContentInvalid", "the content of file is invalid"),
        ("InvalidFileMode", "99", "FileAuthorityInvalid", "Mode is invalid"),
        ("FileGroupNotExist", "staff", "UserGroupNotExists", "Group not exists"),
        ("FileOwnerNotExist", "app", "AccountNotExists", "Owner not exists"),
    ],
)
def test_an_invalid_report_is_invalid_with_its_error(agent: Agent, api: Ecs, param: str, value: str,
                                                     error_code: str, info: str) -> None:
    invoke_id = send_file(api, agent.instance_id)
    file_entry(agent, invoke_id)
    invalid(agent, invoke_id, param, value)
    task, instance = record(api, invoke_id)
    assert (task["InvocationStatus"], instance["InvocationStatus"]) == ("Failed", "Invalid")
    assert (instance["ErrorCode"], instance["ErrorInfo"]) == (error_code, info)


def test_two_agents_one_success_one_existing_file_is_partial_failed(make_agent: Any, api: Ecs) -> None:
    first, second = make_agent(), make_agent()
    body = api("SendFile", {"InstanceId.1": first.instance_id, "InstanceId.2": second.instance_id,
                            "Name": "a", "TargetDir": "/tmp", "Content": "x"})
    invoke_id = body["InvokeId"]
    file_entry(first, invoke_id)
    file_entry(second, invoke_id)
    finish(first, invoke_id, 0)
    invalid(second, invoke_id, "FileExist", "a")
    [task] = api("DescribeSendFileResults", {"InvokeId": invoke_id})["Invocations"]["Invocation"]
    assert (task["InvocationStatus"], task["VmCount"]) == ("PartialFailed", 2)
    statuses = {i["InstanceId"]: i["InvocationStatus"] for i in task["InvokeInstances"]["InvokeInstance"]}
    assert statuses == {first.instance_id: "Success", second.instance_id: "Invalid"}


def test_another_agent_cannot_report_a_file_it_was_not_sent(make_agent: Any, api: Ecs) -> None:
    owner, stranger = make_agent(), make_agent()
    invoke_id = send_file(api, owner.instance_id)
    finish(stranger, invoke_id, 0)  # acknowledged, and nothing changes
    assert record(api, invoke_id)[1]["InvocationStatus"] == "Pending"
    assert all(e["task"]["taskID"] != invoke_id for e in stranger.tasks("kickoff")["file"])
