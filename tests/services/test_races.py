"""Read-then-write calls racing each other on one Store (its connection pool), on both engines.

On PostgreSQL (READ COMMITTED) each of these checked what it read and then wrote, so calls running at the same
time all passed the check; SQLite takes the write lock at BEGIN. Every test runs the racing calls through
asyncio.gather, in separate transactions, several rounds over, and checks the invariant afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable
from typing import Any

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.statuses import InvocationStatus
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.invocations import InvocationService, Modification, RunOptions, Targets
from cloudassist.services.tags import TagService
from cloudassist.store.commands import CommandFilter
from cloudassist.testing import default_scope, register_instance

S = InvocationStatus
SPEC = CommandSpec(
    name="race",
    description="",
    type=CommandType.RUN_SHELL_SCRIPT,
    content=b"echo hi",
    working_dir="",
    timeout=60,
    enable_parameter=False,
    launcher="",
    resource_group_id="",
)
PERIOD = RunOptions(
    repeat_mode=RepeatMode.PERIOD,
    frequency="rate(5m)",
    parameters={},
    timeout=None,
    working_dir=None,
    username="",
    windows_password_name="",
    termination_mode=TerminationMode.PROCESS_TREE,
    launcher=None,
    container_id="",
    container_name="",
    resource_group_id="",
)
ROUNDS = 4


def _with(ctx: Context, **settings: int) -> Context:
    return dataclasses.replace(ctx, settings=ctx.settings.replace(**settings))




async def _together(*calls: Awaitable[Any]) -> list[Any]:
    """Run the calls at the same time; their answers, or the exceptions they raised."""
    return list(await asyncio.gather(*calls, return_exceptions=True))


def _codes(outcomes: list[Any]) -> list[str | None]:
    """Each outcome's API error code (None for a success); anything else (a 500) fails the test."""
    codes: list[str | None] = []
    for outcome in outcomes:
        if isinstance(outcome, BaseException) and not isinstance(outcome, ApiError):
            raise AssertionError(f"a racing call failed with {outcome!r}") from outcome
        codes.append(outcome.code if isinstance(outcome, ApiError) else None)
    return codes


async def _tags(ctx: Context, command_id: str) -> dict[str, str]:
    async with ctx.store.read() as tx:
        return {t.key: t.value for t in (await tx.tags.of("command", [command_id]))[command_id]}


async def test_tagging_one_resource_with_the_same_new_key_at_once_never_fails(ctx: Context) -> None:
    """Several TagResources setting the same new key on one command at the same time all succeed (none is a
    500 from the primary key), and the key ends with one of their values."""
    scope = await default_scope(ctx)
    tags = TagService(ctx)
    for round_ in range(ROUNDS):
        command_id = await CommandService(ctx).create_command(scope, SPEC, ())
        values = [f"v{round_}-{i}" for i in range(6)]
        outcomes = await _together(
            *(tags.tag_resources(scope, "command", [command_id], [Tag("env", v)]) for v in values)
        )
        assert _codes(outcomes) == [None] * len(values)
        found = await _tags(ctx, command_id)
        assert list(found) == ["env"]
        assert found["env"] in values


async def test_tagging_one_resource_at_once_never_passes_twenty_tags(ctx: Context) -> None:
    """A command with 15 tags, and several TagResources adding 3 new keys each at the same time: one gets in,
    the others are OperationDenied.QuotaExceed; the command never holds more than 20 tags."""
    scope = await default_scope(ctx)
    tags = TagService(ctx)
    for _ in range(ROUNDS):
        command_id = await CommandService(ctx).create_command(scope, SPEC, [Tag(f"k{i:02}", "x") for i in range(15)])
        outcomes = await _together(
            *(
                tags.tag_resources(scope, "command", [command_id], [Tag(f"n{c}-{i}", "y") for i in range(3)])
                for c in range(5)
            )
        )
        codes = _codes(outcomes)
        assert sorted(codes, key=str) == sorted([None] + ["OperationDenied.QuotaExceed"] * 4, key=str)
        assert len(await _tags(ctx, command_id)) == 18


async def test_creating_commands_at_once_holds_to_the_command_quota(ctx: Context) -> None:
    """With command_quota=3, eight CreateCommand at the same time: three are kept, five are CmdCount.ExceedQuota."""
    ctx = _with(ctx, command_quota=3)
    scope = await default_scope(ctx)
    commands = CommandService(ctx)
    outcomes = await _together(*(commands.create_command(scope, SPEC, ()) for _ in range(8)))
    assert sorted(_codes(outcomes), key=str) == sorted([None] * 3 + ["CmdCount.ExceedQuota"] * 5, key=str)
    async with ctx.store.read() as tx:
        assert await tx.commands.count(CommandFilter(scope.account_id, scope.region_id)) == 3


async def _records(ctx: Context, invoke_id: str) -> list[tuple[str, S]]:
    async with ctx.store.read() as tx:
        return sorted((r.instance_id, r.status) for r in (await tx.results.of_invocations([invoke_id]))[invoke_id])


async def _periodic(ctx: Context, scope: Scope, instance_id: str) -> str:
    started = await InvocationService(ctx).run_command(
        scope, SPEC, PERIOD, Targets([instance_id]), (), keep_command=False, idempotency=None
    )
    return started.invoke_id


async def test_adding_the_same_instance_at_once_gives_it_one_record(ctx: Context) -> None:
    """Several ModifyInvocationAttribute adding the same InstanceId to a task at the same time: all succeed, and
    the instance has one execution record in the task."""
    scope = await default_scope(ctx)
    first = await register_instance(ctx, name="first")
    added = await register_instance(ctx, name="added")
    service = InvocationService(ctx)
    for _ in range(ROUNDS):
        invoke_id = await _periodic(ctx, scope, first)
        outcomes = await _together(
            *(
                service.modify_invocation_attribute(
                    scope, invoke_id, Modification(instance_ids=[added]), idempotency=None
                )
                for _ in range(4)
            )
        )
        assert _codes(outcomes) == [None] * 4
        assert [i for i, _ in await _records(ctx, invoke_id)] == sorted([first, added])


async def test_adding_instances_at_once_holds_to_the_instance_limit(ctx: Context) -> None:
    """With max_instances_per_call=2 and a task on one instance, two ModifyInvocationAttribute each adding another
    instance at the same time: one is InvalidInstanceId.CountLimitExceeded, and the task has two records."""
    scope = await default_scope(ctx)
    first = await register_instance(ctx, name="first")
    others = [await register_instance(ctx, name=f"other-{i}") for i in range(2)]
    ctx = _with(ctx, max_instances_per_call=2)
    service = InvocationService(ctx)
    for _ in range(ROUNDS):
        invoke_id = await _periodic(ctx, scope, first)
        outcomes = await _together(
            *(
                service.modify_invocation_attribute(
                    scope, invoke_id, Modification(instance_ids=[other]), idempotency=None
                )
                for other in others
            )
        )
        assert sorted(_codes(outcomes), key=str) == sorted([None, "InvalidInstanceId.CountLimitExceeded"], key=str)
        assert len(await _records(ctx, invoke_id)) == 2


async def test_adding_an_instance_while_the_task_stops_leaves_nothing_pending(ctx: Context) -> None:
    """StopInvocation and ModifyInvocationAttribute adding an instance at the same time: either the instance is
    added and then cancelled with the rest, or the modify finds the task finished; no record is left Pending."""
    scope = await default_scope(ctx)
    first = await register_instance(ctx, name="first")
    added = await register_instance(ctx, name="added")
    service = InvocationService(ctx)
    for _ in range(ROUNDS * 2):
        invoke_id = await _periodic(ctx, scope, first)
        outcomes = await _together(
            service.modify_invocation_attribute(scope, invoke_id, Modification(instance_ids=[added]), idempotency=None),
            service.stop_invocation(scope, invoke_id, []),
        )
        assert _codes(outcomes)[0] in (None, "InvalidOperation.InvokeAlreadyFinished")
        assert _codes(outcomes)[1] is None
        records = await _records(ctx, invoke_id)
        assert all(status.terminal for _, status in records), records


async def test_stops_racing_agent_fetches_and_reports_never_deadlock(ctx: Context) -> None:
    """StopInvocation locks its task and then changes its records; an agent's fetch, a report and the sweeper
    change a record and then its task's roll-up. Each takes the task's lock first, so racing them never ends
    in a deadlock (a 500 on PostgreSQL), and every task ends Stopped or with its report applied."""
    from datetime import timedelta

    from cloudassist.services.delivery import DeliveryService, Report

    scope = await default_scope(ctx)
    instances = [await register_instance(ctx) for _ in range(3)]
    service, delivery = InvocationService(ctx), DeliveryService(ctx)
    once = dataclasses.replace(PERIOD, repeat_mode=RepeatMode.ONCE, frequency="")
    for _ in range(6):
        started = [
            await service.run_command(scope, SPEC, once, Targets(instances), (), keep_command=True, idempotency=None)
            for _ in range(2)
        ]
        now = ctx.clock.now()
        for instance in instances:
            await delivery.fetch(instance)
            for task in started:
                await delivery.report(instance, Report("running", task.invoke_id, start=now))
        calls: list[Awaitable[Any]] = [service.stop_invocation(scope, t.invoke_id, []) for t in started]
        calls += [
            delivery.report(i, Report("finish", t.invoke_id, start=now, end=now + timedelta(seconds=1), exit_code=0))
            for i in instances
            for t in started
        ]
        calls += [delivery.fetch(i) for i in instances]
        await asyncio.gather(*calls)
        async with ctx.store.read() as tx:
            for task in started:
                inv = await tx.invocations.get(scope.account_id, scope.region_id, task.invoke_id)
                assert inv is not None
                records = (await tx.results.of_invocations([task.invoke_id]))[task.invoke_id]
                assert all(r.status in (S.SUCCESS, S.STOPPING, S.TERMINATED) for r in records), records
