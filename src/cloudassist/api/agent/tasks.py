"""The task list as the agent protocol spells it, and task reports read from their query strings."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

from cloudassist.domain.files import signature
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.schedules import agent_schedule
from cloudassist.domain.text import storable
from cloudassist.errors import ApiError
from cloudassist.services.delivery import Kind, Order, Report, from_millis
from cloudassist.services.files import Delivery, FileReport

#: How the agent should stream output: every second, up to the seed's 24 KB in all; the start is posted (so the
#: record is Running at once), but a second without output posts nothing: a fleet of long runs would otherwise
#: send one empty "still running" request per agent per second (an agent's liveness is its heart-beat).
OUTPUT: Final = {"interval": 1000, "logQuota": 24 * 1024, "skipEmpty": True, "sendStart": True}
#: The range of a 64-bit integer column (exit codes, counts), and the length of an id column.
INT64: Final = 2**63
MAX_ID: Final = 64
KINDS: Final[frozenset[str]] = frozenset({"running", "finish", "timeout", "error", "stopped", "invalid"})


def _millis(value: Any) -> int:
    return int(value.timestamp() * 1000)


def task_entry(order: Order, instance: ManagedInstance, account_name: str = "") -> dict[str, Any]:
    """One `{"task", "output", "repeat"}` entry of a task list (agent-protocol §1.5)."""
    inv, result = order.invocation, order.result
    repeat, cron = agent_schedule(inv.repeat_mode.value, inv.frequency)
    built_in = {
        "RegionId": instance.region_id,
        "AccountId": account_name,
        "InstanceId": instance.instance_id,
        "InstanceName": instance.instance_name,
        "InvokeId": inv.invoke_id,
        "CommandId": inv.command_id,
    }
    return {
        "task": {
            "instanceId": instance.instance_id,
            "type": inv.command_type.value,
            "taskID": inv.invoke_id,
            "commandId": inv.command_id,
            "enableParameter": inv.enable_parameter,
            "timeOut": str(inv.timeout),
            "commandName": inv.command_name or inv.command_id,
            "invokeVersion": result.invoke_version,
            "commandContent": base64.b64encode(inv.content).decode(),
            "workingDirectory": inv.working_dir,
            "args": "",
            "cron": cron,
            "username": inv.username,
            "windowsPasswordName": inv.windows_password_name,
            "creationTime": _millis(inv.creation_time),
            "containerId": inv.container_id,
            "containerName": inv.container_name,
            "terminationMode": inv.termination_mode.value,
            "launcher": inv.launcher,
            # the official agent looks names up bare ("InstanceId"); ours with the prefix
            "builtInParameter": {**built_in, **{f"ACS::{k}": v for k, v in built_in.items()}},
        },
        "output": dict(OUTPUT),
        "repeat": repeat,
    }


def _int(query: Mapping[str, str], name: str, default: int | None = None) -> int | None:
    """An integer of the query: absent or not a number is `default` (the official agent's quirks); a number a
    64-bit column cannot hold is refused (InvalidParameter.<name>), never stored."""
    value = query.get(name)
    if value is None or value == "":
        return default
    try:
        number = int(value)
    except ValueError:
        return default
    if not -INT64 <= number < INT64:
        raise ApiError.invalid(name)
    return number


def task_id(query: Mapping[str, str]) -> str:
    """The `taskId` of a report: text an id column can hold, or InvalidParameter.taskId."""
    value = query.get("taskId", "")
    if len(value) > MAX_ID or not storable(value):
        raise ApiError.invalid("taskId")
    return value


def read_report(kind: str, query: Mapping[str, str], body: bytes) -> Report:
    """A `task/<kind>` report; the official agent's quirks included (lower-case `exitcode` on stopped)."""
    assert kind in KINDS
    exit_code = _int(query, "exitCode", _int(query, "exitcode"))
    kind_value: Kind = kind  # type: ignore[assignment]  # checked against KINDS above
    return Report(
        kind=kind_value,
        task_id=task_id(query),
        invoke_version=_int(query, "invokeVersion", 1) or 1,
        start=from_millis(query.get("start")),
        end=from_millis(query.get("end")),
        exit_code=exit_code,
        dropped=max(_int(query, "dropped", 0) or 0, 0),
        output=body,
        offset=_int(query, "outputOffset"),
        err_code=query.get("errCode", ""),
        param=query.get("param", ""),
        result=query.get("result", ""),
    )


def file_entry(delivery: Delivery) -> dict[str, Any]:
    """One `{"task", "output"}` entry of the task list's `file` list, as the official agent reads it
    (`models.SendFileTaskInfo`): `timeout` is a JSON number and `overwrite` a boolean there."""
    task = delivery.task
    spec = task.spec
    content = spec.encoded
    return {
        "task": {
            "content": content,
            "contentType": spec.content_type.value,
            "destination": spec.target_dir,
            "group": spec.file_group,
            "mode": spec.file_mode,
            "name": spec.name,
            "overwrite": spec.overwrite,
            "owner": spec.file_owner,
            "signature": signature(content),
            "taskID": task.invoke_id,
            "timeout": spec.timeout,
        },
        "output": dict(OUTPUT),
    }


def read_file_report(kind: str, query: Mapping[str, str]) -> FileReport:
    """A `task/<kind>?taskType=sendfile` report: `status` and lower-case `errorcode` on finish, `param` on invalid."""
    return FileReport(
        kind=kind,
        task_id=task_id(query),
        status=query.get("status", ""),
        error_code=_int(query, "errorcode", _int(query, "errorCode")),
        param=query.get("param", ""),
    )
