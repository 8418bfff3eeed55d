"""Execution history of recurring tasks: every ended run is its own record; IncludeHistory returns them with the
latest state, paged, filtered and retained as one set (on SQLite and PostgreSQL); the roll-up and Timed."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import InvocationResult, RepeatMode, TerminationMode
from cloudassist.domain.paging import encode_token, parse_page
from cloudassist.domain.statuses import ErrorCode, InvocationStatus, TaskStatus
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context
from cloudassist.services.delivery import DeliveryService, Report
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.results import ResultFilter
from cloudassist.testing import FixedClock, default_scope, register_instance

S = InvocationStatus
SPEC = CommandSpec(name="n", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo tick", working_dir="",
                   timeout=30, enable_parameter=False, launcher="", resource_group_id="")
ONCE = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                  username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                  launcher=None, container_id="", container_name="", resource_group_id="")
PERIOD = dataclasses.replace(ONCE, repeat_mode=RepeatMode.PERIOD, frequency="rate(5m)")
EVERY_REBOOT = dataclasses.replace(ONCE, repeat_mode=RepeatMode.EVERY_REBOOT)




async def _start(ctx: Context, options: RunOptions, instances: list[str]) -> str:
    started = await InvocationService(ctx).run_command(await default_scope(ctx), SPEC, options, Targets(instances), (),
                                                       keep_command=False, idempotency=None)
    return started.invoke_id


async def _run(ctx: Context, clock: FixedClock, instance: str, invoke_id: str, output: bytes, *,
               kind: str = "finish", exit_code: int = 0) -> datetime:
    """One run of the schedule as an agent reports it: started, then ended `kind` ten seconds later."""
    delivery = DeliveryService(ctx)
    start = clock.now()
    assert await delivery.report(instance, Report("running", invoke_id, start=start))
    clock.advance(seconds=10)
    assert await delivery.report(instance, Report(kind, invoke_id, start=start, end=clock.now(),  # type: ignore[arg-type]
                                                  exit_code=exit_code, output=output))
    clock.advance(minutes=5)
    return start


async def _records(ctx: Context, invoke_id: str | None, *, history: bool = True, size: int = 50, number: int = 1,
                   **filters: object) -> tuple[int, list[InvocationResult]]:
    scope = await default_scope(ctx)
    page = parse_page(number, size, None, None, paging_status=403)
    f = ResultFilter(scope.account_id, scope.region_id, not_before=ctx.clock.now(), min_seq=0, invoke_id=invoke_id,
                     **filters)  # type: ignore[arg-type]
    found = await InvocationService(ctx).describe_invocation_results(f, page, include_history=history)
    return found.total, [r for r, _ in found.results]


async def _periodic_with_three_runs(ctx: Context, clock: FixedClock) -> tuple[str, str, list[datetime]]:
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    await DeliveryService(ctx).fetch(instance)
    starts = [await _run(ctx, clock, instance, invoke_id, b"one\n"),
              await _run(ctx, clock, instance, invoke_id, b"two\n", exit_code=3),
              await _run(ctx, clock, instance, invoke_id, b"three\n", kind="timeout", exit_code=1)]
    return instance, invoke_id, starts


async def test_every_ended_run_is_kept_with_its_own_output_codes_times_and_status(ctx: Context,
                                                                                  clock: FixedClock) -> None:
    """Three runs (exit 0, exit 3, timeout) leave three history records, newest first, each with its own output,
    exit code, error code, start and finish, status and run number, after the current record (first: it stands
    for the newest run), still Scheduled with Repeats 3 and the last run's output."""
    instance, invoke_id, starts = await _periodic_with_three_runs(ctx, clock)
    total, records = await _records(ctx, invoke_id)
    assert total == 4
    current, *past = records
    assert [(r.status, r.output, r.exit_code, r.error_code, r.repeats) for r in past] == [
        (S.TIMEOUT, b"three\n", 1, ErrorCode.EXECUTION_TIMEOUT, 3),
        (S.FAILED, b"two\n", 3, ErrorCode.EXIT_CODE_NONZERO, 2),
        (S.SUCCESS, b"one\n", 0, ErrorCode.NONE, 1),
    ]
    assert [r.start_time for r in past] == list(reversed(starts))
    assert [r.finished_time for r in past] == [s + timedelta(seconds=10) for s in reversed(starts)]
    assert all(r.instance_id == instance and r.invoke_id == invoke_id for r in records)
    assert (current.status, current.repeats, current.output) == (S.SCHEDULED, 3, b"three\n")


async def test_without_include_history_only_the_latest_state_is_returned(ctx: Context, clock: FixedClock) -> None:
    """IncludeHistory=false (the default) returns one record per instance, as before: the current one."""
    _, invoke_id, _ = await _periodic_with_three_runs(ctx, clock)
    total, records = await _records(ctx, invoke_id, history=False)
    assert total == 1
    assert [(r.status, r.repeats) for r in records] == [(S.SCHEDULED, 3)]
    assert (await _records(ctx, None, history=False))[0] == 1


async def test_history_pages_by_page_number_and_by_next_token_over_the_combined_set(ctx: Context,
                                                                                    clock: FixedClock) -> None:
    """Four records in pages of three: PageNumber 1 and 2 and NextToken walk the same combined order."""
    _, invoke_id, _ = await _periodic_with_three_runs(ctx, clock)
    _, everything = await _records(ctx, invoke_id)
    total, first = await _records(ctx, invoke_id, size=3, number=1)
    _, second = await _records(ctx, invoke_id, size=3, number=2)
    assert total == 4
    assert first + second == everything
    scope = await default_scope(ctx)
    f = ResultFilter(scope.account_id, scope.region_id, not_before=clock.now(), min_seq=0, invoke_id=invoke_id)
    service = InvocationService(ctx)
    walked: list[InvocationResult] = []
    token: str | None = None
    for _ in range(3):
        page = await service.describe_invocation_results(f, parse_page(None, None, token, 3, paging_status=403),
                                                         include_history=True)
        walked += [r for r, _ in page.results]
        if page.next_seq is None:
            break
        token = encode_token(str(page.next_seq))
    assert walked == everything


async def test_filters_apply_to_history_records(ctx: Context, clock: FixedClock) -> None:
    """InvokeRecordStatus/status and InstanceId select among history records as among current ones."""
    instance, invoke_id, _ = await _periodic_with_three_runs(ctx, clock)
    _, failed = await _records(ctx, invoke_id, statuses=frozenset({S.FAILED}))
    assert [r.output for r in failed] == [b"two\n"]
    _, legacy_failed = await _records(ctx, invoke_id, record_status="Failed")  # Timeout is legacy Failed
    assert [r.output for r in legacy_failed] == [b"three\n"]
    assert (await _records(ctx, invoke_id, instance_id=instance))[0] == 4
    assert (await _records(ctx, invoke_id, instance_id="mi-other"))[0] == 0


async def test_history_records_count_toward_retention_by_count(ctx: Context, clock: FixedClock) -> None:
    """Each kept run takes the account's next record number, and the current record the one after it: with the
    count at 2 the current record and the newest run are visible, runs 1 and 2 have fallen out of the window."""
    _, invoke_id, _ = await _periodic_with_three_runs(ctx, clock)
    small = dataclasses.replace(ctx, settings=ctx.settings.replace(retention_count=2))
    total, records = await _records(small, invoke_id)
    assert total == 2
    assert [(r.status, r.output) for r in records] == [(S.SCHEDULED, b"three\n"), (S.TIMEOUT, b"three\n")]
    assert (await _records(small, invoke_id, history=False))[0] == 1


async def test_history_records_leave_the_retention_window_by_age(ctx: Context, clock: FixedClock) -> None:
    """A run's record is dated when the run ended and is hidden 14 days later, like every record; the current
    record is dated by the newest run."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    await DeliveryService(ctx).fetch(instance)
    old_end = await _run(ctx, clock, instance, invoke_id, b"old\n") + timedelta(seconds=10)
    clock.advance(days=10)
    await _run(ctx, clock, instance, invoke_id, b"new\n")
    clock.current = old_end + timedelta(days=14, seconds=-1)
    assert [r.output for r in (await _records(ctx, invoke_id))[1]] == [b"new\n", b"new\n", b"old\n"]
    clock.advance(seconds=2)
    assert [r.output for r in (await _records(ctx, invoke_id))[1]] == [b"new\n", b"new\n"]


async def test_a_resent_report_of_an_ended_run_is_not_kept_twice(ctx: Context, clock: FixedClock) -> None:
    """The agent retries a finish (or a running tick) whose acknowledgement it lost: still one run."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    start = clock.now()
    await delivery.report(instance, Report("running", invoke_id, start=start))
    end = start + timedelta(seconds=2)
    finish = Report("finish", invoke_id, start=start, end=end, exit_code=0, output=b"x\n")
    assert await delivery.report(instance, finish)
    assert await delivery.report(instance, finish)
    assert await delivery.report(instance, Report("running", invoke_id, start=start))
    total, records = await _records(ctx, invoke_id)
    assert total == 2
    assert [(r.status, r.repeats) for r in records] == [(S.SCHEDULED, 1), (S.SUCCESS, 1)]


async def test_every_reboot_runs_are_kept_too(ctx: Context, clock: FixedClock) -> None:
    """An EveryReboot task runs at each boot; each run is a record and the task stays Scheduled."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, EVERY_REBOOT, [instance])
    delivery = DeliveryService(ctx)
    for boot in (b"boot 1\n", b"boot 2\n"):
        listed = await delivery.fetch(instance, startup=True, cold_start=True)
        assert [o.invocation.invoke_id for o in listed.run] == [invoke_id]
        await _run(ctx, clock, instance, invoke_id, boot)
    _total, records = await _records(ctx, invoke_id)
    assert [(r.status, r.output) for r in records] == [(S.SCHEDULED, b"boot 2\n"), (S.SUCCESS, b"boot 2\n"),
                                                        (S.SUCCESS, b"boot 1\n")]


async def test_a_run_killed_by_a_stop_is_kept_as_terminated(ctx: Context, clock: FixedClock) -> None:
    """StopInvocation during a run: the agent reports stopped; that run is a Terminated record and so is the task."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    await _run(ctx, clock, instance, invoke_id, b"one\n")
    start = clock.now()
    await delivery.report(instance, Report("running", invoke_id, start=start, output=b"par"))
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), invoke_id, [])
    clock.advance(seconds=1)
    await delivery.report(instance, Report("stopped", invoke_id, start=start, end=clock.now(), output=b"tial",
                                           result="killed"))
    _, records = await _records(ctx, invoke_id)
    assert [(r.status, r.output, r.repeats) for r in records] == [
        (S.TERMINATED, b"partial", 2), (S.TERMINATED, b"partial", 2), (S.SUCCESS, b"one\n", 1)]


async def test_a_stop_between_runs_adds_no_record(ctx: Context, clock: FixedClock) -> None:
    """Stopped while waiting for its next run (the agent confirms with the last run's times): no new record."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    start = await _run(ctx, clock, instance, invoke_id, b"one\n")
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), invoke_id, [])
    await delivery.report(instance, Report("stopped", invoke_id, start=start, end=start + timedelta(seconds=10),
                                           result="killed"))
    _, records = await _records(ctx, invoke_id)
    assert [(r.status, r.repeats) for r in records] == [(S.TERMINATED, 1), (S.SUCCESS, 1)]


async def test_runs_that_end_before_the_agent_has_the_stop_are_each_kept_with_their_own_output(
    ctx: Context, clock: FixedClock
) -> None:
    """StopInvocation while the schedule waits: until the agent fetches the stop, its clock fires the schedule
    again. Each of those runs is its own record with its own output (not the outputs of every run since the stop
    run together, as a fleet of 1,000 agents on PostgreSQL showed), a resent finish of one adds nothing, and the
    agent's confirmation ends the task."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    await _run(ctx, clock, instance, invoke_id, b"one\n")
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), invoke_id, [])
    start = clock.now()  # a run that streams part of its output before its end
    assert await delivery.report(instance, Report("running", invoke_id, start=start, output=b"tw"))
    clock.advance(seconds=10)
    assert await delivery.report(instance, Report("finish", invoke_id, start=start, end=clock.now(), exit_code=0,
                                                  output=b"o\n"))
    clock.advance(minutes=5)
    start = clock.now()  # a run whose `running` post was lost (the official agent sends it once)
    clock.advance(seconds=10)
    finish = Report("finish", invoke_id, start=start, end=clock.now(), exit_code=0, output=b"three\n")
    assert await delivery.report(instance, finish)
    assert await delivery.report(instance, finish)
    await delivery.report(instance, Report("stopped", invoke_id, start=start, end=clock.now(), result="killed"))
    _, records = await _records(ctx, invoke_id)
    assert [(r.status, r.output, r.repeats) for r in records] == [
        (S.TERMINATED, b"three\n", 3), (S.SUCCESS, b"three\n", 3), (S.SUCCESS, b"two\n", 2), (S.SUCCESS, b"one\n", 1)]


async def _task(ctx: Context, invoke_id: str, **filters: object) -> list[tuple[str, TaskStatus, bool]]:
    scope = await default_scope(ctx)
    f = InvocationFilter(scope.account_id, scope.region_id, not_before=ctx.clock.now(), invoke_id=invoke_id,
                         **filters)  # type: ignore[arg-type]
    found = await InvocationService(ctx).describe_invocations(f, parse_page(1, 50, None, None, paging_status=403))
    return [(i.invoke_id, i.status, i.timed) for i in found.invocations]


async def test_a_periodic_task_succeeds_only_once_its_schedule_has_ended(ctx: Context, clock: FixedClock) -> None:
    """Finished runs leave the task Scheduled (and Timed); the agent's `stopped?result=completed` (no next run)
    ends it Success, and then it is no longer Timed."""
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, dataclasses.replace(PERIOD, frequency="at(2026-11-26 12:30:00)"), [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    assert await _task(ctx, invoke_id) == [(invoke_id, TaskStatus.SCHEDULED, True)]
    start = await _run(ctx, clock, instance, invoke_id, b"done\n")
    assert await _task(ctx, invoke_id) == [(invoke_id, TaskStatus.SCHEDULED, True)]
    await delivery.report(instance, Report("stopped", invoke_id, start=start, end=start + timedelta(seconds=10),
                                           result="completed"))
    assert await _task(ctx, invoke_id) == [(invoke_id, TaskStatus.SUCCESS, False)]
    _, records = await _records(ctx, invoke_id)
    assert [(r.status, r.repeats) for r in records] == [(S.SUCCESS, 1), (S.SUCCESS, 1)]


async def test_timed_filters_recurring_tasks_still_to_run(ctx: Context, clock: FixedClock) -> None:
    """Timed=true: Period/reboot tasks not stopped, cancelled or finished; Timed=false: the rest, which includes
    one-time tasks and a recurring task once stopped."""
    instance = await register_instance(ctx)
    once = await _start(ctx, ONCE, [instance])
    period = await _start(ctx, PERIOD, [instance])
    reboot = await _start(ctx, EVERY_REBOOT, [instance])
    stopped = await _start(ctx, PERIOD, [instance])
    await InvocationService(ctx).stop_invocation(await default_scope(ctx), stopped, [])

    async def ids(timed: bool | None) -> set[str]:
        return {i for inv in (once, period, reboot, stopped) for i, _, _ in await _task(ctx, inv, timed=timed)}

    assert await ids(True) == {period, reboot}
    assert await ids(False) == {once, stopped}
    assert await ids(None) == {once, period, reboot, stopped}
    assert {inv: t for inv in (once, period, reboot, stopped) for _, _, t in await _task(ctx, inv)} == {
        once: False, period: True, reboot: True, stopped: False}


async def test_paging_walks_records_of_both_kinds_interleaved(ctx: Context, clock: FixedClock) -> None:
    """An instance added later (ModifyInvocationAttribute) has a current record newer than earlier runs: every
    page size, by PageNumber and by NextToken, walks the same newest-first order with nothing lost or repeated."""
    from cloudassist.services.invocations import Modification

    first, second = await register_instance(ctx), await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [first])
    await DeliveryService(ctx).fetch(first)
    await _run(ctx, clock, first, invoke_id, b"1\n")
    await InvocationService(ctx).modify_invocation_attribute(await default_scope(ctx), invoke_id,
                                                             Modification(instance_ids=[second]), idempotency=None)
    await DeliveryService(ctx).fetch(second)
    await _run(ctx, clock, first, invoke_id, b"2\n")
    await _run(ctx, clock, second, invoke_id, b"3\n")
    total, everything = await _records(ctx, invoke_id)
    assert total == 5
    assert [(r.instance_id, r.status, r.output) for r in everything] == [
        (second, S.SCHEDULED, b"3\n"), (second, S.SUCCESS, b"3\n"), (first, S.SCHEDULED, b"2\n"),
        (first, S.SUCCESS, b"2\n"), (first, S.SUCCESS, b"1\n")]
    scope = await default_scope(ctx)
    f = ResultFilter(scope.account_id, scope.region_id, not_before=clock.now(), min_seq=0, invoke_id=invoke_id)
    service = InvocationService(ctx)
    for size in (1, 2, 3, 4):
        numbered: list[InvocationResult] = []
        for number in range(1, 7):
            numbered += (await _records(ctx, invoke_id, size=size, number=number))[1]
        walked: list[InvocationResult] = []
        token: str | None = None
        for _ in range(7):
            page = await service.describe_invocation_results(
                f, parse_page(None, None, token, size, paging_status=403), include_history=True)
            walked += [r for r, _ in page.results]
            if page.next_seq is None:
                break
            token = encode_token(str(page.next_seq))
        assert numbered == everything, size
        assert walked == everything, size


async def test_a_run_the_sweeper_ends_is_kept_and_the_schedule_goes_on(ctx: Context, clock: FixedClock) -> None:
    """A run of a schedule that goes unreported past its Timeout and the grace period, while the agent still
    beats, ends as ExecutionTimeout in the history; the current record goes back to Scheduled (the agent keeps
    the schedule), the task stays Scheduled, and the late finish of that run is not counted again."""
    from cloudassist.services.instances import InstanceService

    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    delivery = DeliveryService(ctx)
    await delivery.fetch(instance)
    start = clock.now()
    assert await delivery.report(instance, Report("running", invoke_id, start=start, output=b"partial\n"))
    clock.advance(seconds=SPEC.timeout + ctx.settings.grace_seconds + 1)
    await InstanceService(ctx).heartbeat(instance, clock.now())
    assert await delivery.sweep() == 1
    total, records = await _records(ctx, invoke_id)
    assert total == 2
    current, past = records
    assert (past.status, past.error_code, past.repeats, past.start_time, past.finished_time) == (
        S.TIMEOUT, ErrorCode.EXECUTION_TIMEOUT, 1, start, clock.now())
    assert (current.status, current.repeats) == (S.SCHEDULED, 1)
    assert await _task(ctx, invoke_id) == [(invoke_id, TaskStatus.SCHEDULED, True)]
    assert await delivery.sweep() == 0
    late = Report("finish", invoke_id, start=start, end=clock.now(), exit_code=0, output=b"done\n")
    assert await delivery.report(instance, late)
    total, _ = await _records(ctx, invoke_id)
    assert total == 2


async def test_a_schedule_that_keeps_running_is_never_pushed_out_of_the_window(ctx: Context,
                                                                               clock: FixedClock) -> None:
    """With room for 5 records, a task running every 5 minutes for three weeks (more runs than the window holds,
    and longer than its two weeks): its current record stays visible, newest first, before its history."""
    ctx = dataclasses.replace(ctx, settings=ctx.settings.replace(retention_count=5))
    instance = await register_instance(ctx)
    invoke_id = await _start(ctx, PERIOD, [instance])
    await DeliveryService(ctx).fetch(instance)
    for _ in range(6):
        await _run(ctx, clock, instance, invoke_id, b"tick\n")
    clock.advance(days=21)
    await _run(ctx, clock, instance, invoke_id, b"late\n")
    total, records = await _records(ctx, invoke_id)
    assert [(r.status, r.repeats) for r in records] == [(S.SCHEDULED, 7), (S.SUCCESS, 7)]
    assert total == 2
    total, records = await _records(ctx, invoke_id, history=False)
    assert [(r.status, r.output) for r in records] == [(S.SCHEDULED, b"late\n")]
