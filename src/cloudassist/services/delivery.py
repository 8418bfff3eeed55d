"""What agents do: fetch their tasks, report progress and results; and the deadlines behind them.

A kick is only a doorbell: an agent learns of work by fetching its task list, and the list is the
truth. Every report is applied in one transaction and acknowledged only after it commits; a report
for an execution that has already ended is acknowledged and ignored, so retries are harmless.

Being listed is not being started. A one-time task is listed while it is Pending: an agent that could not
take it (its disk was full, the reply was lost on the way) is given it again on a later fetch, and one that
took it ignores the repeat (the official agent by (taskID, invokeVersion), ours through its journal). A task
listed `RELIST_SECONDS` ago and still Pending makes its instance worth a kick again (the heart-beat's
`newTasks`, the delivery loop). From the agent's first report (`running`, or any final one) the task has
started, and it is never listed again, to this agent or any other: a restarted agent (whose memory of it is
gone) must not run it twice.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from cloudassist.domain.invocations import Invocation, InvocationResult, RepeatMode
from cloudassist.domain.output import append
from cloudassist.domain.statuses import ERROR_STATUS, ErrorCode, InvocationStatus, can_transition
from cloudassist.services.context import Context
from cloudassist.services.invocations import InvocationService
from cloudassist.store.store import Tx

S = InvocationStatus
Kind = Literal["running", "finish", "timeout", "error", "stopped", "invalid"]

#: `param` of a `task/invalid` report → the seed's ErrorCode (reference §5.3 and agent-protocol §1.6).
INVALID_PARAMS: Final = {
    "workingdirectory": ErrorCode.DIRECTORY_NOT_EXISTS,
    "workingdir": ErrorCode.DIRECTORY_NOT_EXISTS,
    "username": ErrorCode.ACCOUNT_NOT_EXISTS,
    "usernameorpasswordinvalid": ErrorCode.ACCOUNT_NOT_EXISTS,
    "cron": ErrorCode.BAD_CRON_EXPRESSION,
    "typeinvalid": ErrorCode.COMMAND_NOT_APPLICABLE,
    "type": ErrorCode.COMMAND_NOT_APPLICABLE,
}
#: The modes whose task runs again after a run ends: each ended run is a record of the history.
RECURRING: Final = (RepeatMode.PERIOD, RepeatMode.EVERY_REBOOT)
#: `errCode` of a `task/error` report meaning "this task ran before; its result is lost" (Part 2 §4.5).
ALREADY_RAN: Final = {"-9", "ExecutionInterrupted"}
#: A Pending task listed this long ago, and not reported started since, is worth a kick again.
RELIST_SECONDS: Final = 30


def relist_before(now: datetime) -> datetime:
    """Pending tasks last listed before this are worth a kick again (see RELIST_SECONDS)."""
    return now - timedelta(seconds=RELIST_SECONDS)


@dataclass(frozen=True)
class Order:
    """One execution as its agent is told of it."""

    result: InvocationResult
    invocation: Invocation


@dataclass(frozen=True)
class TaskList:
    run: list[Order]
    stop: list[Order]


@dataclass(frozen=True)
class Report:
    """A `task/<kind>` report from an agent, read from its query string and body."""

    kind: Kind
    task_id: str
    invoke_version: int = 1
    start: datetime | None = None
    end: datetime | None = None
    exit_code: int | None = None
    dropped: int = 0
    output: bytes = b""
    #: Stream position of `output` in what the agent has sent for this run (our agent sends it).
    offset: int | None = None
    err_code: str = ""
    param: str = ""
    result: str = ""


def _listed(result: InvocationResult, mode: RepeatMode, startup: bool, cold_start: bool) -> bool:
    """Whether `result` of a task in `mode` belongs in this fetch's `run` list.

    A scheduled task whose current version its agent has not fetched yet (ModifyInvocationAttribute
    made a new one) is listed on any fetch, so the agent replaces the schedule it keeps.
    """
    status = result.status
    if mode in (RepeatMode.NEXT_REBOOT_ONLY, RepeatMode.EVERY_REBOOT):
        return startup and cold_start and status is S.SCHEDULED
    if mode is RepeatMode.PERIOD:
        return status is S.PENDING or startup or (status in (S.SCHEDULED, S.RUNNING) and result.delivered_time is None)
    return status is S.PENDING  # once reported started, never handed out again (an agent's restart included)


def from_millis(value: str | None) -> datetime | None:
    """An agent's millisecond timestamp; 0, empty or nonsense is "no time"."""
    try:
        millis = int(value or 0)
    except ValueError:
        return None
    if millis <= 0 or millis > 10**14:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)


#: The largest count a 64-bit column holds (Dropped adds up what each report says it dropped).
MAX_COUNT: Final = 2**63 - 1
#: Tasks whose fixed fields reports read, kept in memory (an LRU).
CACHED_TASKS: Final = 10_000


class DeliveryService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._tasks: OrderedDict[str, Invocation] = OrderedDict()

    async def _task(self, tx: Tx, invoke_id: str) -> Invocation | None:
        """A task as a report needs it: only the fields that never change are read from it (repeat mode,
        timeout, account, region), so it is read once and kept; its content may have been modified since."""
        inv = self._tasks.get(invoke_id)
        if inv is None:
            inv = await tx.invocations.by_id(invoke_id)
            if inv is None:
                return None
            self._tasks[invoke_id] = inv
            if len(self._tasks) > CACHED_TASKS:
                self._tasks.popitem(last=False)
        return inv

    async def fetch(
        self, instance_id: str, task_id: str | None = None, *, startup: bool = False, cold_start: bool = False
    ) -> TaskList:
        """The tasks an instance's agent should run or schedule, and stop, now.

        One-time tasks are listed until their agent reports them started, and never after. A scheduled
        task is listed once, then becomes Scheduled: the agent runs the schedule itself, and re-learns it
        from every start-up fetch. Reboot tasks are listed only on the start-up fetch of a cold start (the
        machine booted).
        """
        return await self.ctx.store.batch(
            lambda tx: self.fetch_in(tx, instance_id, task_id, startup=startup, cold_start=cold_start)
        )

    async def fetch_in(
        self, tx: Tx, instance_id: str, task_id: str | None = None, *, startup: bool = False, cold_start: bool = False
    ) -> TaskList:
        """`fetch`, in a transaction of the caller's (a batch of writes, see Store.batch)."""
        now = self.ctx.clock.now()
        listed = await tx.results.for_instance(instance_id, [S.PENDING, S.RUNNING, S.SCHEDULED, S.STOPPING])
        open_ = [r for r in listed if r.status is not S.STOPPING]
        stopping = [r for r in listed if r.status is S.STOPPING]
        await tx.invocations.lock(r.invoke_id for r in open_)
        invocations = await tx.invocations.by_ids(list({r.invoke_id for r in listed}))
        run = []
        for result in open_:
            inv = invocations.get(result.invoke_id)
            if inv is None or not _listed(result, inv.repeat_mode, startup, cold_start):
                continue
            if task_id and result.invoke_id != task_id and result.status is not S.PENDING:
                continue
            relisted = result.status is S.PENDING and (result.delivered_time or now) < relist_before(now)
            if result.delivered_time is None or inv.repeat_mode.timed or relisted:
                changes: dict[str, Any] = {"delivered_time": now, "update_time": now}
                if inv.repeat_mode is RepeatMode.PERIOD and result.status is S.PENDING:
                    changes["status"] = S.SCHEDULED.value  # the agent keeps the schedule from now on
                await tx.results.update(result.result_id, expect=result.status, **changes)
                if "status" in changes:
                    await InvocationService.refresh_status(tx, result.invoke_id)
            run.append(Order(result, inv))
        stop = [Order(r, invocations[r.invoke_id]) for r in stopping if r.invoke_id in invocations]
        return TaskList(run, stop)

    async def report(self, instance_id: str, report: Report) -> bool:
        """Apply one report; False when it names no execution of this instance (still acknowledged)."""
        return await self.ctx.store.batch(lambda tx: self.report_in(tx, instance_id, report), key=report.task_id)

    async def report_in(self, tx: Tx, instance_id: str, report: Report) -> bool:
        """`report`, in a transaction of the caller's (a batch of writes, see Store.batch)."""
        now = self.ctx.clock.now()
        limit = self.ctx.settings.output_limit_bytes
        await tx.invocations.lock([report.task_id])
        result = await tx.results.current(report.task_id, instance_id)
        if result is None:
            return False
        if result.status.terminal:
            return True
        inv = await self._task(tx, report.task_id)
        recurring = inv is not None and inv.repeat_mode in RECURRING
        if recurring and self._already_ended(result, report):
            return True  # a resent report of a run that has ended and been kept
        # between two runs of a schedule (waiting, or asked to stop while waiting: until the agent fetches the stop,
        # its clock may fire the schedule again), a report that is not the stop's confirmation begins a new run
        between_runs = result.status is S.SCHEDULED or (result.status is S.STOPPING and not self._in_run(result))
        new_run = recurring and between_runs and report.kind != "stopped"
        if new_run:
            # a new run of the schedule: its output and times replace the previous run's
            result = replace(result, output=b"", dropped=0, received=0, start_time=None, finished_time=None)
        chunk = report.output
        if report.offset is not None:
            skip = result.received - report.offset
            chunk = chunk[skip:] if skip > 0 else chunk
        output, dropped = append(result.output, result.dropped, chunk, limit)
        changes: dict[str, Any] = {
            "output": output,
            "dropped": min(dropped + max(report.dropped, 0), MAX_COUNT),  # a 64-bit column, however many reports
            "received": result.received + len(chunk),
            "update_time": now,
        }
        status = self._next_status(result, report)
        if new_run:
            # a run that begins while a stop is pending changes no status: its start is recorded here, so that its
            # later reports belong to it
            started = report.start or now if status is None else None
            changes.update(start_time=started, finished_time=None)
        if status is S.RUNNING or (new_run and status is not None):
            start = report.start or now
            changes["run_deadline"] = start + timedelta(seconds=inv.timeout if inv else 0)
        ended_run = status is not None and status.terminal and report.kind in ("finish", "timeout", "error")
        run: InvocationResult | None = None  # a run of a schedule that ended: kept in the history
        if recurring and ended_run and status is not None and report.result != "completed":
            # one run of a schedule ended; the schedule goes on (a stop asked for meanwhile still stands)
            changes.update(self._times(result, report, S.SCHEDULED, now))
            changes.update(
                error_code=self._error_code(report, status).value,
                exit_code=report.exit_code,
                repeats=result.repeats + 1,
                finished_time=report.end or now,
            )
            if result.status is not S.STOPPING:
                changes["status"] = S.SCHEDULED.value
            run = self._run(result, changes, status)
        elif status is not None and status is not result.status and can_transition(result.status, status):
            changes["status"] = status.value
            changes.update(self._times(result, report, status, now))
            if status.terminal:
                changes["error_code"] = self._error_code(report, status).value
                changes["exit_code"] = report.exit_code if report.exit_code is not None else result.exit_code
                killed_run = recurring and report.kind == "stopped" and self._in_run(result)
                if report.kind != "stopped" or not recurring or killed_run:
                    changes["repeats"] = result.repeats + (1 if result.start_time or report.start else 0)
                if killed_run:  # stopped in the middle of a run of a schedule: that run ended too
                    run = self._run(result, changes, status)
        changed = await tx.results.update(result.result_id, expect=result.status, **changes)
        if run is not None and inv is not None and changed:
            await self._archive(tx, inv, result.result_id, run, now)
        if "status" in changes:
            await InvocationService.refresh_status(tx, result.invoke_id)
            if InvocationStatus(str(changes["status"])).terminal:
                await tx.instances.count_invocation(instance_id, now)
        return True

    @staticmethod
    async def _archive(tx: Tx, inv: Invocation, result_id: int, run: InvocationResult, now: datetime) -> None:
        """Keep an ended run of a schedule as a history record, and renumber the current record after it: the
        current record stands for the newest run, so the retention window (the account's newest records, the
        last two weeks) never hides it while its schedule goes on, and it lists before its own history."""
        last = await tx.accounts.allocate_seq(inv.account_id, 2)
        await tx.history.add(account_id=inv.account_id, region_id=inv.region_id, seq=last - 1, run=run, now=now)
        await tx.results.update(result_id, seq=last, creation_time=now)

    @staticmethod
    def _in_run(result: InvocationResult) -> bool:
        """Whether a run of a schedule has started and not ended (each ended run sets its finished time)."""
        return result.start_time is not None and result.finished_time is None

    @staticmethod
    def _already_ended(result: InvocationResult, report: Report) -> bool:
        """Whether `report` is about the run of a schedule that has already ended (the same start)."""
        return (
            result.status in (S.SCHEDULED, S.STOPPING)
            and report.kind in ("running", "finish", "timeout", "error")
            and report.start is not None
            and result.start_time == report.start
            and result.finished_time is not None
        )

    @staticmethod
    def _run(result: InvocationResult, changes: dict[str, Any], status: InvocationStatus) -> InvocationResult:
        """The record of one ended run: the execution as `changes` leave it, in the run's own status."""
        return replace(
            result,
            status=status,
            output=changes["output"],
            dropped=changes["dropped"],
            exit_code=changes.get("exit_code", result.exit_code),
            error_code=ErrorCode(changes.get("error_code", result.error_code.value)),
            start_time=changes.get("start_time", result.start_time),
            finished_time=changes.get("finished_time", result.finished_time),
            repeats=changes.get("repeats", result.repeats),
        )

    @staticmethod
    def _next_status(result: InvocationResult, report: Report) -> InvocationStatus | None:
        if report.kind == "running":
            return S.RUNNING if result.status in (S.PENDING, S.SCHEDULED) else None
        if report.kind == "finish":
            return S.SUCCESS if report.exit_code == 0 else S.FAILED
        if report.kind == "timeout":
            return S.TIMEOUT
        if report.kind == "invalid":
            return S.INVALID
        if report.kind == "stopped":
            if report.result == "completed":  # a schedule that has no next run: its last run decides
                return S.FAILED if result.exit_code not in (None, 0) else S.SUCCESS
            started = result.start_time is not None or report.start is not None
            return S.TERMINATED if started else S.CANCELLED
        return S.ERROR  # error

    @staticmethod
    def _error_code(report: Report, status: InvocationStatus) -> ErrorCode:
        if report.kind == "invalid":
            return INVALID_PARAMS.get(report.param.strip().lower(), ErrorCode.COMMAND_NOT_APPLICABLE)
        if report.kind == "error":
            return ErrorCode.EXECUTION_INTERRUPTED if report.err_code in ALREADY_RAN else ErrorCode.EXECUTION_EXCEPTION
        return {S.FAILED: ErrorCode.EXIT_CODE_NONZERO, S.TIMEOUT: ErrorCode.EXECUTION_TIMEOUT}.get(
            status, ErrorCode.NONE
        )

    @staticmethod
    def _times(result: InvocationResult, report: Report, status: InvocationStatus, now: datetime) -> dict[str, object]:
        times: dict[str, object] = {}
        if result.start_time is None and status is not S.CANCELLED and status is not S.INVALID:
            times["start_time"] = report.start or now
        if status.terminal:
            times["finished_time"] = report.end or now
        return times

    async def waiting(self, instance_id: str | None = None) -> set[str]:
        """Instances (or just this one) with work not yet fetched or stops not yet confirmed: worth a kick."""
        async with self.ctx.store.read() as tx:
            return await tx.results.waiting_instances(instance_id, relist_before=relist_before(self.ctx.clock.now()))

    async def sweep(self) -> int:
        """End executions whose deadlines passed; returns how many were ended.

        Pending and never fetched: Aborted with ClientNotRunning (no heart-beat for two minutes) or
        ClientNotResponse (heart-beats, but no fetch). Fetched but never started: DeliveryTimeout once
        the delivery window has passed (plus the task's Timeout while the agent still beats).
        Running past Timeout plus the grace period: Timeout if the agent still beats (it should have
        killed it), otherwise the run was interrupted. Stopping past the grace period: Terminated.

        Candidates are found in a read transaction; the write lock is taken only when something ends,
        and each change applies only if the execution is still in the status it was judged in.
        """
        now = self.ctx.clock.now()
        delivery = timedelta(seconds=self.ctx.settings.delivery_timeout_seconds)
        grace = timedelta(seconds=self.ctx.settings.grace_seconds)
        async with self.ctx.store.read() as tx:
            candidates = await tx.results.overdue(
                pending_before=now - delivery, started_before=now - grace, stopped_before=now - grace
            )
            if not candidates:
                return 0
            invocations = await tx.invocations.by_ids(list({r.invoke_id for r in candidates}))
            instances = await tx.instances.by_ids({r.instance_id for r in candidates})
        endings = []
        for r in candidates:
            inst = instances.get(r.instance_id)
            online = inst is not None and inst.online(now)
            inv = invocations.get(r.invoke_id)
            timeout = timedelta(seconds=inv.timeout if inv else 0)
            code: ErrorCode | None = None
            status: InvocationStatus | None = None
            if r.status is S.PENDING:
                # an agent that fetched the task and still beats may just be busy (its queue is full):
                # it gets the task's whole Timeout on top of the delivery window to start it
                if r.delivered_time is None:
                    code = ErrorCode.CLIENT_NOT_RESPONSE if online else ErrorCode.CLIENT_NOT_RUNNING
                elif not online or now - r.creation_time > delivery + timeout + grace:
                    code = ErrorCode.DELIVERY_TIMEOUT
            elif r.status is S.RUNNING:  # overdue() found its run deadline (start + Timeout) past the grace
                code = ErrorCode.EXECUTION_TIMEOUT if online else ErrorCode.EXECUTION_INTERRUPTED
            else:
                status = S.TERMINATED if r.start_time is not None else S.CANCELLED
            if code is not None or status is not None:
                endings.append((r, status or ERROR_STATUS[code or ErrorCode.NONE], code or ErrorCode.NONE))
        ended = 0
        async with self.ctx.store.write() as tx:
            await tx.invocations.lock(r.invoke_id for r, _, _ in endings)
            same: dict[tuple[InvocationStatus, InvocationStatus, ErrorCode, bool], list[InvocationResult]] = {}
            for r, status, code in endings:
                inv = invocations.get(r.invoke_id)
                if inv is not None and r.status is S.RUNNING and inv.repeat_mode in RECURRING:
                    # one run of a schedule overran: that run ends (and is kept in the history), the
                    # schedule goes on, as when the agent reports a run's timeout
                    changes: dict[str, Any] = {
                        "error_code": code.value,
                        "update_time": now,
                        "finished_time": now,
                        "repeats": r.repeats + 1,
                        "run_deadline": None,
                        "status": S.SCHEDULED.value,
                    }
                    if await tx.results.update(r.result_id, expect=r.status, **changes):
                        run = self._run(r, {**changes, "output": r.output, "dropped": r.dropped}, status)
                        await self._archive(tx, inv, r.result_id, run, now)
                        await InvocationService.refresh_status(tx, r.invoke_id)
                        ended += 1
                    continue
                same.setdefault((r.status, status, code, r.start_time is not None), []).append(r)
            # the rest ends in one statement per kind of ending (each only if still in the status it was judged in)
            for (was, status, code, started), records in same.items():
                ended += await tx.results.end_many(
                    [r.result_id for r in records],
                    expect=was,
                    status=status,
                    error_code=code,
                    now=now,
                    finished=started,
                )
                for invoke_id in {r.invoke_id for r in records}:
                    await InvocationService.refresh_status(tx, invoke_id)
        return ended
