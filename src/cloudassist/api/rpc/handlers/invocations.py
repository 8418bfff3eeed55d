"""RunCommand, InvokeCommand, DescribeInvocations, DescribeInvocationResults, StopInvocation and
ModifyInvocationAttribute."""

from __future__ import annotations

import json
from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.handlers.commands import command_spec
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, TAGS, page_of, paging_fields, tag_filter, wrapped_tags
from cloudassist.clock import iso
from cloudassist.domain.commands import ContentEncoding, decode_content, encode_content, parse_encoding, parse_type
from cloudassist.domain.invocations import (
    Invocation,
    InvocationResult,
    RepeatMode,
    parse_repeat_mode,
    parse_termination_mode,
)
from cloudassist.domain.paging import encode_token
from cloudassist.domain.statuses import InvocationStatus, LegacyStatus, TaskStatus, legacy
from cloudassist.domain.tags import check_tags
from cloudassist.errors import ApiError
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.invocations import InvocationService, Modification, RunOptions, Targets, modify_errors
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.results import ResultFilter

#: What RunCommand and InvokeCommand share: how and where the task runs.
RUN = (
    Param("InstanceId", "list"),
    Param("ResourceTag", "objects"),
    Param("Parameters", "json"),
    Param("RepeatMode"),
    Param("Frequency"),
    Param("Timed", "bool"),
    Param("Timeout", "int"),
    Param("WorkingDir"),
    Param("Username"),
    Param("WindowsPasswordName"),
    Param("TerminationMode"),
    Param("Launcher"),
    Param("ContainerId"),
    Param("ContainerName"),
    Param("OssOutputDelivery"),
    Param("ResourceGroupId"),
    Param("ClientToken"),
    TAGS,
)


def _options(call: Call) -> RunOptions:
    frequency = call["Frequency"] or ""
    mode = parse_repeat_mode(call["RepeatMode"], frequency)
    if mode is RepeatMode.PERIOD and not frequency:
        raise ApiError.of("MissingParam.Frequency")
    return RunOptions(
        repeat_mode=mode,
        frequency=frequency,
        parameters=call["Parameters"] or {},
        timeout=call["Timeout"],
        working_dir=call["WorkingDir"],
        username=call["Username"] or "",
        windows_password_name=call["WindowsPasswordName"] or "",
        termination_mode=parse_termination_mode(call["TerminationMode"]),
        launcher=call["Launcher"],
        container_id=call["ContainerId"] or "",
        container_name=call["ContainerName"] or "",
        resource_group_id=call["ResourceGroupId"] or "",
    )


def _targets(call: Call, resource_tag_limit: int) -> Targets:
    return Targets(
        call["InstanceId"] or [], check_tags(call["ResourceTag"] or [], resource=True, limit=resource_tag_limit)
    )


@action(
    "RunCommand",
    Param("Type", required=True),
    Param("CommandContent", required=True),
    Param("ContentEncoding"),
    Param("Name"),
    Param("Description"),
    Param("EnableParameter", "bool"),
    Param("KeepCommand", "bool"),
    *RUN,
)
async def run_command(call: Call) -> dict[str, Any]:
    encoding = parse_encoding(call["ContentEncoding"], ContentEncoding.PLAIN_TEXT)
    spec = command_spec(call, encoding, name=call["Name"] or "")
    service = InvocationService(call.ctx)
    started = await service.run_command(
        call.scope,
        spec,
        _options(call),
        _targets(call, 20),
        check_tags(call["Tag"] or []),
        keep_command=bool(call["KeepCommand"]),
        idempotency=Idempotency.of("RunCommand", call["ClientToken"], call.params),
    )
    return {"CommandId": started.command_id, "InvokeId": started.invoke_id}


@action("InvokeCommand", Param("CommandId", required=True), *RUN)
async def invoke_command(call: Call) -> dict[str, Any]:
    service = InvocationService(call.ctx)
    started = await service.invoke_command(
        call.scope,
        call["CommandId"],
        _options(call),
        _targets(call, 10),
        check_tags(call["Tag"] or []),
        idempotency=Idempotency.of("InvokeCommand", call["ClientToken"], call.params),
    )
    return {"InvokeId": started.invoke_id}


def _record_filter(value: str | None) -> tuple[frozenset[InvocationStatus] | None, str | None]:
    """InvokeRecordStatus as a filter: Success selects that status; the legacy values their own column."""
    if value is None:
        return None, None
    if value == "Success":
        return frozenset({InvocationStatus.SUCCESS}), None
    if value not in set(LegacyStatus):
        raise ApiError.invalid("InvokeRecordStatus")
    return None, value


@action(
    "DescribeInvocationResults",
    Param("InvokeId"),
    Param("InstanceId"),
    Param("CommandId"),
    Param("InvokeRecordStatus"),
    Param("IncludeHistory", "bool"),
    Param("ContentEncoding"),
    Param("ResourceGroupId"),
    TAGS,
    *PAGING,
)
async def describe_invocation_results(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    encoding = parse_encoding(call["ContentEncoding"], ContentEncoding.BASE64)
    if call["IncludeHistory"] and not call["InvokeId"]:
        raise ApiError.missing("InvokeId")
    statuses, record_status = _record_filter(call["InvokeRecordStatus"])
    f = ResultFilter(
        account_id=call.scope.account_id,
        region_id=call.scope.region_id,
        not_before=call.ctx.clock.now(),
        min_seq=0,
        invoke_id=call["InvokeId"],
        instance_id=call["InstanceId"],
        command_id=call["CommandId"],
        statuses=statuses,
        record_status=record_status,
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
    )
    found = await InvocationService(call.ctx).describe_invocation_results(
        f, page, include_history=bool(call["IncludeHistory"])
    )
    token = encode_token(str(found.next_seq)) if found.next_seq is not None else None
    return {
        "Invocation": {
            "InvocationResults": {"InvocationResult": [result_shape(r, inv, encoding) for r, inv in found.results]},
            **paging_fields(page, found.total, token),
        }
    }


def result_shape(r: InvocationResult, inv: Invocation, encoding: ContentEncoding) -> dict[str, Any]:
    """One `InvocationResult` exactly as the seed and the SDK model name its fields."""
    return {
        "CommandId": r.command_id,
        "ContainerId": inv.container_id,
        "ContainerName": inv.container_name,
        "Dropped": r.dropped,
        "ErrorCode": r.error_code.value,
        "ErrorInfo": r.error_code.info,
        "ExitCode": r.exit_code if r.exit_code is not None else 0,
        "FinishedTime": iso(r.finished_time),
        "InstanceId": r.instance_id,
        "InvocationStatus": r.status.value,
        "InvokeId": r.invoke_id,
        "InvokeRecordStatus": legacy(r.status).value,
        "Launcher": inv.launcher,
        "OssOutputDelivery": "",
        "OssOutputErrorCode": "",
        "OssOutputErrorInfo": "",
        "OssOutputStatus": "",
        "OssOutputUri": "",
        "Output": encode_content(r.output, encoding),
        "Repeats": r.repeats,
        "StartTime": iso(r.start_time),
        "StopTime": iso(r.stop_time),
        "Tags": wrapped_tags(inv.tags),
        "TerminationMode": inv.termination_mode.value,
        "Username": inv.username,
    }


#: InvokeStatus filter values: the legacy vocabulary, plus three the request enum adds (SDK 7.11).
_LEGACY_VALUES = frozenset(s.value for s in LegacyStatus)
_NEW_VALUES = frozenset({TaskStatus.SUCCESS.value, TaskStatus.PENDING.value, TaskStatus.SCHEDULED.value})


@action(
    "DescribeInvocations",
    Param("InvokeId"),
    Param("CommandId"),
    Param("CommandName"),
    Param("CommandType"),
    Param("InvokeStatus"),
    Param("InstanceId"),
    Param("Timed", "bool"),
    Param("ContentEncoding"),
    Param("IncludeOutput", "bool"),
    Param("RepeatMode"),
    Param("ResourceGroupId"),
    TAGS,
    *PAGING,
)
async def describe_invocations(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    encoding = parse_encoding(call["ContentEncoding"], ContentEncoding.BASE64)
    if call["IncludeOutput"] and not (call["InvokeId"] or call["InstanceId"]):
        raise ApiError.of("InvalidParameter.IncludeOutput")
    if call["CommandType"]:
        parse_type(call["CommandType"], "InvalidCommandType.NotFound")
    status = call["InvokeStatus"]
    if status is not None and status not in _LEGACY_VALUES | _NEW_VALUES:
        raise ApiError.invalid("InvokeStatus")
    modes: frozenset[str] | None = None
    if call["RepeatMode"]:
        modes = frozenset({parse_repeat_mode(call["RepeatMode"], "x").value})
    f = InvocationFilter(
        account_id=call.scope.account_id,
        region_id=call.scope.region_id,
        not_before=call.ctx.clock.now(),
        invoke_id=call["InvokeId"],
        command_id=call["CommandId"],
        command_type=call["CommandType"],
        command_name=call["CommandName"],
        instance_id=call["InstanceId"],
        statuses=frozenset({status}) if status in _NEW_VALUES else None,
        invoke_statuses=frozenset({status}) if status in _LEGACY_VALUES else None,
        repeat_modes=frozenset(modes) if modes is not None else None,
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
        timed=call["Timed"],
    )
    found = await InvocationService(call.ctx).describe_invocations(f, page)
    token = encode_token(str(found.next_seq)) if found.next_seq is not None else None
    return {
        "Invocations": {
            "Invocation": [invocation_shape(inv, encoding, bool(call["IncludeOutput"])) for inv in found.invocations]
        },
        **paging_fields(page, found.total, token),
    }


def invocation_shape(inv: Invocation, encoding: ContentEncoding, include_output: bool) -> dict[str, Any]:
    timed = inv.timed
    return {
        "CommandContent": encode_content(inv.content, encoding),
        "CommandDescription": inv.command_description,
        "CommandId": inv.command_id,
        "CommandName": inv.command_name,
        "CommandType": inv.command_type.value,
        "ContainerId": inv.container_id,
        "ContainerName": inv.container_name,
        "CreationTime": iso(inv.creation_time),
        "Frequency": inv.frequency,
        "InvocationStatus": inv.status.value,
        "InvokeId": inv.invoke_id,
        "InvokeInstances": {
            "InvokeInstance": [
                {
                    "CreationTime": iso(r.creation_time),
                    "Dropped": r.dropped,
                    "ErrorCode": r.error_code.value,
                    "ErrorInfo": r.error_code.info,
                    "ExitCode": r.exit_code if r.exit_code is not None else 0,
                    "FinishTime": iso(r.finished_time),
                    "InstanceId": r.instance_id,
                    "InstanceInvokeStatus": legacy(r.status).value,
                    "InvocationStatus": r.status.value,
                    "OssOutputErrorCode": "",
                    "OssOutputErrorInfo": "",
                    "OssOutputStatus": "",
                    "OssOutputUri": "",
                    "Output": encode_content(r.output, encoding) if include_output else "",
                    "Repeats": r.repeats,
                    "StartTime": iso(r.start_time),
                    "StopTime": iso(r.stop_time),
                    "Timed": timed,
                    "UpdateTime": iso(r.update_time),
                }
                for r in inv.results
            ]
        },
        "InvokeStatus": inv.legacy_status,
        "Launcher": inv.launcher,
        "OssOutputDelivery": "",
        "Parameters": json.dumps(inv.parameters, separators=(",", ":")),
        "RepeatMode": inv.repeat_mode.value,
        "Tags": wrapped_tags(inv.tags),
        "TerminationMode": inv.termination_mode.value,
        "Timed": timed,
        "Timeout": inv.timeout,
        "Username": inv.username,
        "WorkingDir": inv.working_dir,
    }


@action("StopInvocation", Param("InvokeId", required=True), Param("InstanceId", "list"))
async def stop_invocation(call: Call) -> dict[str, Any]:
    instance_ids = call["InstanceId"] or []
    if len(instance_ids) > 50:
        raise ApiError.of("InstanceIds.ExceedLimit")
    await InvocationService(call.ctx).stop_invocation(call.scope, call["InvokeId"], instance_ids)
    return {}


@action(
    "ModifyInvocationAttribute",
    Param("InvokeId", required=True),
    Param("CommandContent"),
    Param("ContentEncoding"),
    Param("Parameters", "json"),
    Param("EnableParameter", "bool"),
    Param("Frequency"),
    Param("InstanceId", "list"),
    Param("ClientToken"),
)
async def modify_invocation_attribute(call: Call) -> dict[str, Any]:
    """Only what is sent changes; CommandContent is plain text unless ContentEncoding says Base64 (A.10)."""
    content = None
    if call["CommandContent"]:
        with modify_errors():
            content = decode_content(
                call["CommandContent"], parse_encoding(call["ContentEncoding"], ContentEncoding.PLAIN_TEXT)
            )
    change = Modification(
        content=content,
        parameters=call["Parameters"] or None,  # empty: the parameters are not modified (A.10)
        enable_parameter=call["EnableParameter"],
        frequency=call["Frequency"] or None,
        instance_ids=call["InstanceId"] or [],
    )
    command_id = await InvocationService(call.ctx).modify_invocation_attribute(
        call.scope,
        call["InvokeId"],
        change,
        idempotency=Idempotency.of("ModifyInvocationAttribute", call["ClientToken"], call.params),
    )
    return {"CommandId": command_id}
