"""CreateCommand, DescribeCommands, ModifyCommand, DeleteCommand."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.api.rpc.shapes import PAGING, TAGS, page_of, paging_fields, tag_filter, wrapped_tags
from cloudassist.clock import iso
from cloudassist.domain.commands import (
    DEFAULT_TIMEOUT,
    Command,
    ContentEncoding,
    decode_content,
    encode_content,
    parse_encoding,
    parse_type,
)
from cloudassist.domain.paging import encode_token
from cloudassist.domain.tags import Tag, check_tags
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.idempotency import Idempotency
from cloudassist.store.commands import CommandFilter


def command_spec(call: Call, encoding: ContentEncoding, *, name: str) -> CommandSpec:
    """The command a CreateCommand or RunCommand call describes."""
    return CommandSpec(
        name=name,
        description=call["Description"] or "",
        type=parse_type(call["Type"]),
        content=decode_content(call["CommandContent"], encoding),
        working_dir=call["WorkingDir"] or "",
        timeout=call["Timeout"] if call["Timeout"] is not None else DEFAULT_TIMEOUT,
        enable_parameter=bool(call["EnableParameter"]),
        launcher=call["Launcher"] or "",
        resource_group_id=call["ResourceGroupId"] or "",
    )


@action(
    "CreateCommand",
    Param("Name", required=True),
    Param("Type", required=True),
    Param("CommandContent", required=True),
    Param("ContentEncoding"),
    Param("Description"),
    Param("EnableParameter", "bool"),
    Param("Launcher"),
    Param("ResourceGroupId"),
    Param("Timeout", "int"),
    Param("WorkingDir"),
    Param("ClientToken"),
    TAGS,
)
async def create_command(call: Call) -> dict[str, Any]:
    encoding = parse_encoding(call["ContentEncoding"], ContentEncoding.BASE64)
    spec = command_spec(call, encoding, name=call["Name"])
    command_id = await CommandService(call.ctx).create_command(
        call.scope,
        spec,
        check_tags(call["Tag"] or []),
        idempotency=Idempotency.of("CreateCommand", call["ClientToken"], call.params),
    )
    return {"CommandId": command_id}


@action(
    "DescribeCommands",
    Param("CommandId"),
    Param("Type"),
    Param("Name"),
    Param("Description"),
    Param("ContentEncoding"),
    Param("Provider"),
    Param("Latest", "bool"),
    Param("ResourceGroupId"),
    TAGS,
    *PAGING,
)
async def describe_commands(call: Call) -> dict[str, Any]:
    page = page_of(call.params, call.ctx.settings.paging_error_status)
    encoding = parse_encoding(call["ContentEncoding"], ContentEncoding.BASE64)
    if call["Type"]:
        parse_type(call["Type"], "InvalidCommandType.NotFound")
    for field in ("Name", "Description"):
        if call[field] is not None and len(call[field]) > (128 if field == "Name" else 512):
            raise ApiError.of(f"Invalid{field}.LengthLimitExceeded")
    f = CommandFilter(
        call.scope.account_id,
        call.scope.region_id,
        command_id=call["CommandId"],
        type=call["Type"],
        name=call["Name"],
        description=call["Description"],
        resource_group_id=call["ResourceGroupId"],
        tags=tag_filter(call.params),
    )
    if call["Provider"]:
        # public commands come from a provider; this server has none of its own to offer
        found_commands: list[tuple[Command, tuple[Tag, ...]]] = []
        total, next_offset = 0, None
    else:
        found = await CommandService(call.ctx).describe_commands(f, page)
        found_commands, total, next_offset = found.commands, found.total, found.next_offset
    token = encode_token(str(next_offset)) if next_offset is not None else None
    return {
        "Commands": {"Command": [command_shape(c, tags, encoding) for c, tags in found_commands]},
        **paging_fields(page, total, token),
    }


def command_shape(c: Command, tags: tuple[Tag, ...], encoding: ContentEncoding) -> dict[str, Any]:
    return {
        "Category": "",
        "CommandContent": encode_content(c.content, encoding),
        "CommandId": c.command_id,
        "CreationTime": iso(c.creation_time),
        "Description": c.description,
        "EnableParameter": c.enable_parameter,
        "InvokeTimes": c.invoke_times,
        "Latest": True,
        "Launcher": c.launcher,
        "Name": c.name,
        "ParameterDefinitions": {
            "ParameterDefinition": [
                {
                    "DefaultValue": "",
                    "Description": "",
                    "ParameterName": name,
                    "PatternRegex": "",
                    "PossibleValues": {"PossibleValue": []},
                    "Required": False,
                }
                for name in c.parameter_names
            ]
        },
        "ParameterNames": {"ParameterName": c.parameter_names},
        "Provider": "",
        "ResourceGroupId": c.resource_group_id,
        "Tags": wrapped_tags(tags),
        "Timeout": c.timeout,
        "Type": c.type.value,
        "Version": 1,
        "WorkingDir": c.working_dir,
    }


@action(
    "ModifyCommand",
    Param("CommandId", required=True),
    Param("Name"),
    Param("Description"),
    Param("WorkingDir"),
    Param("Timeout", "int"),
    Param("Launcher"),
    Param("CommandContent"),
)
async def modify_command(call: Call) -> dict[str, Any]:
    await CommandService(call.ctx).modify_command(
        call.scope,
        call["CommandId"],
        name=call["Name"],
        description=call["Description"],
        working_dir=call["WorkingDir"],
        timeout=call["Timeout"],
        launcher=call["Launcher"],
    )
    return {}


@action("DeleteCommand", Param("CommandId", required=True))
async def delete_command(call: Call) -> dict[str, Any]:
    await CommandService(call.ctx).delete_command(call.scope, call["CommandId"])
    return {}
