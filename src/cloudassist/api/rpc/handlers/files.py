"""SendFile and DescribeSendFileResults."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, TAGS, page_of, paging_fields, tag_filter, wrapped_tags
from cloudassist.clock import iso
from cloudassist.domain.files import (
    DEFAULT_MODE,
    DEFAULT_OWNER,
    TASK_FILTER,
    ContentType,
    FileSpec,
    FileTask,
    decode,
    effective_timeout,
    parse_content_type,
)
from cloudassist.domain.paging import encode_token
from cloudassist.domain.tags import check_tags
from cloudassist.errors import ApiError
from cloudassist.services.files import FileService
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.files import FileFilter


@action(
    "SendFile",
    Param("InstanceId", "list"),
    Param("Name", required=True),
    Param("Description"),
    Param("TargetDir", required=True),
    Param("Content", required=True),
    Param("ContentType"),
    Param("FileOwner"),
    Param("FileGroup"),
    Param("FileMode"),
    Param("Overwrite", "bool"),
    Param("Timeout", "int"),
    Param("ResourceGroupId"),
    Param("ClientToken"),
    TAGS,
)
async def send_file(call: Call) -> dict[str, Any]:
    instance_ids = call["InstanceId"] or []
    if not instance_ids:
        raise ApiError.of("MissingParam.InstanceId")
    content_type = parse_content_type(call["ContentType"])
    spec = FileSpec(
        name=call["Name"],
        target_dir=call["TargetDir"],
        content=decode(call["Content"], content_type),
        content_type=content_type,
        description=call["Description"] or "",
        file_owner=call["FileOwner"] if call["FileOwner"] is not None else DEFAULT_OWNER,
        file_group=call["FileGroup"] if call["FileGroup"] is not None else DEFAULT_OWNER,
        file_mode=call["FileMode"] if call["FileMode"] is not None else DEFAULT_MODE,
        overwrite=bool(call["Overwrite"]),
        timeout=effective_timeout(call["Timeout"]),
        resource_group_id=call["ResourceGroupId"] or "",
    )
    invoke_id = await FileService(call.ctx).send_file(
        call.scope,
        spec,
        instance_ids,
        check_tags(call["Tag"] or []),
        idempotency=Idempotency.of("SendFile", call["ClientToken"], call.params),
    )
    return {"InvokeId": invoke_id}


@action(
    "DescribeSendFileResults",
    Param("InvokeId"),
    Param("InstanceId"),
    Param("Name"),
    Param("InvocationStatus"),
    Param("ResourceGroupId"),
    TAGS,
    *PAGING,
)
async def describe_send_file_results(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    status = call["InvocationStatus"]
    if status is not None and status not in {s.value for s in TASK_FILTER}:
        raise ApiError.invalid("InvocationStatus")
    f = FileFilter(
        account_id=call.scope.account_id,
        region_id=call.scope.region_id,
        not_before=call.ctx.clock.now(),
        invoke_id=call["InvokeId"],
        instance_id=call["InstanceId"],
        name=call["Name"],
        statuses=frozenset({status}) if status is not None else None,
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
    )
    found = await FileService(call.ctx).describe(f, page)
    token = encode_token(str(found.next_seq)) if found.next_seq is not None else None
    return {
        "Invocations": {"Invocation": [file_task_shape(t) for t in found.tasks]},
        **paging_fields(page, found.total, token),
    }


def file_task_shape(t: FileTask) -> dict[str, Any]:
    """One `Invocation` exactly as the SDK model names its fields (Overwrite and FileMode are strings)."""
    s = t.spec
    content = s.encoded if s.content_type is ContentType.BASE64 else s.content.decode("utf-8", "replace")
    return {
        "Content": content,
        "ContentType": s.content_type.value,
        "CreationTime": iso(t.creation_time),
        "Description": s.description,
        "FileGroup": s.file_group,
        "FileMode": s.file_mode,
        "FileOwner": s.file_owner,
        "InvocationStatus": t.status.value,
        "InvokeId": t.invoke_id,
        "InvokeInstances": {
            "InvokeInstance": [
                {
                    "CreationTime": iso(r.creation_time),
                    "ErrorCode": r.error_code.value,
                    "ErrorInfo": r.error_info,
                    "FinishTime": iso(r.finish_time),
                    "InstanceId": r.instance_id,
                    "InvocationStatus": r.status.value,
                    "StartTime": iso(r.start_time),
                    "UpdateTime": iso(r.update_time),
                }
                for r in t.results
            ]
        },
        "Name": s.name,
        "Overwrite": "true" if s.overwrite else "false",
        "Tags": wrapped_tags(t.tags),
        "TargetDir": s.target_dir,
        "VmCount": len(t.results),
    }
