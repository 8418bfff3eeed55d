"""§1.6: parameters. The server fills in custom `{{name}}` parameters; the agent itself fills in the built-in
`{{ACS::Name}}` ones from the task's `builtInParameter` map, exactly as ResolveBuiltinParameters does
(agent/taskengine/parameters/environment.go): it matches `{{\\s*(ACS\\s*::\\s*([\\w-.]+))\\s*}}` and looks up the
SECOND group, the bare name (`InstanceId`), in the map; a name it cannot find makes it refuse the task with
`task/invalid?param=InvalidEnvironmentParameter`, and an empty `InstanceName` sends it to the ECS metadata server.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

from luban import Agent, Ecs

#: environment.go's `{{\s*((?U:ACS)\s*::\s*([\w-.]+))\s*}}`, in Python's spelling.
ENVIRONMENT_PARAMETER = re.compile(r"\{\{\s*(ACS\s*::\s*([\w\-.]+))\s*\}\}")


def resolve_builtin_parameters(content: str, builtin: dict[str, str]) -> str:
    """What the official agent does to a task's content when enableParameter is true; raises LookupError
    where the agent would report InvalidEnvironmentParameter."""
    missing: list[str] = []

    def value(match: re.Match[str]) -> str:
        name = match.group(2)
        if name not in builtin:
            missing.append(name)
            return ""
        return builtin[name]

    resolved = ENVIRONMENT_PARAMETER.sub(value, content)
    if missing:
        raise LookupError(f"The environment parameter {missing[0]} is invalid "
                          f"(builtInParameter keys: {sorted(builtin)})")
    return resolved


def delivered(agent: Agent, invoke_id: str) -> dict[str, Any]:
    [entry] = [e for e in agent.tasks("startup")["run"] if e["task"]["taskID"] == invoke_id]
    task: dict[str, Any] = entry["task"]
    return task


def test_built_in_parameters_resolve_the_way_the_official_agent_looks_them_up(agent: Agent, api: Ecs) -> None:
    """RunCommand with EnableParameter=true and `{{ACS::InstanceId}} {{ACS::InvokeId}} {{ACS::CommandId}}
    {{ACS::InstanceName}} {{ACS::RegionId}}` delivers `enableParameter` true and a builtInParameter map in which
    the agent finds every one of those names (bare, as environment.go looks them up), with the right values and
    a non-empty InstanceName."""
    script = "echo {{ACS::InstanceId}} {{ACS::InvokeId}} {{ ACS::CommandId }} {{ACS::InstanceName}} {{ACS::RegionId}}"
    invoke_id = api.run_command(agent.instance_id, script, EnableParameter="true")
    task = delivered(agent, invoke_id)
    assert task["enableParameter"] is True, task
    content = base64.b64decode(task["commandContent"]).decode()
    builtin = task["builtInParameter"]
    try:
        resolved = resolve_builtin_parameters(content, dict(builtin))
    except LookupError as exc:
        raise AssertionError(f"the official agent would refuse this task: {exc}") from None
    [listed] = api.managed_instances(**{"InstanceId.1": agent.instance_id})
    assert resolved == (f"echo {agent.instance_id} {invoke_id} {task['commandId']} {listed['InstanceName']} "
                        f"cn-hangzhou"), resolved
    assert builtin.get("InstanceName"), "an empty InstanceName sends the agent to the ECS metadata server"


def test_custom_parameters_are_filled_in_by_the_server(agent: Agent, api: Ecs) -> None:
    """RunCommand with EnableParameter=true and Parameters={"name":"world"} delivers content with `{{name}}`
    already replaced: the agent only resolves `{{ACS::…}}` names and would run `{{name}}` literally."""
    invoke_id = api.run_command(agent.instance_id, "echo hello {{name}}", EnableParameter="true",
                                Parameters=json.dumps({"name": "world"}))
    task = delivered(agent, invoke_id)
    content = base64.b64decode(task["commandContent"]).decode()
    assert content == "echo hello world", content


def test_without_enable_parameter_the_content_is_delivered_verbatim(agent: Agent, api: Ecs) -> None:
    """With EnableParameter false, `{{ACS::InstanceId}}` is delivered untouched and `enableParameter` is false, so
    the agent runs the script exactly as written."""
    invoke_id = api.run_command(agent.instance_id, "echo '{{ACS::InstanceId}}'")
    task = delivered(agent, invoke_id)
    assert task["enableParameter"] is False
    assert base64.b64decode(task["commandContent"]).decode() == "echo '{{ACS::InstanceId}}'"
