"""The retention job on both engines: it deletes what the API no longer returns, in small batches, and
nothing that is still returned; the API keeps answering (and writing) while it works."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from cloudassist.domain.commands import CommandType
from cloudassist.domain.invocations import RepeatMode, TerminationMode
from cloudassist.domain.paging import parse_page
from cloudassist.domain.tags import Tag
from cloudassist.services.commands import CommandSpec
from cloudassist.services.context import Context, Scope
from cloudassist.services.delivery import DeliveryService, Report
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.invocations import InvocationService, RunOptions, Targets
from cloudassist.services.quotas import utc_day
from cloudassist.services.retention import RetentionJob
from cloudassist.store.counts import recount_in
from cloudassist.store.invocations import InvocationFilter
from cloudassist.store.quotas import Quotas
from cloudassist.store.results import ResultFilter
from cloudassist.store.tables import client_tokens, invocation_history, invocation_results, invocations, tags
from cloudassist.testing import FixedClock, default_scope, register_instance, under_contention

SPEC = CommandSpec(name="n", description="", type=CommandType.RUN_SHELL_SCRIPT, content=b"echo hi", working_dir="",
                   timeout=60, enable_parameter=False, launcher="", resource_group_id="")
ONCE = RunOptions(repeat_mode=RepeatMode.ONCE, frequency="", parameters={}, timeout=None, working_dir=None,
                  username="", windows_password_name="", termination_mode=TerminationMode.PROCESS_TREE,
                  launcher=None, container_id="", container_name="", resource_group_id="")


def _with(ctx: Context, **settings: int) -> Context:
    return dataclasses.replace(ctx, settings=ctx.settings.replace(**settings))


async def _setup(ctx: Context) -> tuple[Scope, str]:
    instance = await register_instance(ctx)
    return await default_scope(ctx), instance


async def _ended(ctx: Context, scope: Scope, instance: str, tags: tuple[Tag, ...] = ()) -> str:
    """A task whose one record has ended (stopped before its agent fetched it: Cancelled)."""
    started = await InvocationService(ctx).run_command(scope, SPEC, ONCE, Targets([instance]), tags,
                                                       keep_command=False, idempotency=None)
    await InvocationService(ctx).stop_invocation(scope, started.invoke_id, [])
    return started.invoke_id


async def _visible(ctx: Context, scope: Scope) -> tuple[Any, ...]:
    """Everything DescribeInvocationResults and DescribeInvocations return (every page of 50)."""
    service = InvocationService(ctx)
    records, tasks = [], []
    for number in range(1, 100):
        page = parse_page(number, 50, None, None, paging_status=403)
        found = await service.describe_invocation_results(
            ResultFilter(scope.account_id, scope.region_id, not_before=ctx.clock.now(), min_seq=0), page)
        records += [(r.invoke_id, r.instance_id, r.status, r.creation_time) for r, _ in found.results]
        listed = await service.describe_invocations(
            InvocationFilter(scope.account_id, scope.region_id, not_before=ctx.clock.now()), page)
        tasks += [(i.invoke_id, i.tags, tuple(r.status for r in i.results)) for i in listed.invocations]
        if not found.results and not listed.invocations:
            break
    return tuple(records), tuple(tasks)


async def _count(ctx: Context, table: Any, *where: Any) -> int:
    async with ctx.store.read() as tx:
        return int(await tx.conn.scalar(select(func.count()).select_from(table).where(*where)) or 0)


async def test_records_older_than_the_window_are_deleted_with_their_tasks(ctx: Context, clock: FixedClock) -> None:
    """Past the 14 days, ended records are deleted, and their tasks (with their tags) once no record is left;
    records inside the window are untouched; what the API returns is the same before and after."""
    scope, instance = await _setup(ctx)
    old = [await _ended(ctx, scope, instance, (Tag("age", "old"),)) for _ in range(3)]
    clock.advance(days=10)
    young = [await _ended(ctx, scope, instance) for _ in range(2)]
    clock.advance(days=4, seconds=1)  # the first three are now 14 days and a second old
    before = await _visible(ctx, scope)
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.deleted == {"invocation_results": 3}
    assert done.tasks == 3
    assert await _visible(ctx, scope) == before
    assert await _count(ctx, invocations, invocations.c.invoke_id.in_(old)) == 0
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id.in_(old)) == 0
    assert await _count(ctx, tags, tags.c.resource_id.in_(old)) == 0
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id.in_(young)) == 2
    again = await RetentionJob(ctx, pause=False).run_once()
    assert (again.records, again.tasks) == (0, 0)


async def test_records_beyond_the_count_are_deleted(ctx: Context) -> None:
    """With retention_count=3, of five ended one-record tasks the two oldest records (and tasks) are deleted;
    DescribeInvocationResults answers the same before and after."""
    ctx = _with(ctx, retention_count=3)
    scope, instance = await _setup(ctx)
    made = [await _ended(ctx, scope, instance) for _ in range(5)]
    before = (await _visible(ctx, scope))[0]
    done = await RetentionJob(ctx, pause=False).run_once()
    assert (done.records, done.tasks) == (2, 2)
    assert (await _visible(ctx, scope))[0] == before
    async with ctx.store.read() as tx:
        left = await tx.invocations.get_many(scope.account_id, scope.region_id, made)
    assert sorted(left) == sorted(made[2:])


async def test_records_still_running_are_kept_whatever_their_age(ctx: Context, clock: FixedClock) -> None:
    """A record that has not ended (a task its agent never reported on, or a recurring task's current record)
    is not deleted even past the window; the ended one behind it is."""
    scope, instance = await _setup(ctx)
    running = await InvocationService(ctx).run_command(scope, SPEC, ONCE, Targets([instance]), (),
                                                       keep_command=False, idempotency=None)
    ended = await _ended(ctx, scope, instance)
    clock.advance(days=20)
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.records == 1
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id == running.invoke_id) == 1
    assert await _count(ctx, invocations, invocations.c.invoke_id == ended) == 0


async def test_an_ended_record_of_a_task_still_going_is_kept(ctx: Context) -> None:
    """A task on two instances: one record has ended (Cancelled), the other is Pending. Beyond the count window
    the job keeps the ended record (the task's roll-up is made from its records: deleting it would turn the
    task's outcome into the survivor's alone); once the task is over, both go."""
    ctx = _with(ctx, retention_count=2)
    scope, instance = await _setup(ctx)
    other = await register_instance(ctx)
    started = await InvocationService(ctx).run_command(scope, SPEC, ONCE, Targets([instance, other]), (),
                                                       keep_command=False, idempotency=None)
    await InvocationService(ctx).stop_invocation(scope, started.invoke_id, [instance])
    for _ in range(3):
        await _ended(ctx, scope, instance)
    await RetentionJob(ctx, pause=False).run_once()
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id == started.invoke_id) == 2
    await InvocationService(ctx).stop_invocation(scope, started.invoke_id, [other])
    await RetentionJob(ctx, pause=False).run_once()
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id == started.invoke_id) == 0
    assert await _count(ctx, invocations, invocations.c.invoke_id == started.invoke_id) == 0


async def test_history_of_recurring_tasks_is_trimmed_too(ctx: Context, clock: FixedClock) -> None:
    """The ended runs of a Period task past the window are deleted from the history; its current record and the
    task itself stay while it runs."""
    scope, instance = await _setup(ctx)
    period = dataclasses.replace(ONCE, repeat_mode=RepeatMode.PERIOD, frequency="rate(5m)")
    started = await InvocationService(ctx).run_command(scope, SPEC, period, Targets([instance]), (),
                                                       keep_command=False, idempotency=None)
    delivery = DeliveryService(ctx)
    for _ in range(3):
        start = clock.now()
        assert await delivery.report(instance, Report("running", started.invoke_id, start=start))
        clock.advance(seconds=10)
        assert await delivery.report(instance, Report("finish", started.invoke_id, start=start, end=clock.now(),
                                                      exit_code=0, output=b"tick\n"))
        clock.advance(minutes=5)
    ran = await _count(ctx, invocation_history, invocation_history.c.invoke_id == started.invoke_id)
    assert ran >= 2
    clock.advance(days=15)
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.deleted.get("invocation_history") == ran
    assert await _count(ctx, invocation_history) == 0
    assert await _count(ctx, invocations, invocations.c.invoke_id == started.invoke_id) == 1
    assert await _count(ctx, invocation_results, invocation_results.c.invoke_id == started.invoke_id) == 1


async def test_old_client_tokens_and_quota_days_are_forgotten(ctx: Context, clock: FixedClock) -> None:
    """ClientTokens older than client_token_hours (24) are deleted, newer ones kept; daily quota counters of days
    before yesterday (UTC) go."""
    scope, _ = await _setup(ctx)
    params = {"RegionId": "cn-hangzhou", "Name": "n"}
    for token, then in (("t-old", 23), ("t-new", 2)):
        idem = Idempotency.of("CreateCommand", token, params)
        assert idem is not None
        async with ctx.store.write() as tx:
            assert await idem.claim(tx, scope.account_id, clock.now()) is None
            await Quotas(tx.conn).take_invocation(scope.account_id, scope.region_id, utc_day(clock.now()), 10)
        clock.advance(hours=then)  # t-old ends 25 hours old, t-new 2 hours
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.tokens == 1
    async with ctx.store.read() as tx:
        assert await tx.tokens.find(scope.account_id, "CreateCommand", "t-old") is None
        assert await tx.tokens.find(scope.account_id, "CreateCommand", "t-new") is not None
    clock.advance(days=2)
    await RetentionJob(ctx, pause=False).run_once()
    async with ctx.store.read() as tx:
        assert await Quotas(tx.conn).invocations_on(scope.account_id, scope.region_id, "2026-11-26") == 0
    assert await _count(ctx, client_tokens) == 0


async def _seed(ctx: Context, scope: Scope, template: str, tasks: int, per_task: int) -> None:
    """`tasks` copies of the task `template`, each with `per_task` ended records, created 30 days ago (numbered
    before every existing record, as older records are)."""
    created = ctx.clock.now() - timedelta(days=30)
    async with ctx.store.write() as tx:
        task = dict((await tx.conn.execute(select(invocations).where(invocations.c.invoke_id == template))).one()
                    ._mapping)
        record = dict((await tx.conn.execute(
            select(invocation_results).where(invocation_results.c.invoke_id == template))).one()._mapping)
        del record["result_id"]
        first = -tasks * per_task
        task_rows, record_rows = [], []
        for t in range(tasks):
            invoke_id = f"t-seed-{t:06d}"
            task_rows.append({**task, "invoke_id": invoke_id, "seq": -tasks + t, "creation_time": created})
            for r in range(per_task):
                seq = first + t * per_task + r
                record_rows.append({**record, "invoke_id": invoke_id, "instance_id": f"mi-seed-{r}", "seq": seq,
                                    "creation_time": created, "status": "Success", "record_status": "Finished"})
        await tx.conn.execute(invocations.insert(), task_rows)
        await tx.conn.execute(invocation_results.insert(), record_rows)
        await recount_in(tx.conn)  # written around the store's counting (store/counts.py)


async def test_a_large_deletion_never_blocks_the_api_longer_than_one_batch(ctx: Context) -> None:
    """12,000 expired records are deleted in batches of 500 while the API writes and reads in a loop: every
    write waits at most about one batch's lock hold (measured), never the whole deletion; reads never wait."""
    ctx = _with(ctx, retention_batch_size=500)
    scope, instance = await _setup(ctx)
    template = await _ended(ctx, scope, instance)
    await _seed(ctx, scope, template, tasks=1200, per_task=10)
    done, seen = await under_contention(ctx, scope.account_id, RetentionJob(ctx).run_once())
    writes, reads = seen.writes, seen.reads
    print(f"deleted {done.records} in {done.seconds:.2f}s, {done.batches} batches, longest hold "
          f"{done.longest_hold * 1000:.1f} ms; {len(writes)} writes, longest {max(writes) * 1000:.1f} ms; "
          f"longest read {max(reads) * 1000:.1f} ms")
    assert done.deleted == {"invocation_results": 12_000}
    assert done.tasks == 1200
    assert done.batches >= 25
    assert len(writes) >= 10, "the API made too few writes during the deletion to measure anything"
    slack = 0.25  # SQLite's busy handler polls the lock with sleeps of up to 100 ms
    assert max(writes) <= done.longest_hold + slack, (max(writes), done.longest_hold)
    assert max(writes) < done.seconds / 3, (max(writes), done.seconds)
    assert max(reads) <= done.longest_hold + slack, (max(reads), done.longest_hold)


async def test_unkept_commands_left_behind_are_deleted(ctx: Context, clock: FixedClock) -> None:
    """A command RunCommand did not keep that no running task uses (a DryRun's) is deleted by the job once an hour
    old; one whose task still runs stays; kept commands stay."""
    scope, instance = await _setup(ctx)
    service = InvocationService(ctx)
    dry = await service.run_command(scope, SPEC, dataclasses.replace(ONCE, repeat_mode=RepeatMode.DRY_RUN),
                                    Targets([instance]), (), keep_command=False, idempotency=None)
    running = await service.run_command(scope, SPEC, ONCE, Targets([instance]), (), keep_command=False,
                                        idempotency=None)
    kept = await service.run_command(scope, SPEC, ONCE, Targets([instance]), (), keep_command=True, idempotency=None)

    async def exists(command_id: str) -> bool:
        async with ctx.store.read() as tx:
            return await tx.commands.get(scope.account_id, scope.region_id, command_id, hidden=True) is not None

    assert (await RetentionJob(ctx, pause=False).run_once()).commands == 0  # not an hour old yet
    assert await exists(dry.command_id)
    clock.advance(hours=1, seconds=1)
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.commands == 1
    assert [await exists(c) for c in (dry.command_id, running.command_id, kept.command_id)] == [False, True, True]


async def test_the_background_job_runs_every_interval_and_survives_a_failed_pass(ctx: Context,
                                                                                 clock: FixedClock) -> None:
    """keep_running makes a pass every retention_interval_seconds; a pass that fails is logged and the next one
    runs; an interval of 0 turns the job off."""
    ctx = _with(ctx, retention_interval_seconds=1)
    scope, instance = await _setup(ctx)
    invoke_id = await _ended(ctx, scope, instance)
    clock.advance(days=15)
    job = RetentionJob(ctx, pause=False)
    real, calls = job.run_once, []

    async def flaky() -> Any:
        calls.append(time.monotonic())
        if len(calls) == 1:
            raise RuntimeError("the database went away")
        return await real()

    job.run_once = flaky  # type: ignore[method-assign]
    running = asyncio.create_task(job.keep_running())
    try:
        for _ in range(60):
            await asyncio.sleep(0.1)
            if await _count(ctx, invocations, invocations.c.invoke_id == invoke_id) == 0:
                break
        assert await _count(ctx, invocations, invocations.c.invoke_id == invoke_id) == 0
        assert len(calls) == 2
        assert calls[1] - calls[0] >= 0.9
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    off = RetentionJob(_with(ctx, retention_interval_seconds=0))
    await asyncio.wait_for(off.keep_running(), 1)  # returns at once


async def test_file_tasks_go_after_six_weeks_once_every_record_has_ended(ctx: Context, clock: FixedClock) -> None:
    """SendFile records are kept six weeks (reference §5.7), longer than execution records: the job leaves a
    five-week-old file task alone, deletes a seven-week-old ended one with its records and tags, and keeps a
    seven-week-old one whose record is still pending."""
    from cloudassist.domain.files import FileSpec
    from cloudassist.services.files import FileReport, FileService
    from cloudassist.store.tables import file_results, file_tasks

    scope, instance = await _setup(ctx)
    files = FileService(ctx)
    spec = FileSpec(name="app.conf", target_dir="/etc/app", content=b"x=1\n")

    async def sent(*, done: bool) -> str:
        invoke_id = await files.send_file(scope, spec, [instance], (Tag("k", "v"),), idempotency=None)
        if done:
            await files.fetch(instance)
            assert await files.report(instance, FileReport("finish", invoke_id, status="Success", error_code=0))
        return invoke_id

    old, stuck = await sent(done=True), await sent(done=False)
    clock.advance(days=14)
    young = await sent(done=True)
    clock.advance(days=35)  # old and stuck are 7 weeks old, young 5 weeks
    done = await RetentionJob(ctx, pause=False).run_once()
    assert done.deleted.get("file_results") == 1
    remaining = await _count(ctx, file_tasks)
    assert remaining == 2
    for invoke_id, kept in ((old, False), (stuck, True), (young, True)):
        assert await _count(ctx, file_tasks, file_tasks.c.invoke_id == invoke_id) == int(kept)
        assert await _count(ctx, file_results, file_results.c.invoke_id == invoke_id) == int(kept)
        assert await _count(ctx, tags, tags.c.resource_id == invoke_id) == int(kept)
