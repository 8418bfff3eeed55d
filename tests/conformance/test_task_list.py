"""§1.5 and §4.1: the task list the agent fetches, field by field, with the JSON types its structs need.

Go's encoding/json refuses a number where a string field is declared (and the reverse), so every field of
models.RunTaskInfo and OutputInfo is checked for its JSON type, not only its value.
"""

from __future__ import annotations

import base64
import time
from typing import Any

from luban import Agent, Ecs, acknowledged

RUN_TASK_STRINGS = ("instanceId", "type", "taskID", "commandId", "timeOut", "commandName", "commandContent",
                    "workingDirectory", "args", "cron", "username", "windowsPasswordName", "containerId",
                    "containerName")
#: Fields newer agents read as strings too (RunTaskInfo of later versions); 2.2.3.578 ignores them.
LATER_STRINGS = ("terminationMode", "launcher", "taskSignature", "userId")


def entry_for(listing: dict[str, Any], kind: str, task_id: str) -> dict[str, Any]:
    found = [e for e in listing[kind] if e["task"]["taskID"] == task_id]
    assert len(found) == 1, f"{task_id} in {kind}: {listing}"
    return found[0]


def test_the_startup_list_has_every_list_the_agent_reads(agent: Agent) -> None:
    """`POST /luban/api/v1/task/list?reason=startup&cold_start=true&currentTime&offset=0&timeZone=Etc%2FUTC` with an
    empty body is answered `code` 200 (integer) with the instanceId and `run`, `stop`, `test`, `file` and
    `session` as JSON lists."""
    response = agent.task_list("startup")
    assert "reason=startup&cold_start=true&currentTime=" in str(response.request.url)
    assert str(response.request.url).endswith("&offset=0&timeZone=Etc%2FUTC")
    listing = acknowledged(response)
    assert listing.get("instanceId") == agent.instance_id, listing
    for kind in ("run", "stop", "test", "file", "session"):
        assert isinstance(listing.get(kind), list), f"{kind}: {listing}"
    assert listing["run"] == [], listing
    assert listing["stop"] == [], listing


def test_a_run_command_task_has_every_run_task_info_field_with_its_json_type(agent: Agent, api: Ecs) -> None:
    """After RunCommand, the startup list's `run` entry carries every models.RunTaskInfo field with the right JSON
    type: timeOut a string, invokeVersion an int, creationTime ms as an int, commandContent base64 of the
    script, enableParameter a bool, builtInParameter a string map; `output{interval,logQuota,skipEmpty,
    sendStart}` with the agent's floors; and `repeat` "Once"."""
    before = int(time.time() * 1000)
    invoke_id = api.run_command(agent.instance_id, "echo hello", Timeout="60")
    entry = entry_for(agent.tasks("startup"), "run", invoke_id)
    task = entry["task"]
    for name in RUN_TASK_STRINGS:
        assert isinstance(task.get(name), str), f"{name} must be a JSON string: {task}"
    for name in LATER_STRINGS:
        assert isinstance(task.get(name, ""), str), f"{name} must be a JSON string: {task}"
    assert task["instanceId"] == agent.instance_id
    assert task["type"] == "RunShellScript"
    assert task["taskID"] == invoke_id
    assert task["commandId"].startswith("c-"), task
    assert task["timeOut"] == "60"
    assert task["commandName"], task
    assert base64.b64decode(task["commandContent"], validate=True) == b"echo hello"
    assert type(task.get("enableParameter")) is bool, task
    assert task["enableParameter"] is False
    assert type(task.get("invokeVersion")) is int, task
    assert task["invokeVersion"] >= 1
    assert type(task.get("creationTime")) is int, task
    assert before - 5_000 <= task["creationTime"] <= int(time.time() * 1000) + 5_000, task
    assert task["cron"] == ""
    assert task["username"] == ""
    assert task["windowsPasswordName"] == ""
    assert task["containerId"] == ""
    assert task["containerName"] == ""
    params = task.get("builtInParameter")
    assert isinstance(params, dict), task
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in params.items()), params

    output = entry.get("output")
    assert isinstance(output, dict), entry
    assert type(output.get("interval")) is int, output
    assert output["interval"] >= 1000, output
    assert type(output.get("logQuota")) is int, output
    assert output["logQuota"] >= 12000, output
    assert type(output.get("skipEmpty")) is bool, output
    assert type(output.get("sendStart")) is bool, output
    assert entry.get("repeat") == "Once", entry


def test_timeout_and_working_directory_reach_the_agent_as_strings(agent: Agent, api: Ecs) -> None:
    """RunCommand's Timeout=10 and WorkingDir travel as `"timeOut":"10"` and `"workingDirectory":"/tmp"`."""
    invoke_id = api.run_command(agent.instance_id, "echo before; sleep 30", Timeout="10", WorkingDir="/tmp")
    task = entry_for(agent.tasks("startup"), "run", invoke_id)["task"]
    assert task["timeOut"] == "10"
    assert task["workingDirectory"] == "/tmp"


def test_a_kickoff_list_for_one_task_id_returns_that_task(agent: Agent, api: Ecs) -> None:
    """`task/list?reason=kickoff&taskId=t-…&currentTime&offset=0&timeZone=Etc%2FUTC` (after `kick_vm task run
    t-…`) lists that task in `run`."""
    invoke_id = api.run_command(agent.instance_id, "echo kicked")
    listing = agent.tasks("kickoff", task_id=invoke_id)
    entry_for(listing, "run", invoke_id)


def test_a_task_is_delivered_to_its_own_instance_only(make_agent: Any, api: Ecs) -> None:
    """A task for one instance never appears in another instance's task list."""
    mine, other = make_agent(), make_agent()
    invoke_id = api.run_command(mine.instance_id, "echo mine")
    assert all(e["task"]["taskID"] != invoke_id for e in other.tasks("startup")["run"])
    entry_for(mine.tasks("startup"), "run", invoke_id)
