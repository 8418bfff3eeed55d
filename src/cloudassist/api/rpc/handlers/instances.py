"""DescribeManagedInstances, DeregisterManagedInstance, ModifyManagedInstance (reference A.25-A.27),
DescribeCloudAssistantStatus (A.13) and InstallCloudAssistant (A.14)."""

from __future__ import annotations

from typing import Any, Final

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, TAGS, bare_tags, page_of, paging_fields, tag_filter
from cloudassist.clock import iso
from cloudassist.domain.instances import ManagedInstance
from cloudassist.domain.paging import encode_token
from cloudassist.errors import ApiError
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.instances import InstanceService, os_family, parse_os_type
from cloudassist.store.instances import InstanceFilter

#: InstanceId.N of DescribeManagedInstances: N is 1 to 50 (reference A.25).
MAX_LISTED_INSTANCES: Final = 50


def _connected(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise ApiError.invalid("Connected")
    return lowered == "true"


@action(
    "DescribeManagedInstances",
    Param("ActivationId"),
    Param("Connected"),
    Param("InstanceId", "list"),
    Param("InstanceIp"),
    Param("InstanceName"),
    Param("MachineId"),
    Param("OsType"),
    Param("ResourceGroupId"),
    TAGS,
    *PAGING,
)
async def describe_managed_instances(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    instance_ids = call["InstanceId"] or []
    if len(instance_ids) > MAX_LISTED_INSTANCES:
        raise ApiError.of("InstanceIds.ExceedLimit")
    f = InstanceFilter(
        call.scope.account_id,
        call.scope.region_id,
        instance_ids=instance_ids,
        instance_name=call["InstanceName"],
        activation_id=call["ActivationId"],
        os_type=parse_os_type(call["OsType"]) if call["OsType"] else None,
        instance_ip=call["InstanceIp"],
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
        machine_id=call["MachineId"],
        connected=_connected(call["Connected"]),
    )
    found = await InstanceService(call.ctx).describe_managed_instances(f, page)
    token = encode_token(str(found.next_offset)) if found.next_offset is not None else None
    now = call.ctx.clock.now()
    return {
        "Instances": [
            {
                **instance_shape(m),
                "Connected": m.online(now),
                "Tags": bare_tags(m.tags),
            }
            for m in found.instances
        ],
        **paging_fields(page, found.total, token),
    }


def instance_shape(m: ManagedInstance) -> dict[str, Any]:
    """The fields DeregisterManagedInstance's `Instance` has; DescribeManagedInstances adds two."""
    return {
        "ActivationId": m.activation_id,
        "AgentVersion": m.agent_version,
        "Hostname": m.hostname,
        "InstanceId": m.instance_id,
        "InstanceName": m.instance_name,
        "InternetIp": m.internet_ip,
        "IntranetIp": m.intranet_ip,
        "InvocationCount": m.invocation_count,
        "LastInvokedTime": iso(m.last_invoked_time),
        "MachineId": m.machine_id,
        "OsType": m.os_type,
        "OsVersion": m.os_version,
        "RegistrationTime": iso(m.registration_time),
        "ResourceGroupId": m.resource_group_id,
    }


@action("DeregisterManagedInstance", Param("ClientToken"), Param("InstanceId", required=True))
async def deregister_managed_instance(call: Call) -> dict[str, Any]:
    instance = await InstanceService(call.ctx).deregister_managed_instance(
        call.scope,
        call["InstanceId"],
        idempotency=Idempotency.of("DeregisterManagedInstance", call["ClientToken"], call.params),
    )
    return {"Instance": instance_shape(instance)}


@action("ModifyManagedInstance", Param("InstanceId", required=True), Param("InstanceName", required=True))
async def modify_managed_instance(call: Call) -> dict[str, Any]:
    instance = await InstanceService(call.ctx).modify_managed_instance(
        call.scope, call["InstanceId"], call["InstanceName"]
    )
    return {"Instance": {"InstanceId": instance.instance_id, "InstanceName": instance.instance_name}}


@action("DescribeCloudAssistantStatus", Param("InstanceId", "list"), Param("OSType"), *PAGING)
async def describe_cloud_assistant_status(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    found = await InstanceService(call.ctx).describe_cloud_assistant_status(
        call.scope, call["InstanceId"] or [], call["OSType"], page
    )
    token = encode_token(str(found.next_offset)) if found.next_offset is not None else None
    now = call.ctx.clock.now()
    return {
        "InstanceCloudAssistantStatusSet": {
            "InstanceCloudAssistantStatus": [
                {
                    "ActiveTaskCount": m.active_task_count,
                    "CloudAssistantStatus": "true" if m.online(now) else "false",
                    "CloudAssistantVersion": m.agent_version if m.online(now) else "",
                    "InstanceId": m.instance_id,
                    "InvocationCount": m.invocation_count,
                    "LastHeartbeatTime": iso(m.last_heartbeat_time),
                    "LastInvokedTime": iso(m.last_invoked_time),
                    "OSType": os_family(m),
                    "SupportSessionManager": False,
                }
                for m in found.instances
            ]
        },
        **paging_fields(page, found.total, token),
    }


@action("InstallCloudAssistant", Param("InstanceId", "list"))
async def install_cloud_assistant(call: Call) -> dict[str, Any]:
    await InstanceService(call.ctx).install_cloud_assistant(call.scope, call["InstanceId"] or [])
    return {}
