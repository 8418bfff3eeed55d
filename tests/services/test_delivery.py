"""Delivery deadlines and reports, with the clock in hand: nothing stays Pending or Running forever."""

from __future__ import annotations

from datetime import timedelta

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.statuses import ErrorCode, InvocationStatus
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context
from cloudassist.services.delivery import RELIST_SECONDS, DeliveryService, Report
from cloudassist.services.instances import InstanceService
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.testing import FixedClock, default_scope, register_instance

SPEC = CommandSpec(name="n", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"sleep 5", working_dir="",
                   timeout=30, enable_parameter=False, launcher="", resource_group_id="")
OPTIONS = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                     username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                     launcher=None, container_id="", container_name="", resource_group_id="")


async def _run(ctx: Context) -> tuple[str, str]:
    instance = await register_instance(ctx)
    started = await InvocationService(ctx).run_command(await default_scope(ctx), SPEC, OPTIONS,
                                                       Targets([instance]), (), keep_command=False, idempotency=None)
    return instance, started.invoke_id


async def _state(ctx: Context, invoke_id: str, instance: str) -> tuple[InvocationStatus, ErrorCode]:
    async with ctx.store.read() as tx:
        result = await tx.results.current(invoke_id, instance)
    assert result is not None
    return result.status, result.error_code


async def test_a_task_no_agent_fetches_ends_client_not_running_after_a_minute(ctx: Context,
                                                                               clock: FixedClock) -> None:
    """Without heart-beats, a task not fetched within the delivery window is Aborted/ClientNotRunning."""
    instance, invoke_id = await _run(ctx)
    clock.advance(seconds=59)
    assert await DeliveryService(ctx).sweep() == 0
    clock.advance(minutes=2)  # the registration heart-beat is now older than two minutes
    assert await DeliveryService(ctx).sweep() == 1
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.ABORTED, ErrorCode.CLIENT_NOT_RUNNING)


async def test_an_agent_that_beats_but_never_fetches_is_client_not_response(ctx: Context, clock: FixedClock) -> None:
    """Heart-beats without a fetch: the task ends Aborted/ClientNotResponse after the delivery window."""
    instance, invoke_id = await _run(ctx)
    clock.advance(seconds=61)
    await InstanceService(ctx).heartbeat(instance, clock.now())
    assert await DeliveryService(ctx).sweep() == 1
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.ABORTED, ErrorCode.CLIENT_NOT_RESPONSE)


async def test_a_fetched_task_its_agent_never_starts_ends_delivery_timeout(ctx: Context, clock: FixedClock) -> None:
    """Fetched but never started by an agent that went silent: Aborted/DeliveryTimeout."""
    instance, invoke_id = await _run(ctx)
    assert [o.result.invoke_id for o in (await DeliveryService(ctx).fetch(instance)).run] == [invoke_id]
    clock.advance(minutes=3)
    assert await DeliveryService(ctx).sweep() == 1
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.ABORTED, ErrorCode.DELIVERY_TIMEOUT)


async def test_a_run_whose_agent_vanishes_ends_after_timeout_and_grace(ctx: Context, clock: FixedClock) -> None:
    """Running, then silence: past Timeout + grace (not a moment before) and with no heart-beat for two
    minutes, the run ends Error/ExecutionInterrupted."""
    instance, invoke_id = await _run(ctx)
    await DeliveryService(ctx).fetch(instance)
    await DeliveryService(ctx).report(instance, Report("running", invoke_id, start=clock.now()))
    clock.advance(seconds=30 + 60 - 1)
    assert await DeliveryService(ctx).sweep() == 0
    clock.advance(seconds=32)  # the last heart-beat is now over two minutes old
    assert await DeliveryService(ctx).sweep() == 1
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.ERROR, ErrorCode.EXECUTION_INTERRUPTED)


async def test_a_run_past_its_deadline_on_a_live_agent_is_a_timeout(ctx: Context, clock: FixedClock) -> None:
    """Running past Timeout + grace while the agent still beats: Timeout/ExecutionTimeout."""
    instance, invoke_id = await _run(ctx)
    await DeliveryService(ctx).fetch(instance)
    await DeliveryService(ctx).report(instance, Report("running", invoke_id, start=clock.now()))
    clock.advance(seconds=95)
    await InstanceService(ctx).heartbeat(instance, clock.now())
    assert await DeliveryService(ctx).sweep() == 1
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.TIMEOUT, ErrorCode.EXECUTION_TIMEOUT)


async def test_a_stop_nobody_confirms_ends_terminated(ctx: Context, clock: FixedClock) -> None:
    """StopInvocation on a running task whose agent never answers: Terminated after the grace period."""
    instance, invoke_id = await _run(ctx)
    await DeliveryService(ctx).fetch(instance)
    await DeliveryService(ctx).report(instance, Report("running", invoke_id, start=clock.now()))
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), invoke_id, [])
    assert (await _state(ctx, invoke_id, instance))[0] is InvocationStatus.STOPPING
    assert [o.result.invoke_id for o in (await DeliveryService(ctx).fetch(instance)).stop] == [invoke_id]
    clock.advance(seconds=61)
    assert await DeliveryService(ctx).sweep() == 1
    assert (await _state(ctx, invoke_id, instance))[0] is InvocationStatus.TERMINATED


async def test_reports_after_the_end_change_nothing(ctx: Context, clock: FixedClock) -> None:
    """A duplicate finish and a late chunk leave the stored result exactly as the first finish made it."""
    instance, invoke_id = await _run(ctx)
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    await delivery.report(instance, Report("running", invoke_id, start=clock.now(), output=b"a\n", offset=0))
    end = clock.now() + timedelta(seconds=1)
    await delivery.report(instance, Report("finish", invoke_id, end=end, exit_code=0, output=b"b\n", offset=2))
    await delivery.report(instance, Report("running", invoke_id, output=b"a\n", offset=0))  # resent chunk
    await delivery.report(instance, Report("finish", invoke_id, end=end, exit_code=1, output=b"zz", offset=2))
    async with ctx.store.read() as tx:
        result = await tx.results.current(invoke_id, instance)
    assert result is not None
    assert (result.status, result.exit_code, result.output, result.repeats) == (InvocationStatus.SUCCESS, 0,
                                                                                b"a\nb\n", 1)


async def test_a_one_time_task_reported_started_is_never_listed_again(ctx: Context, clock: FixedClock) -> None:
    """Issue 8, point 7: once its agent reports it running, a one-time task is listed to no agent again: not on
    a kick, not to the same agent restarted (`startup`, warm or cold), not when asked for by its id."""
    instance, invoke_id = await _run(ctx)
    delivery = DeliveryService(ctx)
    assert [o.result.invoke_id for o in (await delivery.fetch(instance)).run] == [invoke_id]
    await delivery.report(instance, Report("running", invoke_id, start=clock.now()))
    clock.advance(seconds=45)
    for listing in (await delivery.fetch(instance), await delivery.fetch(instance, startup=True),
                    await delivery.fetch(instance, startup=True, cold_start=True),
                    await delivery.fetch(instance, invoke_id)):
        assert listing.run == []
    assert await delivery.waiting(instance) == set()
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.RUNNING, ErrorCode.NONE)


async def test_a_listed_task_its_agent_did_not_start_is_listed_again_and_worth_a_kick(ctx: Context,
                                                                                     clock: FixedClock) -> None:
    """Issue 8, point 6: being listed is not being started. A task listed to an agent that could not take it
    (its disk was full) stays Pending; after RELIST_SECONDS its instance is worth a kick again (heart-beat
    `newTasks`, the delivery loop), and the next fetch lists it again; that listing is the new mark."""
    instance, invoke_id = await _run(ctx)
    delivery = DeliveryService(ctx)
    assert [o.result.invoke_id for o in (await delivery.fetch(instance)).run] == [invoke_id]
    assert await delivery.waiting(instance) == set()
    clock.advance(seconds=RELIST_SECONDS + 1)
    await InstanceService(ctx).heartbeat(instance, clock.now())
    assert await delivery.waiting(instance) == {instance}
    assert instance in await delivery.waiting()
    assert [o.result.invoke_id for o in (await delivery.fetch(instance)).run] == [invoke_id]
    assert await delivery.waiting(instance) == set()
    assert await delivery.sweep() == 0
    await delivery.report(instance, Report("running", invoke_id, start=clock.now()))
    await delivery.report(instance, Report("finish", invoke_id, exit_code=0, output=b"once\n"))
    assert await _state(ctx, invoke_id, instance) == (InvocationStatus.SUCCESS, ErrorCode.NONE)
