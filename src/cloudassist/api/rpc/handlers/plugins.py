"""ListPluginStatus (reference A.17)."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, page_of, paging_fields
from cloudassist.clock import iso
from cloudassist.domain.paging import encode_token
from cloudassist.services.plugins import PluginService


@action("ListPluginStatus", Param("InstanceId", "list"), Param("Name"), *PAGING)
async def list_plugin_status(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    found = await PluginService(call.ctx).list_plugin_status(call.scope, call["InstanceId"] or [], call["Name"], page)
    token = encode_token(str(found.next_start)) if found.next_start is not None else None
    return {
        "InstancePluginStatusSet": {
            "InstancePluginStatus": [
                {
                    "InstanceId": listed.instance_id,
                    "PluginStatusSet": {
                        "PluginStatus": [
                            {
                                "FirstHeartbeatTime": iso(p.first_heartbeat_time),
                                "LastHeartbeatTime": iso(p.last_heartbeat_time),
                                "PluginName": p.name,
                                "PluginStatus": p.status,
                                "PluginVersion": p.version,
                            }
                            for p in listed.plugins
                        ]
                    },
                }
                for listed in found.rows
            ]
        },
        **paging_fields(page, found.total, token),
    }
