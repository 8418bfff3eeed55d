"""Quotas per region on both engines: kept commands, tasks per UTC day; and CreateCommand's ClientToken."""

from __future__ import annotations

import dataclasses

import pytest

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.services.quotas import utc_day
from cloudassist.store.commands import CommandFilter
from cloudassist.testing import FixedClock, register_instance

SPEC = CommandSpec(name="q", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo hi", working_dir="",
                   timeout=60, enable_parameter=False, launcher="", resource_group_id="")
OPTIONS = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                     username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                     launcher=None, container_id="", container_name="", resource_group_id="")


def _with(ctx: Context, **settings: int) -> Context:
    return dataclasses.replace(ctx, settings=ctx.settings.replace(**settings))


async def _scope(ctx: Context, account: str = "default", region: str = "cn-hangzhou") -> Scope:
    async with ctx.store.write() as tx:
        return Scope(await tx.accounts.ensure(account, ctx.clock.now()), region)


async def _fails(code: str, status: int, call: object) -> ApiError:
    with pytest.raises(ApiError) as exc:
        await call  # type: ignore[misc]
    assert (exc.value.code, exc.value.http_status) == (code, status)
    return exc.value


async def _kept(ctx: Context, scope: Scope) -> int:
    async with ctx.store.read() as tx:
        return await tx.commands.count(CommandFilter(scope.account_id, scope.region_id))


async def test_kept_commands_are_limited_per_region(ctx: Context) -> None:
    """With command_quota=2: a third CreateCommand, or RunCommand with KeepCommand=true, is CmdCount.ExceedQuota
    (403); RunCommand with KeepCommand=false is not counted; DeleteCommand frees a place; another region and
    another account have places of their own."""
    ctx = _with(ctx, command_quota=2)
    scope = await _scope(ctx)
    commands = CommandService(ctx)
    first = await commands.create_command(scope, SPEC, ())
    await commands.create_command(scope, SPEC, ())
    await _fails("CmdCount.ExceedQuota", 403, commands.create_command(scope, SPEC, ()))
    instance = await register_instance(ctx)
    service = InvocationService(ctx)
    await _fails("CmdCount.ExceedQuota", 403, service.run_command(
        scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=True, idempotency=None))
    await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False, idempotency=None)
    assert await _kept(ctx, scope) == 2
    await commands.create_command(await _scope(ctx, region="cn-beijing"), SPEC, ())
    await commands.create_command(await _scope(ctx, account="other"), SPEC, ())
    await commands.delete_command(scope, first)
    await commands.create_command(scope, SPEC, ())
    assert await _kept(ctx, scope) == 2


async def test_tasks_are_limited_per_region_per_utc_day(ctx: Context, clock: FixedClock) -> None:
    """With invocation_quota_daily=2: the third RunCommand/InvokeCommand of the UTC day is Invocation.ExceedQuota
    (403, the documented message); a call that fails for another reason and a DryRun use nothing up; the next
    UTC day (00:00Z) starts afresh; other regions and accounts count apart."""
    ctx = _with(ctx, invocation_quota_daily=2)
    scope = await _scope(ctx)
    instance = await register_instance(ctx)
    service = InvocationService(ctx)

    async def run(target: str = instance, mode: RepeatMode = RepeatMode.ONCE, on: Scope = scope) -> object:
        options = dataclasses.replace(OPTIONS, repeat_mode=mode)
        return await service.run_command(on, SPEC, options, Targets([target]), (), keep_command=False,
                                         idempotency=None)

    await _fails("InvalidInstance.NotFound", 404, run("mi-missing"))
    await run(mode=RepeatMode.DRY_RUN)
    await run()
    command_id = await CommandService(ctx).create_command(scope, SPEC, ())
    await service.invoke_command(scope, command_id, OPTIONS, Targets([instance]), (), idempotency=None)
    error = await _fails("Invocation.ExceedQuota", 403, run())
    # the documented text, then the rule and where it was reached
    assert error.message == ("The invocation quota in the current region has been reached for today. The quota is 2 "
                             "tasks per region per UTC day (CLOUDASSIST_INVOCATION_QUOTA_DAILY); cn-hangzhou has used "
                             f"it on {ctx.clock.now():%Y-%m-%d}.")
    await _fails("Invocation.ExceedQuota", 403, service.invoke_command(
        scope, command_id, OPTIONS, Targets([instance]), (), idempotency=None))
    await _fails("Invocation.ExceedQuota", 403, run(mode=RepeatMode.DRY_RUN))
    # other accounts and regions have quotas of their own (their instances live there)
    other_region = Scope(scope.account_id, "cn-beijing")
    await run(await register_instance(ctx, region_id="cn-beijing"), on=other_region)
    other_account = await _scope(ctx, "other")
    await run(await register_instance(ctx, account="other"), on=other_account)
    # the day is a UTC day: 23:59:59Z is still today, 00:00:00Z tomorrow
    assert clock.now().hour == 12
    clock.advance(hours=11, minutes=59, seconds=59)
    assert utc_day(clock.now()) == "2026-11-26"
    await _fails("Invocation.ExceedQuota", 403, run())
    clock.advance(seconds=1)
    assert utc_day(clock.now()) == "2026-11-27"
    await run()
    await run()
    await _fails("Invocation.ExceedQuota", 403, run())


async def test_a_zero_quota_means_no_limit(ctx: Context) -> None:
    """invocation_quota_daily=0 and command_quota=0 turn the limits off."""
    ctx = _with(ctx, invocation_quota_daily=0, command_quota=0)
    scope = await _scope(ctx)
    instance = await register_instance(ctx)
    for _ in range(3):
        await CommandService(ctx).create_command(scope, SPEC, ())
        await InvocationService(ctx).run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=True,
                                                 idempotency=None)
    assert await _kept(ctx, scope) == 6


async def test_create_command_client_token(ctx: Context) -> None:
    """CreateCommand with a ClientToken: a retry with the same parameters gets the same CommandId and creates
    nothing; other parameters under that token are IdempotentParameterMismatch (403); another token, or another
    account with the same token, creates a new command."""
    scope = await _scope(ctx)
    params = {"RegionId": "cn-hangzhou", "Name": "q", "Type": "RunShellScript", "CommandContent": "ZWNobyBoaQ=="}
    commands = CommandService(ctx)

    def token(value: str, **changes: str) -> Idempotency | None:
        return Idempotency.of("CreateCommand", value, {**params, **changes, "ClientToken": value})

    first = await commands.create_command(scope, SPEC, (), idempotency=token("t-1"))
    assert await commands.create_command(scope, SPEC, (), idempotency=token("t-1")) == first
    assert await _kept(ctx, scope) == 1
    await _fails("IdempotentParameterMismatch", 403,
                 commands.create_command(scope, SPEC, (), idempotency=token("t-1", Name="other")))
    assert await commands.create_command(scope, SPEC, (), idempotency=token("t-2")) != first
    assert await commands.create_command(await _scope(ctx, "other"), SPEC, (), idempotency=token("t-1")) != first
    assert await _kept(ctx, scope) == 2


async def _command_row(ctx: Context, scope: Scope, command_id: str) -> bool:
    async with ctx.store.read() as tx:
        return await tx.commands.get(scope.account_id, scope.region_id, command_id, hidden=True) is not None


async def test_a_command_run_command_did_not_keep_is_deleted_when_its_task_ends(ctx: Context,
                                                                                clock: FixedClock) -> None:
    """KeepCommand=false: the command exists (hidden) while its task runs and is deleted once the task ends
    (reported Success, or stopped); the task's records still show its CommandId, name and content.
    KeepCommand=true keeps it after the end."""
    from cloudassist.services.delivery import DeliveryService, Report

    scope = await _scope(ctx)
    instance = await register_instance(ctx)
    service = InvocationService(ctx)
    unkept = await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False,
                                       idempotency=None)
    kept = await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=True,
                                     idempotency=None)
    stopped = await service.run_command(scope, SPEC, OPTIONS, Targets([instance]), (), keep_command=False,
                                        idempotency=None)
    assert await _command_row(ctx, scope, unkept.command_id)
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    for started in (unkept, kept):
        await delivery.report(instance, Report("running", started.invoke_id, start=clock.now()))
        assert await _command_row(ctx, scope, started.command_id)
        await delivery.report(instance, Report("finish", started.invoke_id, end=clock.now(), exit_code=0,
                                               output=b"hi\n", offset=0))
    assert not await _command_row(ctx, scope, unkept.command_id)
    assert await _command_row(ctx, scope, kept.command_id)
    await service.stop_invocation(scope, stopped.invoke_id, [])
    async with ctx.store.read() as tx:
        status = (await tx.results.current(stopped.invoke_id, instance))
    assert status is not None
    assert status.status.value == "Stopping"  # delivered already: Stopping until the agent confirms
    assert await _command_row(ctx, scope, stopped.command_id)
    await delivery.report(instance, Report("finish", stopped.invoke_id, end=clock.now(), exit_code=0, output=b"",
                                           offset=0))
    assert not await _command_row(ctx, scope, stopped.command_id)
    await _fails("InvalidCmdId.NotFound", 404, service.invoke_command(
        scope, unkept.command_id, OPTIONS, Targets([instance]), (), idempotency=None))
    async with ctx.store.read() as tx:
        task = await tx.invocations.get(scope.account_id, scope.region_id, unkept.invoke_id)
    assert task is not None
    assert (task.command_id, task.command_name, task.content) == (unkept.command_id, SPEC.name, SPEC.content)
