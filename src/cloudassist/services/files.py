"""SendFile and DescribeSendFileResults; handing files to agents, their reports, and the deadlines.

An agent learns of a file in its task list (the `file` list, agent-protocol §1.10) and is told of it
there until it reports a result: fetching moves the record Pending → Running. The report
(`task/finish` or `task/invalid` with `taskType=sendfile`) ends it; a report for an ended record is
acknowledged and ignored. The sweeper ends records nobody reports, as it does for commands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cloudassist import ids
from cloudassist.domain.commands import check_resource_group
from cloudassist.domain.files import (
    CLIENT_NOT_RESPONSE,
    CLIENT_NOT_RUNNING,
    DELIVERY_TIMEOUT,
    INSTANCE_RELEASED,
    INTERRUPTED,
    MAX_INSTANCES,
    RETENTION,
    FileResult,
    FileSpec,
    FileTask,
    Outcome,
    check_spec,
    finish_outcome,
    invalid_outcome,
)
from cloudassist.domain.paging import Page
from cloudassist.domain.statuses import InvocationStatus, TaskStatus, roll_up
from cloudassist.domain.tags import Tag
from cloudassist.errors import ApiError
from cloudassist.services.context import Context, Scope
from cloudassist.services.idempotency import Idempotency
from cloudassist.services.invocations import InvocationService, Targets
from cloudassist.store.files import TAG_TYPE, FileFilter
from cloudassist.store.store import Tx

S = InvocationStatus


@dataclass(frozen=True)
class Delivery:
    """One file as its agent is told of it."""

    result: FileResult
    task: FileTask


@dataclass(frozen=True)
class FilePage:
    tasks: list[FileTask]
    total: int
    next_seq: int | None


@dataclass(frozen=True)
class FileReport:
    """A `task/<kind>?taskType=sendfile` report (or any report naming a file task)."""

    kind: str
    task_id: str
    status: str = ""
    error_code: int | None = None
    param: str = ""


def is_file_task(task_id: str) -> bool:
    return task_id.startswith("f-")


class FileService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def send_file(
        self,
        scope: Scope,
        spec: FileSpec,
        instance_ids: Sequence[str],
        tags: Sequence[Tag],
        *,
        idempotency: Idempotency | None,
    ) -> str:
        """Create the task and a Pending record per instance; its InvokeId (`f-…`)."""
        check_spec(spec, self.ctx.settings.max_timeout_seconds)
        check_resource_group(spec.resource_group_id)
        if len(set(instance_ids)) > MAX_INSTANCES:
            raise ApiError.of("InstanceIds.ExceedLimit")
        kicked: list[str] = []
        async with self.ctx.store.write() as tx:
            now = self.ctx.clock.now()
            earlier = None if idempotency is None else await idempotency.claim(tx, scope.account_id, now)
            if earlier is not None:
                return earlier["InvokeId"]
            # the instances are checked as RunCommand checks them
            targets = await InvocationService(self.ctx)._resolve_targets(tx, scope, Targets(instance_ids))
            found = await tx.instances.get_many(scope.account_id, scope.region_id, targets)
            missing = [i for i in targets if i not in found]
            if missing:
                raise ApiError.of("InvalidInstance.NotFound", f"The specified instances not found: {missing[0]}.")
            task = FileTask(
                invoke_id=ids.file_invoke_id(scope.region_id),
                account_id=scope.account_id,
                region_id=scope.region_id,
                spec=spec,
                creation_time=now,
                status=TaskStatus.PENDING,
            )
            await tx.files.insert(task, targets, seq=await tx.accounts.allocate_task_seq(scope.account_id))
            await tx.tags.add(scope.account_id, TAG_TYPE, task.invoke_id, tags)
            if idempotency is not None:
                await idempotency.record(tx, scope.account_id, {"InvokeId": task.invoke_id})
            kicked = list(targets)
        self.ctx.notify.kick(kicked)
        return task.invoke_id

    async def describe(self, f: FileFilter, page: Page) -> FilePage:
        """A page of the account's file tasks in the region, newest first, within six weeks."""
        now = self.ctx.clock.now()
        async with self.ctx.store.read() as tx:
            window = replace(f, not_before=now - RETENTION, before_seq=page.position)
            rows = await tx.files.page(window, page.offset if not page.token_mode else 0, page.size + 1)
            total = -1 if page.token_mode else await tx.files.count(window)
            more = len(rows) > page.size
            rows = rows[: page.size]
            wanted = [task.invoke_id for _, task in rows]
            results = await tx.files.results_of(wanted)
            tags = await tx.tags.of(TAG_TYPE, wanted)
        tasks = [replace(t, results=tuple(results[t.invoke_id]), tags=tags[t.invoke_id]) for _, t in rows]
        return FilePage(tasks, total, rows[-1][0] if more else None)

    async def fetch(self, instance_id: str) -> list[Delivery]:
        """The files this instance's agent should write now: every record not yet reported.

        The first fetch moves a record Running (its start time); a record stays listed until its
        agent reports it, so a restarted agent hears of it again (ours never writes it twice)."""
        return await self.ctx.store.batch(lambda tx: self.fetch_in(tx, instance_id))

    async def fetch_in(self, tx: Tx, instance_id: str) -> list[Delivery]:
        """`fetch`, in a transaction of the caller's (a batch of writes, see Store.batch)."""
        now = self.ctx.clock.now()
        open_ = await tx.files.for_instance(instance_id, [S.PENDING, S.RUNNING])
        tasks = await tx.files.by_ids(r.invoke_id for r in open_)
        listed = []
        touched = set()
        for result in open_:
            task = tasks.get(result.invoke_id)
            if task is None:
                continue
            if result.status is S.PENDING:
                changed = await tx.files.update(
                    result.result_id,
                    expect=S.PENDING,
                    status=S.RUNNING.value,
                    start_time=now,
                    delivered_time=now,
                    update_time=now,
                )
                if changed:
                    touched.add(result.invoke_id)
                    result = replace(result, status=S.RUNNING, start_time=now, delivered_time=now)
            listed.append(Delivery(result, task))
        for invoke_id in touched:
            await self.refresh_status(tx, invoke_id)
        return listed

    async def report(self, instance_id: str, report: FileReport) -> bool:
        """Apply an agent's report; False when it names no record of this instance (still acknowledged)."""
        if self._outcome(report) is None:
            return True  # a progress post: nothing to record
        return await self.ctx.store.batch(lambda tx: self.report_in(tx, instance_id, report), key=report.task_id)

    async def report_in(self, tx: Tx, instance_id: str, report: FileReport) -> bool:
        """`report`, in a transaction of the caller's (a batch of writes, see Store.batch)."""
        outcome = self._outcome(report)
        if outcome is None:
            return True
        result = await tx.files.current(report.task_id, instance_id)
        if result is None:
            return False
        if result.status.terminal:
            return True
        await self._end(tx, result, outcome, self.ctx.clock.now())
        return True

    @staticmethod
    def _outcome(report: FileReport) -> Outcome | None:
        if report.kind == "finish":
            return finish_outcome(report.status, report.error_code)
        if report.kind == "invalid":
            return invalid_outcome(report.param)
        if report.kind in ("error", "stopped"):
            return INTERRUPTED
        if report.kind == "timeout":
            return DELIVERY_TIMEOUT
        return None

    async def _end(self, tx: Tx, result: FileResult, outcome: Outcome, now: datetime) -> bool:
        changed = await tx.files.update(
            result.result_id,
            expect=result.status,
            status=outcome.status.value,
            error_code=outcome.code.value,
            error_info=outcome.info,
            finish_time=now,
            update_time=now,
        )
        if changed:
            await self.refresh_status(tx, result.invoke_id)
        return changed

    async def waiting(self, instance_id: str | None = None) -> set[str]:
        """Instances (or just this one) with a file not fetched yet: worth a kick."""
        async with self.ctx.store.read() as tx:
            return await tx.files.waiting_instances(instance_id)

    async def sweep(self) -> int:
        """End records whose deadlines passed; how many were ended.

        Never fetched within the delivery window: Aborted with ClientNotRunning (no heart-beat for two
        minutes) or ClientNotResponse (heart-beats, but no fetch); Error with InstanceReleased if the
        instance was deregistered meanwhile. Fetched but not reported within the task's Timeout plus the
        grace period: Timeout with DeliveryTimeout.
        """
        now = self.ctx.clock.now()
        delivery = timedelta(seconds=self.ctx.settings.delivery_timeout_seconds)
        grace = timedelta(seconds=self.ctx.settings.grace_seconds)
        async with self.ctx.store.read() as tx:
            candidates = await tx.files.open_results()
            due = []
            for c in candidates:
                r = c.result
                fetched = r.delivered_time
                limit = delivery if fetched is None else timedelta(seconds=c.timeout) + grace
                if now - (fetched or r.creation_time) > limit:
                    due.append(r)
            if not due:
                return 0
            instances = {i: await tx.instances.get(i) for i in {r.instance_id for r in due}}
        ended = 0
        async with self.ctx.store.write() as tx:
            for r in due:
                inst = instances.get(r.instance_id)
                if inst is None:
                    outcome = INSTANCE_RELEASED
                elif r.delivered_time is not None:
                    outcome = DELIVERY_TIMEOUT
                elif inst is not None and inst.online(now):
                    outcome = CLIENT_NOT_RESPONSE
                else:
                    outcome = CLIENT_NOT_RUNNING
                if await self._end(tx, r, outcome, now):
                    ended += 1
        return ended

    @staticmethod
    async def refresh_status(tx: Tx, invoke_id: str) -> None:
        """Recompute a task's roll-up from its records."""
        results = (await tx.files.results_of([invoke_id]))[invoke_id]
        await tx.files.set_status(invoke_id, roll_up(r.status for r in results))
