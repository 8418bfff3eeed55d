"""The task list as the agent protocol spells it, and task reports read from their query strings."""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

from cloudassist.domain.files import signature
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.schedules import agent_schedule
from cloudassist.services.delivery import Kind, Order, Report, from_millis
from cloudassist.services.files import Delivery, FileReport

#: How the agent should stream output: every second, up to the seed's 24 KB in all; the start is posted (so the
#: record is Running at once), but a second without output posts nothing: a fleet of long runs would otherwise
#: send one empty "still running" request per agent per second (an agent's liveness is its heart-beat).
OUTPUT: Final = {"interval": 1000, "logQuota": 24 * 1024, "skipEmpty": True, "sendStart": True}
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


def _int(value: str | None, default: int | None = None) -> int | None:
    try:
        return int(value) if value not in (None, "") else default
    except ValueError:
        return default


def read_report(kind: str, query: Mapping[str, str], body: bytes) -> Report:
    """A `task/<kind>` report; the official agent's quirks included (lower-case `exitcode` on stopped)."""
    assert kind in KINDS
    exit_code = _int(query.get("exitCode"), _int(query.get("exitcode")))
    kind_value: Kind = kind  # type: ignore[assignment]  # checked against KINDS above
    return Report(
        kind=kind_value,
        task_id=query.get("taskId", ""),
        invoke_version=_int(query.get("invokeVersion"), 1) or 1,
        start=from_millis(query.get("start")),
        end=from_millis(query.get("end")),
        exit_code=exit_code,
        dropped=max(_int(query.get("dropped"), 0) or 0, 0),
        output=body,
        offset=_int(query.get("outputOffset")),
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
        task_id=query.get("taskId", ""),
        status=query.get("status", ""),
        error_code=_int(query.get("errorcode"), _int(query.get("errorCode"))),
        param=query.get("param", ""),
    )
