"""CreateActivation, DescribeActivations, DeleteActivation, DisableActivation (reference A.21-A.24)."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, TAGS, bare_tags, page_of, paging_fields, tag_filter
from cloudassist.clock import iso
from cloudassist.domain.activations import Activation
from cloudassist.domain.paging import encode_token
from cloudassist.domain.tags import check_tags
from cloudassist.services.activations import ActivationService, ActivationSpec
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.activations import ActivationFilter


@action(
    "CreateActivation",
    Param("ClientToken"),
    Param("Description"),
    Param("InstanceCount", "int"),
    Param("InstanceName"),
    Param("IpAddressRange"),
    Param("ResourceGroupId"),
    TAGS,
    Param("TimeToLiveInHours", "int"),
)
async def create_activation(call: Call) -> dict[str, Any]:
    spec = ActivationSpec(
        description=call["Description"],
        instance_name=call["InstanceName"],
        instance_count=call["InstanceCount"],
        ttl_hours=call["TimeToLiveInHours"],
        ip_address_range=call["IpAddressRange"],
        resource_group_id=call["ResourceGroupId"],
    )
    created = await ActivationService(call.ctx).create_activation(
        call.scope,
        spec,
        check_tags(call["Tag"] or []),
        idempotency=Idempotency.of("CreateActivation", call["ClientToken"], call.params),
    )
    return {"ActivationCode": created.code, "ActivationId": created.activation.activation_id}


@action("DescribeActivations", Param("ActivationId"), Param("InstanceName"), Param("ResourceGroupId"), TAGS, *PAGING)
async def describe_activations(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    f = ActivationFilter(
        call.scope.account_id,
        call.scope.region_id,
        activation_id=call["ActivationId"],
        instance_name=call["InstanceName"],
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
    )
    found = await ActivationService(call.ctx).describe_activations(f, page)
    token = encode_token(str(found.next_offset)) if found.next_offset is not None else None
    return {
        "ActivationList": [
            {
                **activation_shape(a),
                "Disabled": a.disabled,
                "ResourceGroupId": a.resource_group_id,
                "Tags": bare_tags(a.tags),
            }
            for a in found.activations
        ],
        **paging_fields(page, found.total, token),
    }


def activation_shape(a: Activation) -> dict[str, Any]:
    """The fields DeleteActivation's `Activation` has; the other actions add to them."""
    return {
        "ActivationId": a.activation_id,
        "CreationTime": iso(a.creation_time),
        "DeregisteredCount": a.deregistered_count,
        "Description": a.description,
        "InstanceCount": a.instance_count,
        "InstanceName": a.instance_name,
        "IpAddressRange": a.ip_address_range,
        "RegisteredCount": a.registered_count,
        "TimeToLiveInHours": a.time_to_live_in_hours,
    }


@action("DeleteActivation", Param("ActivationId", required=True))
async def delete_activation(call: Call) -> dict[str, Any]:
    deleted = await ActivationService(call.ctx).delete_activation(call.scope, call["ActivationId"])
    return {"Activation": activation_shape(deleted)}


@action("DisableActivation", Param("ActivationId", required=True))
async def disable_activation(call: Call) -> dict[str, Any]:
    disabled = await ActivationService(call.ctx).disable_activation(call.scope, call["ActivationId"])
    return {"Activation": {**activation_shape(disabled), "Disabled": disabled.disabled}}
