"""TagResources, UntagResources and ListTagResources on both engines: merging, limits, isolation, paging."""

from __future__ import annotations

import pytest

from cloudassist.domain.commands import CommandType
from cloudassist.domain.files import FileSpec
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.paging import parse_page
from cloudassist.domain.tags import KeyPattern, Tag, TagQuery, check_resource_type
from cloudassist.errors import ApiError
from cloudassist.services.activations import ActivationService, ActivationSpec
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.files import FileService
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.services.tags import TagService
from cloudassist.store.commands import CommandFilter
from cloudassist.testing import register_instance

REGION = "cn-hangzhou"
SPEC = CommandSpec(name="tagged", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo hi",
                   working_dir="", timeout=60, enable_parameter=False, launcher="", resource_group_id="")
RUN_SPEC = SPEC
OPTIONS = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                     username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                     launcher=None, container_id="", container_name="", resource_group_id="")


async def _scope(ctx: Context, account: str = "default", region: str = REGION) -> Scope:
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure(account, ctx.clock.now()), region)


async def _command(ctx: Context, scope: Scope, tags: tuple[Tag, ...] = ()) -> str:
    return await CommandService(ctx).create_command(scope, SPEC, tags)


async def _listed(ctx: Context, scope: Scope, resource_type: str, ids: tuple[str, ...] = (),
                  queries: tuple[TagQuery, ...] = (),
                  patterns: tuple[KeyPattern, ...] = ()) -> list[tuple[str, str, str]]:
    """Every (ResourceId, TagKey, TagValue) ListTagResources answers, following NextToken pages of 2."""
    found: list[tuple[str, str, str]] = []
    after = None
    while True:
        page = await TagService(ctx).list_tag_resources(scope, resource_type, ids, queries, patterns, after=after,
                                                         size=2)
        found += [(rid, t.key, t.value) for rid, t in page.rows]
        if page.next_after is None:
            return found
        after = page.next_after


def _code(exc: pytest.ExceptionInfo[ApiError]) -> tuple[str, int]:
    return exc.value.code, exc.value.http_status


async def test_tag_resources_adds_and_overwrites_and_list_pages_through_them(ctx: Context) -> None:
    """Tags merge into what a command has (CreateCommand's Tag.N included); the same key takes the new value;
    ListTagResources lists one row per tag, in (ResourceId, TagKey) order, across NextToken pages."""
    scope = await _scope(ctx)
    first = await _command(ctx, scope, (Tag("team", "ops"),))
    second = await _command(ctx, scope)
    service = TagService(ctx)
    await service.tag_resources(scope, "command", [first, second], [Tag("env", "prod"), Tag("team", "web")])
    await service.tag_resources(scope, "command", [second], [Tag("env", "dev"), Tag("tier", "")])
    a, b = sorted([first, second])
    expected = sorted([(first, "env", "prod"), (first, "team", "web"), (second, "env", "dev"),
                       (second, "team", "web"), (second, "tier", "")])
    assert await _listed(ctx, scope, "command", (a, b)) == expected
    assert await _listed(ctx, scope, "command", (first,)) == [(first, "env", "prod"), (first, "team", "web")]
    # the tags are the command's: DescribeCommands filters on them and shows them
    found = await CommandService(ctx).describe_commands(
        CommandFilter(scope.account_id, REGION, tags=(Tag("env", "dev"),)), parse_page(1, 10, None, None,
                                                                                         paging_status=403))
    assert [(c.command_id, tags) for c, tags in found.commands] == [
        (second, (Tag("env", "dev"), Tag("team", "web"), Tag("tier", "")))]


async def test_list_by_tag_key_value_and_key_patterns(ctx: Context) -> None:
    """Tag.N with a value matches exactly; with a key alone, any value; TagFilter keys match exactly, by
    prefix (`env*`) or infix (`*nv*`). The rows are every tag of the matching resources."""
    scope = await _scope(ctx)
    prod, dev, bare = [await _command(ctx, scope) for _ in range(3)]
    service = TagService(ctx)
    await service.tag_resources(scope, "command", [prod], [Tag("env", "prod"), Tag("owner", "ann")])
    await service.tag_resources(scope, "command", [dev], [Tag("environment", "dev")])
    await service.tag_resources(scope, "command", [bare], [Tag("owner", "bob")])
    assert await _listed(ctx, scope, "command", queries=(TagQuery("env", "prod"),)) == [
        (prod, "env", "prod"), (prod, "owner", "ann")]
    assert await _listed(ctx, scope, "command", queries=(TagQuery("env", "dev"),)) == []
    assert {r[0] for r in await _listed(ctx, scope, "command", queries=(TagQuery("owner", None),))} == {prod, bare}
    assert {r[0] for r in await _listed(ctx, scope, "command", patterns=(KeyPattern("env*"),))} == {prod, dev}
    assert {r[0] for r in await _listed(ctx, scope, "command", patterns=(KeyPattern("*viron*"),))} == {dev}
    assert {r[0] for r in await _listed(ctx, scope, "command", patterns=(KeyPattern("env"),))} == {prod}
    # a `%` or `_` in a pattern is a character, not a wildcard
    assert await _listed(ctx, scope, "command", patterns=(KeyPattern("e_v*"),)) == []


async def test_at_most_twenty_tags_per_resource_all_or_nothing(ctx: Context) -> None:
    """A resource may carry 20 tags; a call that would pass 20 on any resource changes none
    (OperationDenied.QuotaExceed); overwriting keys does not count twice."""
    scope = await _scope(ctx)
    full, other = await _command(ctx, scope), await _command(ctx, scope)
    service = TagService(ctx)
    await service.tag_resources(scope, "command", [full], [Tag(f"k{i}", "v") for i in range(19)])
    with pytest.raises(ApiError) as exc:
        await service.tag_resources(scope, "command", [other, full], [Tag("x", "1"), Tag("y", "2")])
    assert _code(exc) == ("OperationDenied.QuotaExceed", 400)
    assert await _listed(ctx, scope, "command", (other,)) == []
    await service.tag_resources(scope, "command", [full], [Tag("k0", "new"), Tag("x", "1")])
    rows = await _listed(ctx, scope, "command", (full,))
    assert len(rows) == 20
    assert (full, "k0", "new") in rows


async def test_unknown_foreign_and_unkept_resources_are_not_found(ctx: Context) -> None:
    """Another account's command, a command of another region, a command RunCommand did not keep and an id that
    does not exist are all InvalidResourceId.NotFound (404), and the call tags nothing."""
    scope = await _scope(ctx)
    mine = await _command(ctx, scope)
    theirs = await _command(ctx, await _scope(ctx, "other"))
    elsewhere = await _command(ctx, await _scope(ctx, region="cn-beijing"))
    instance = await register_instance(ctx)
    started = await InvocationService(ctx).run_command(scope, RUN_SPEC, OPTIONS, Targets([instance]), (),
                                                       keep_command=False, idempotency=None)
    service = TagService(ctx)
    for foreign in (theirs, elsewhere, started.command_id, "c-doesnotexist"):
        with pytest.raises(ApiError) as exc:
            await service.tag_resources(scope, "command", [mine, foreign], [Tag("a", "b")])
        assert _code(exc) == ("InvalidResourceId.NotFound", 404)
        with pytest.raises(ApiError) as exc:
            await service.untag_resources(scope, "command", [foreign], ["a"], every=False)
        assert _code(exc) == ("InvalidResourceId.NotFound", 404)
    assert await _listed(ctx, scope, "command", (mine, theirs, elsewhere)) == []
    # the other account's own tags are invisible to this one even by id
    await service.tag_resources(await _scope(ctx, "other"), "command", [theirs], [Tag("a", "b")])
    assert await _listed(ctx, scope, "command", (theirs,)) == []
    assert await _listed(ctx, scope, "command", queries=(TagQuery("a", None),)) == []


async def test_untag_by_keys_and_all(ctx: Context) -> None:
    """UntagResources removes the named keys (a key a resource lacks is skipped); All=true without keys removes
    every tag; neither removes nothing."""
    scope = await _scope(ctx)
    one, two = await _command(ctx, scope), await _command(ctx, scope)
    service = TagService(ctx)
    await service.tag_resources(scope, "command", [one, two], [Tag("a", "1"), Tag("b", "2"), Tag("c", "3")])
    await service.untag_resources(scope, "command", [one, two], ["a", "missing"], every=False)
    assert await _listed(ctx, scope, "command", (one,)) == [(one, "b", "2"), (one, "c", "3")]
    await service.untag_resources(scope, "command", [one], [], every=False)
    assert len(await _listed(ctx, scope, "command", (one,))) == 2
    await service.untag_resources(scope, "command", [one], [], every=True)
    assert await _listed(ctx, scope, "command", (one,)) == []
    assert await _listed(ctx, scope, "command", (two,)) == [(two, "b", "2"), (two, "c", "3")]


async def test_every_cloud_assistant_resource_type_can_be_tagged(ctx: Context) -> None:
    """invocation (command and SendFile tasks), activation and managedinstance resources take tags like commands,
    each listed under its type; an id of one type is not found under another."""
    scope = await _scope(ctx)
    instance = await register_instance(ctx)
    started = await InvocationService(ctx).run_command(scope, RUN_SPEC, OPTIONS, Targets([instance]), (),
                                                       keep_command=True, idempotency=None)
    activation = (await ActivationService(ctx).create_activation(scope, ActivationSpec())).activation.activation_id
    file_task = await FileService(ctx).send_file(scope, FileSpec(name="f", target_dir="/tmp", content=b"x"),
                                                 [instance], (), idempotency=None)
    service = TagService(ctx)
    for kind, rid in (("invocation", started.invoke_id), ("invocation", file_task), ("activation", activation),
                      ("managedinstance", instance)):
        await service.tag_resources(scope, kind, [rid], [Tag("kind", kind)])
        assert await _listed(ctx, scope, kind, (rid,)) == [(rid, "kind", kind)]
        with pytest.raises(ApiError) as exc:
            await service.tag_resources(scope, "command", [rid], [Tag("kind", kind)])
        assert _code(exc) == ("InvalidResourceId.NotFound", 404)


def test_resource_types() -> None:
    """The four Cloud Assistant types are accepted in any case; ECS's other types and nonsense are
    InvalidResourceType.NotFound (404); none is MissingParameter.ResourceType."""
    assert check_resource_type("Command") == "command"
    assert check_resource_type("MANAGEDINSTANCE") == "managedinstance"
    for wrong in ("instance", "disk", "commands", "x"):
        with pytest.raises(ApiError) as exc:
            check_resource_type(wrong)
        assert _code(exc) == ("InvalidResourceType.NotFound", 404)
    with pytest.raises(ApiError) as exc:
        check_resource_type(None)
    assert exc.value.code == "MissingParameter.ResourceType"
