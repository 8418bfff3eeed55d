"""ModifyInvocationAttribute: what it changes, how the change reaches agents, and every documented refusal."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

import pytest

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import Invocation, InvocationResult, RepeatMode, TerminationMode
from cloudassist.domain.statuses import InvocationStatus
from cloudassist.errors import ApiError
from cloudassist.services.commands import CommandService, CommandSpec
from cloudassist.services.context import Context
from cloudassist.services.delivery import DeliveryService, Report
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.invocations import InvocationService, Modification, RunOptions, Targets
from cloudassist.testing import FixedClock, default_scope, register_instance

S = InvocationStatus
SPEC = CommandSpec(name="n", description="d", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo {{greeting}}",
                   working_dir="/tmp", timeout=30, enable_parameter=True, launcher="", resource_group_id="")
ONCE = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={"greeting": "hi"}, timeout=None,
                  working_dir=None, username="", windows_password_name="",
                  termination_mode=TerminationMode.PROCESS_TREE, launcher=None, container_id="", container_name="",
                  resource_group_id="")
PERIOD = dataclasses.replace(ONCE, repeat_mode=RepeatMode.PERIOD, frequency="rate(5m)")


class Doorbell:
    """A notifier that remembers which instances were kicked."""

    def __init__(self) -> None:
        self.kicked: list[str] = []

    def kick(self, instance_ids: Iterable[str]) -> None:
        self.kicked += list(instance_ids)


@pytest.fixture
def bell() -> Doorbell:
    return Doorbell()


@pytest.fixture
def kctx(ctx: Context, bell: Doorbell) -> Context:
    return dataclasses.replace(ctx, notify=bell)




async def _run(ctx: Context, options: RunOptions, instances: list[str], *, keep: bool = False) -> str:
    started = await InvocationService(ctx).run_command(await default_scope(ctx), SPEC, options, Targets(instances), (),
                                                       keep_command=keep, idempotency=None)
    return started.invoke_id


async def _task(ctx: Context, invoke_id: str) -> tuple[Invocation, list[InvocationResult]]:
    async with ctx.store.read() as tx:
        inv = await tx.invocations.by_id(invoke_id)
        results = (await tx.results.of_invocations([invoke_id]))[invoke_id]
    assert inv is not None
    return inv, results


async def _modify(ctx: Context, invoke_id: str, token: str | None = None, **change: object) -> str:
    idem = Idempotency.of("ModifyInvocationAttribute", token, {"InvokeId": invoke_id, **change})
    return await InvocationService(ctx).modify_invocation_attribute(
        await default_scope(ctx), invoke_id, Modification(**change), idempotency=idem)  # type: ignore[arg-type]


async def _code(ctx: Context, invoke_id: str, **change: object) -> tuple[int, str]:
    with pytest.raises(ApiError) as caught:
        await _modify(ctx, invoke_id, **change)
    return caught.value.http_status, caught.value.code


async def test_a_content_change_makes_a_new_command_and_a_new_version_listed_on_the_next_fetch(
        kctx: Context, bell: Doorbell) -> None:
    """New content: a new (hidden, like the task's) command, the task's content rendered with its parameters,
    invoke version 2 on every record, a kick, and the next ordinary fetch lists the task again — once."""
    instance = await register_instance(kctx)
    invoke_id = await _run(kctx, PERIOD, [instance])
    delivery = DeliveryService(kctx)
    first = await delivery.fetch(instance, startup=True)
    assert [o.result.invoke_version for o in first.run] == [1]
    assert (await delivery.fetch(instance)).run == []  # the agent keeps the schedule itself
    old_command = (await _task(kctx, invoke_id))[0].command_id
    bell.kicked.clear()

    command_id = await _modify(kctx, invoke_id, content=b"printf {{greeting}}")
    inv, results = await _task(kctx, invoke_id)
    assert command_id != old_command
    assert inv.command_id == command_id
    assert inv.content == b"printf hi"
    assert inv.parameters == {"greeting": "hi"}
    assert [(r.invoke_version, r.command_id, r.status) for r in results] == [(2, command_id, S.SCHEDULED)]
    assert bell.kicked == [instance]
    async with kctx.store.read() as tx:
        command = await tx.commands.get(inv.account_id, inv.region_id, command_id, hidden=True)
        assert await tx.commands.get(inv.account_id, inv.region_id, command_id) is None  # hidden: not kept
        assert await tx.commands.get(inv.account_id, inv.region_id, old_command, hidden=True) is None  # replaced
    assert command is not None
    assert command.content == b"printf {{greeting}}"
    assert not command.kept
    assert await delivery.waiting() == {instance}  # a lost kick is sent again by the sweeper and heart-beats
    again = await delivery.fetch(instance)
    assert [(o.invocation.invoke_id, o.result.invoke_version, o.invocation.content) for o in again.run] == [
        (invoke_id, 2, b"printf hi")]
    assert (await delivery.fetch(instance)).run == []
    assert await delivery.waiting() == set()


async def test_the_new_command_is_kept_when_the_tasks_was(ctx: Context) -> None:
    """RunCommand with KeepCommand=true (or InvokeCommand): the command made by the change is kept too."""
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance], keep=True)
    command_id = await _modify(ctx, invoke_id, content=b"echo new")
    async with ctx.store.read() as tx:
        command = await tx.commands.get((await default_scope(ctx)).account_id, "cn-hangzhou", command_id)
    assert command is not None
    assert command.kept


async def test_same_content_parameters_and_frequency_change_without_a_new_command(ctx: Context) -> None:
    """Parameters re-render the command's content; Frequency replaces the schedule; the CommandId stays."""
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance])
    before = (await _task(ctx, invoke_id))[0]
    assert await _modify(ctx, invoke_id, content=b"echo {{greeting}}", parameters={"greeting": "bye"},
                         frequency="rate(10m)") == before.command_id
    inv, results = await _task(ctx, invoke_id)
    assert (inv.content, inv.parameters, inv.frequency) == (b"echo bye", {"greeting": "bye"}, "rate(10m)")
    assert [r.invoke_version for r in results] == [2]


async def test_added_instances_get_new_records_of_the_new_version(kctx: Context, bell: Doorbell) -> None:
    """InstanceId.N adds instances (ones already in the task are left alone); they get Pending records."""
    first, second = await register_instance(kctx), await register_instance(kctx)
    invoke_id = await _run(kctx, PERIOD, [first])
    await DeliveryService(kctx).fetch(first)
    bell.kicked.clear()
    await _modify(kctx, invoke_id, instance_ids=[first, second])
    _, results = await _task(kctx, invoke_id)
    assert sorted((r.instance_id, r.status, r.invoke_version) for r in results) == sorted(
        [(first, S.SCHEDULED, 2), (second, S.PENDING, 2)])
    assert sorted(bell.kicked) == sorted([first, second])
    listed = await DeliveryService(kctx).fetch(second)
    assert [(o.invocation.invoke_id, o.result.invoke_version) for o in listed.run] == [(invoke_id, 2)]


async def test_a_reboot_task_can_be_modified_and_is_fetched_at_the_next_boot(ctx: Context) -> None:
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, dataclasses.replace(ONCE, repeat_mode=RepeatMode.EVERY_REBOOT), [instance])
    await _modify(ctx, invoke_id, parameters={"greeting": "boot"}, frequency="rate(10m)")
    inv, results = await _task(ctx, invoke_id)
    assert (inv.content, inv.frequency, results[0].invoke_version) == (b"echo boot", "", 2)
    delivery = DeliveryService(ctx)
    assert await delivery.waiting(instance) == set()  # nothing to kick for: it waits for a boot
    assert (await delivery.fetch(instance)).run == []
    booted = await delivery.fetch(instance, startup=True, cold_start=True)
    assert [(o.result.invoke_version, o.invocation.content) for o in booted.run] == [(2, b"echo boot")]


async def test_a_client_token_makes_the_change_once(ctx: Context) -> None:
    """The same token and parameters get the first answer without a second change; other parameters under the
    token are IdempotentParameterMismatch."""
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance])
    first = await _modify(ctx, invoke_id, "tok-1", content=b"echo once")
    assert await _modify(ctx, invoke_id, "tok-1", content=b"echo once") == first
    assert [r.invoke_version for r in (await _task(ctx, invoke_id))[1]] == [2]
    with pytest.raises(ApiError) as caught:
        await _modify(ctx, invoke_id, "tok-1", content=b"echo twice")
    assert (caught.value.http_status, caught.value.code) == (403, "IdempotentParameterMismatch")


async def test_only_recurring_unfinished_tasks_can_be_modified(ctx: Context, clock: FixedClock) -> None:
    instance = await register_instance(ctx)
    assert await _code(ctx, "t-nonexistent", frequency="rate(10m)") == (404, "InvalidInvokeId.NotFound")
    once = await _run(ctx, ONCE, [instance])
    assert await _code(ctx, once, frequency="rate(10m)") == (403, "InvalidOperation.RepeatModeUnsupported")
    stopped = await _run(ctx, PERIOD, [instance])
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), stopped, [])
    assert await _code(ctx, stopped, frequency="rate(10m)") == (403, "InvalidOperation.InvokeAlreadyFinished")
    ended = await _run(ctx, dataclasses.replace(PERIOD, frequency="at(2026-11-26 13:00:00)"), [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    await delivery.report(instance, Report("stopped", ended, start=clock.now(), end=clock.now(), result="completed"))
    assert await _code(ctx, ended, frequency="rate(10m)") == (403, "InvalidOperation.InvokeAlreadyFinished")
    stopping = await _run(ctx, PERIOD, [instance])
    await delivery.fetch(instance)
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), stopping, [])  # Stopping: still modifiable
    assert await _modify(ctx, stopping, frequency="rate(10m)")


async def test_each_bad_input_gets_modify_invocation_attributes_own_code(ctx: Context) -> None:
    """The shared checks answer with this action's codes (reference §7)."""
    instance = await register_instance(ctx)
    windows = await register_instance(ctx, os_type="windows")
    invoke_id = await _run(ctx, PERIOD, [instance])
    cases: list[tuple[dict[str, object], tuple[int, str]]] = [
        ({"frequency": "rate(1s)"}, (400, "InvalidParameter.Frequency")),
        ({"frequency": "every tuesday"}, (400, "InvalidParameter.Frequency")),
        ({"frequency": "x" * 300}, (400, "InvalidParameter.Frequency")),
        ({"content": b"x" * 30_000}, (403, "InvalidCommandContent.LengthLimitExceeded")),
        ({"parameters": {"greeting": "x" * 30_000}}, (403, "InvalidCommandContent.LengthLimitExceeded")),
        ({"parameters": {"nope": "x"}}, (400, "InvalidParameters.KeyNotMatch")),
        ({"parameters": {"": "x"}}, (400, "InvalidParameters.KeyEmpty")),
        ({"parameters": {"k" * 65: "x"}}, (403, "InvalidParameters.KeyLengthLimitExceeded")),
        ({"parameters": {f"k{i}": "x" for i in range(11)}}, (403, "InvalidParameters.CountLimitExceeded")),
        ({"parameters": {"greeting": 1}}, (403, "InvalidParameters.ValueTypeUnsupported")),
        ({"parameters": {"greeting": "a", "GREETING": "b"}}, (400, "InvalidParameters.KeyDuplicate")),
        ({"content": b"echo {{bad name}}", "enable_parameter": True}, (400, "InvalidParameters.KeyMalformed")),
        ({"content": b"echo {{greeting}}!", "enable_parameter": False, "parameters": {"greeting": "x"}},
         (400, "InvalidParameters.KeyNotMatch")),
        ({"instance_ids": ["mi-doesnotexist"]}, (404, "InvalidInstanceId.NotFound")),
        ({"instance_ids": [windows]}, (403, "InvalidInstanceId.OSTypeUnsupported")),
    ]
    for change, expected in cases:
        assert await _code(ctx, invoke_id, **change) == expected, change
    inv, results = await _task(ctx, invoke_id)
    assert (inv.frequency, [r.invoke_version for r in results]) == ("rate(5m)", [1])  # nothing changed


async def test_enable_parameter_false_without_new_content_leaves_parameters_on(ctx: Context) -> None:
    """A.10: "when you do not modify the custom parameters, do not set EnableParameter or set it to false"."""
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance])
    await _modify(ctx, invoke_id, enable_parameter=False, parameters={"greeting": "still"})
    inv, _ = await _task(ctx, invoke_id)
    assert (inv.enable_parameter, inv.content) == (True, b"echo still")


async def test_new_content_with_enable_parameter_false_is_taken_literally(ctx: Context) -> None:
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance])
    await _modify(ctx, invoke_id, content=b"echo {{greeting}}!", enable_parameter=False)
    inv, _ = await _task(ctx, invoke_id)
    assert (inv.enable_parameter, inv.content, inv.parameters) == (False, b"echo {{greeting}}!", {})


async def test_a_task_holds_at_most_the_instance_limit(ctx: Context) -> None:
    small = dataclasses.replace(ctx, settings=ctx.settings.replace(max_instances_per_call=2))
    a, b, c = [await register_instance(small) for _ in range(3)]
    invoke_id = await _run(small, PERIOD, [a, b])
    assert await _code(small, invoke_id, instance_ids=[c]) == (403, "InvalidInstanceId.CountLimitExceeded")
    assert await _code(small, invoke_id, instance_ids=[a, b, c]) == (403, "InvalidInstanceId.CountLimitExceeded")
    await _modify(small, invoke_id, instance_ids=[a, b])  # already there: nothing added


async def test_a_command_quota_reached_is_command_limit_exceeded(ctx: Context) -> None:
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance], keep=True)
    full = dataclasses.replace(ctx, settings=ctx.settings.replace(command_quota=1))
    assert await _code(full, invoke_id, content=b"echo new") == (403, "CommandLimitExceeded")


async def test_parameters_of_a_task_whose_command_was_deleted_cannot_change(ctx: Context) -> None:
    instance = await register_instance(ctx)
    invoke_id = await _run(ctx, PERIOD, [instance], keep=True)
    inv, _ = await _task(ctx, invoke_id)
    await CommandService(ctx).delete_command(await default_scope(ctx), inv.command_id)
    assert await _code(ctx, invoke_id, parameters={"greeting": "x"}) == (404, "InvalidCommandId.NotFound")
    assert await _modify(ctx, invoke_id, frequency="rate(10m)") == inv.command_id
