"""TagResources, UntagResources and ListTagResources through the official SDKs, on Cloud Assistant resources."""

from __future__ import annotations

from typing import Any

import pytest
from alibabacloud_ecs20140526 import models as ecs
from alibabacloud_ecs20140526.client import Client as EcsClient
from aliyunsdkecs.request.v20140526.ListTagResourcesRequest import ListTagResourcesRequest
from aliyunsdkecs.request.v20140526.TagResourcesRequest import TagResourcesRequest
from aliyunsdkecs.request.v20140526.UntagResourcesRequest import UntagResourcesRequest

from acceptance.sdk import (
    REGION,
    Core,
    Server,
    core_fails,
    create,
    fails,
    parse_xml,
    round_trips,
    run,
    tea_client,
    unique,
)

pytestmark = pytest.mark.acceptance


def tag(tea: EcsClient, resource_type: str, ids: list[str], **tags: str) -> None:
    response = tea.tag_resources(ecs.TagResourcesRequest(
        region_id=REGION, resource_type=resource_type, resource_id=ids,
        tag=[ecs.TagResourcesRequestTag(key=k, value=v) for k, v in tags.items()]))
    assert response.status_code == 200
    assert response.body.request_id


def listed(tea: EcsClient, resource_type: str, ids: list[str] | None = None, **fields: Any) -> list[tuple[str, ...]]:
    body = tea.list_tag_resources(ecs.ListTagResourcesRequest(region_id=REGION, resource_type=resource_type,
                                                              resource_id=ids, **fields)).body
    return [(r.resource_type, r.resource_id, r.tag_key, r.tag_value) for r in body.tag_resources.tag_resource]


def test_tag_list_untag_a_command(tea: EcsClient) -> None:
    """TagResources adds tags (the same key takes the new value), ListTagResources lists one row per tag with the
    resource's type and id, DescribeCommands shows and filters by them, UntagResources removes by key or all."""
    command_id = create(tea, tag=[ecs.CreateCommandRequestTag(key="team", value="ops")])
    tag(tea, "command", [command_id], env="prod", team="web")
    assert listed(tea, "command", [command_id]) == [("command", command_id, "env", "prod"),
                                                    ("command", command_id, "team", "web")]
    described = tea.describe_commands(ecs.DescribeCommandsRequest(
        region_id=REGION, tag=[ecs.DescribeCommandsRequestTag(key="env", value="prod")], command_id=command_id)).body
    assert [[(t.tag_key, t.tag_value) for t in c.tags.tag] for c in described.commands.command] == [
        [("env", "prod"), ("team", "web")]]
    tea.untag_resources(ecs.UntagResourcesRequest(region_id=REGION, resource_type="command", resource_id=[command_id],
                                                  tag_key=["team"]))
    assert listed(tea, "command", [command_id]) == [("command", command_id, "env", "prod")]
    tea.untag_resources(ecs.UntagResourcesRequest(region_id=REGION, resource_type="command", resource_id=[command_id],
                                                  all=True))
    assert listed(tea, "command", [command_id]) == []


def test_list_by_tag_and_page_with_next_token(tea: EcsClient, server: Server) -> None:
    """ListTagResources by Tag.N (key and value, or key alone) finds the tagged tasks; pages follow NextToken to an
    empty one; the raw answer is exactly the SDK model's shape."""
    [instance] = server.register()
    marker = unique("batch")
    tasks = sorted(run(tea, [instance]) for _ in range(3))
    tag(tea, "invocation", tasks, batch=marker, n="1")
    wanted = [ecs.ListTagResourcesRequestTag(key="batch", value=marker)]
    rows: list[tuple[str, ...]] = []
    token = None
    pages = 0
    while True:
        body = tea.list_tag_resources(ecs.ListTagResourcesRequest(region_id=REGION, resource_type="invocation",
                                                                  tag=wanted, next_token=token)).body
        rows += [(r.resource_id, r.tag_key, r.tag_value) for r in body.tag_resources.tag_resource]
        pages += 1
        token = body.next_token
        if not token:
            break
    assert rows == [(t, k, v) for t in tasks for k, v in (("batch", marker), ("n", "1"))]
    assert pages == 1  # 6 rows fit a page of 50
    by_key = listed(tea, "invocation", None, tag=[ecs.ListTagResourcesRequestTag(key="batch")])
    assert {r[1] for r in by_key} >= set(tasks)
    raw = Core(server.endpoint).call("ListTagResources", {"ResourceType": "invocation", "ResourceId.1": tasks[0]})
    round_trips(ecs.ListTagResourcesResponseBody, raw)
    assert set(raw) == {"RequestId", "NextToken", "TagResources"}


def test_tag_filter_by_key_pattern_and_by_values(tea: EcsClient) -> None:
    """TagFilter.N.TagKey matches keys exactly, by prefix or infix; TagFilter.N.TagValues.N (with an exact key)
    keeps only resources whose value matches any of the value patterns; a value pattern with a wildcard key is
    InvalidParameter.TagFilter."""
    marker = unique("tf")
    prod, staging, other = (create(tea) for _ in range(3))
    tag(tea, "command", [prod], **{marker: "production"})
    tag(tea, "command", [staging], **{marker: "staging"})
    tag(tea, "command", [other], **{f"{marker}-x": "production"})

    def by(key: str, values: list[str] | None = None) -> set[str]:
        found = listed(tea, "command", None, tag_filter=[ecs.ListTagResourcesRequestTagFilter(tag_key=key,
                                                                                              tag_values=values)])
        return {r[1] for r in found}

    assert by(marker) == {prod, staging}
    assert by(f"{marker}*") == {prod, staging, other}
    assert by(marker, ["production"]) == {prod}
    assert by(marker, ["prod*"]) == {prod}
    assert by(marker, ["*tag*", "production"]) == {prod, staging}
    assert by(marker, ["nothing"]) == set()
    fails(lambda: by(f"{marker}*", ["prod*"]), "InvalidParameter.TagFilter", 400)


def test_core_sdk_tags_activations_and_pages(core: Core, server: Server) -> None:
    """aliyunsdkcore's TagResourcesRequest/ListTagResourcesRequest/UntagResourcesRequest on an activation and a
    managed instance; MaxResults=1 pages row by row through NextToken."""
    [instance] = server.register()
    activation_id = core.call("CreateActivation", {"InstanceCount": "1"})["ActivationId"]
    for resource_type, rid in (("activation", activation_id), ("managedinstance", instance)):
        request = TagResourcesRequest()
        request.set_ResourceType(resource_type)
        request.set_ResourceIds([rid])
        request.set_Tags([{"Key": "a", "Value": "1"}, {"Key": "b", "Value": ""}])
        assert set(core.send(request)) == {"RequestId"}
        seen: list[tuple[str, str, str, str]] = []
        token = ""
        while True:
            params = {"ResourceType": resource_type, "ResourceId.1": rid, "MaxResults": "1"}
            if token:
                params["NextToken"] = token
            body = core.call("ListTagResources", params)
            seen += [(r["ResourceType"], r["ResourceId"], r["TagKey"], r["TagValue"])
                     for r in body["TagResources"]["TagResource"]]
            token = body["NextToken"]
            if not token:
                break
        assert seen == [(resource_type, rid, "a", "1"), (resource_type, rid, "b", "")]
        untag = UntagResourcesRequest()
        untag.set_ResourceType(resource_type)
        untag.set_ResourceIds([rid])
        untag.set_All(True)
        core.send(untag)
        listing = ListTagResourcesRequest()
        listing.set_ResourceType(resource_type)
        listing.set_ResourceIds([rid])
        assert core.send(listing)["TagResources"]["TagResource"] == []


def test_xml_answer_of_list_tag_resources(core: Core) -> None:
    """Format=XML: <ListTagResourcesResponse> with <TagResources><TagResource> elements."""
    command_id = core.call("CreateCommand", {"Name": unique("xml"), "Type": "RunShellScript",
                                             "CommandContent": "ZWNobyBoaQ==", "Tag.1.Key": "k",
                                             "Tag.1.Value": "<v&>"})["CommandId"]
    status, _, body = core.raw("ListTagResources", {"ResourceType": "command", "ResourceId.1": command_id},
                               fmt="XML")
    assert status == 200
    root = parse_xml(body)
    assert root.tag == "ListTagResourcesResponse"
    items = root.findall("./TagResources/TagResource")
    assert [(i.findtext("ResourceId"), i.findtext("TagKey"), i.findtext("TagValue"), i.findtext("ResourceType"))
            for i in items] == [(command_id, "k", "<v&>", "command")]


def test_documented_errors(tea: EcsClient, core: Core) -> None:
    """Each refusal is the ECS tagging error, with its status: unsupported types, missing ids or tags, too many
    ids or tags, unknown ids, a resource passing 20 tags, a bad NextToken."""
    command_id = create(tea)
    fails(lambda: tag(tea, "instance", [command_id], a="1"), "InvalidResourceType.NotFound", 404)
    fails(lambda: tag(tea, "command", [], a="1"), "MissingParameter.ResourceIds", 404)
    fails(lambda: tag(tea, "command", [command_id]), "MissingParameter.Tags", 404)
    fails(lambda: tag(tea, "command", ["c-nothere"], a="1"), "InvalidResourceId.NotFound", 404)
    fails(lambda: tag(tea, "command", [f"c-{i}" for i in range(51)], a="1"), "NumberExceed.ResourceIds", 400)
    fails(lambda: tag(tea, "command", [command_id], **{f"k{i}": "v" for i in range(21)}), "NumberExceed.Tags", 400)
    fails(lambda: tag(tea, "command", [command_id], aliyun_x="1"), "InvalidTagKey.Malformed", 400)
    tag(tea, "command", [command_id], **{f"k{i}": "v" for i in range(20)})
    fails(lambda: tag(tea, "command", [command_id], extra="1"), "OperationDenied.QuotaExceed", 400)
    fails(lambda: listed(tea, "command"), "MissingParameter.ResourceIdOrTag", 400)
    fails(lambda: listed(tea, "command", [command_id], next_token="!!"), "InvalidParameter.NextToken", 400)
    core_fails(core.call_error("ListTagResources", {"ResourceId.1": command_id}), "MissingParameter.ResourceType", 404)
    core_fails(core.call_error("UntagResources", {"ResourceType": "disk", "ResourceId.1": command_id,
                                                  "TagKey.1": "k1"}), "InvalidResourceType.NotFound", 404)


def test_another_account_cannot_see_or_tag_the_resources(tea_v3: EcsClient, server: Server) -> None:
    """Another account's key: the command is not found for TagResources/UntagResources and its tags are not listed."""
    command_id = create(tea_v3)
    tag(tea_v3, "command", [command_id], owner="me")
    key_id, secret = unique("LTAItags"), unique("secret")

    async def add_key() -> None:
        async with server.ctx.store.write() as tx:
            account_id = await tx.accounts.ensure(unique("tags-other"), server.ctx.clock.now())
            await tx.accounts.add_key(account_id, key_id, secret, server.ctx.clock.now())

    server.loop.run_until_complete(add_key())
    theirs = tea_client(server.endpoint, access_key_id=key_id, secret=secret)
    fails(lambda: tag(theirs, "command", [command_id], owner="them"), "InvalidResourceId.NotFound", 404)
    fails(lambda: theirs.untag_resources(ecs.UntagResourcesRequest(
        region_id=REGION, resource_type="command", resource_id=[command_id], all=True)),
        "InvalidResourceId.NotFound", 404)
    assert listed(theirs, "command", [command_id]) == []
    assert listed(theirs, "command", None, tag=[ecs.ListTagResourcesRequestTag(key="owner")]) == []
    assert listed(tea_v3, "command", [command_id]) == [("command", command_id, "owner", "me")]


def test_untag_with_neither_tag_key_nor_all_removes_nothing(tea: EcsClient) -> None:
    """ECS documents TagKey.N and All as optional (All=false by default, "valid only when TagKey.N is not
    specified") and lists no MissingParameter error for UntagResources, so a call with neither succeeds and
    removes nothing; All=false with no keys likewise."""
    command_id = create(tea)
    tag(tea, "command", [command_id], env="prod")
    for extra in ({}, {"all": False}):
        response = tea.untag_resources(ecs.UntagResourcesRequest(
            region_id=REGION, resource_type="command", resource_id=[command_id], **extra))
        assert response.status_code == 200
        assert listed(tea, "command", [command_id]) == [("command", command_id, "env", "prod")]


def test_tags_decoded_from_json_with_a_surrogate_or_nul_are_refused(core: Core) -> None:
    """Tag.N sent as a JSON array whose decoded text holds a lone surrogate or a NUL is InvalidParameter.Tag
    (400), not a database error."""
    for raw in ('[{"Key": "\\ud800", "Value": "v"}]', '[{"Key": "a\\u0000b", "Value": "v"}]'):
        core_fails(core.call_error("ListTagResources", {"ResourceType": "command", "Tag": raw}),
                   "InvalidParameter.Tag", 400)
