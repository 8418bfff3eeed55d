"""TagResources, UntagResources and ListTagResources for the Cloud Assistant resource types."""

from __future__ import annotations

from typing import Any

from cloudassist.api.rpc.actions import Call, action
from cloudassist.api.rpc.params import Param
from cloudassist.domain.paging import decode_token, encode_token
from cloudassist.domain.tags import (
    check_key_patterns,
    check_resource_ids,
    check_resource_type,
    check_tag_keys,
    check_tag_queries,
    check_tags,
)
from cloudassist.domain.text import storable
from cloudassist.errors import ApiError
from cloudassist.services.tags import DEFAULT_PAGE, MAX_PAGE, TagService

RESOURCE_TYPE = Param("ResourceType")
RESOURCE_IDS = Param("ResourceId", "list")


@action("TagResources", RESOURCE_TYPE, RESOURCE_IDS, Param("Tag", "objects"))
async def tag_resources(call: Call) -> dict[str, Any]:
    resource_type = check_resource_type(call["ResourceType"])
    resource_ids = check_resource_ids(call["ResourceId"])
    if not call["Tag"]:
        raise ApiError.of("MissingParameter.Tags")
    tags = check_tags(call["Tag"])
    await TagService(call.ctx).tag_resources(call.scope, resource_type, resource_ids, tags)
    return {}


@action("UntagResources", RESOURCE_TYPE, RESOURCE_IDS, Param("TagKey", "list"), Param("All", "bool"))
async def untag_resources(call: Call) -> dict[str, Any]:
    resource_type = check_resource_type(call["ResourceType"])
    resource_ids = check_resource_ids(call["ResourceId"])
    keys = check_tag_keys(call["TagKey"])
    await TagService(call.ctx).untag_resources(call.scope, resource_type, resource_ids, keys, every=bool(call["All"]))
    return {}


@action(
    "ListTagResources",
    RESOURCE_TYPE,
    RESOURCE_IDS,
    Param("Tag", "objects"),
    Param("TagFilter", "objects", fields=("TagKey",), list_fields=("TagValues",)),
    Param("NextToken"),
    Param("MaxResults", "int", error="InvalidParameter.MaxResults"),
)
async def list_tag_resources(call: Call) -> dict[str, Any]:
    resource_type = check_resource_type(call["ResourceType"])
    resource_ids = check_resource_ids(call["ResourceId"], required=False)
    queries = check_tag_queries(call["Tag"] or [])
    patterns = check_key_patterns(call["TagFilter"] or [])
    if queries and patterns:
        raise ApiError.of("InvalidParameter.TagFilter", "Tag.N and TagFilter.N cannot be used together.")
    if not (resource_ids or queries or patterns):
        raise ApiError.of("MissingParameter.ResourceIdOrTag")
    size = call["MaxResults"] if call["MaxResults"] is not None else DEFAULT_PAGE
    if not 1 <= size <= MAX_PAGE:
        raise ApiError.of("InvalidParameter.MaxResults")
    page = await TagService(call.ctx).list_tag_resources(
        call.scope, resource_type, resource_ids, queries, patterns, after=_after(call["NextToken"]), size=size
    )
    return {
        "NextToken": encode_token("\n".join(page.next_after)) if page.next_after else "",
        "TagResources": {
            "TagResource": [
                {"ResourceId": rid, "ResourceType": resource_type, "TagKey": tag.key, "TagValue": tag.value}
                for rid, tag in page.rows
            ]
        },
    }


def _after(token: str | None) -> tuple[str, str] | None:
    """The (ResourceId, TagKey) a NextToken continues after; anything else is InvalidParameter.NextToken."""
    if not token:
        return None
    after = decode_token(token)
    rid, sep, key = after.partition("\n")
    if not sep or not rid or not storable(after):
        raise ApiError.of("InvalidParameter.NextToken")
    return rid, key
