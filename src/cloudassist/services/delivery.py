"""What agents do: fetch their tasks, report progress and results; and the deadlines behind them.

A kick is only a doorbell: an agent learns of work by fetching its task list, and the list is the
truth. Every report is applied in one transaction and acknowledged only after it commits; a report
for an execution that has already ended is acknowledged and ignored, so retries are harmless.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from cloudassist.domain.invocations import Invocation, InvocationResult
from cloudassist.domain.output import append
from cloudassist.domain.statuses import ERROR_STATUS, ErrorCode, InvocationStatus, can_transition
from cloudassist.services.context import Context
from cloudassist.services.invocations import InvocationService

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
#: `errCode` of a `task/error` report meaning "this task ran before; its result is lost" (Part 2 §4.5).
ALREADY_RAN: Final = {"-9", "ExecutionInterrupted"}


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


def from_millis(value: str | None) -> datetime | None:
    """An agent's millisecond timestamp; 0, empty or nonsense is "no time"."""
    try:
        millis = int(value or 0)
    except ValueError:
        return None
    if millis <= 0 or millis > 10**14:
        return None
    return datetime.fromtimestamp(millis / 1000, UTC)


class DeliveryService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def fetch(self, instance_id: str, task_id: str | None = None) -> TaskList:
        """The tasks an instance's agent should run and stop now; marks the runs as delivered."""
        now = self.ctx.clock.now()
        async with self.ctx.store.write() as tx:
            pending = await tx.results.for_instance(instance_id, [S.PENDING, S.RUNNING])
            stopping = await tx.results.for_instance(instance_id, [S.STOPPING])
            if task_id:
                pending = [r for r in pending if r.invoke_id == task_id] or pending
            invocations = await tx.invocations.by_ids(list({r.invoke_id for r in [*pending, *stopping]}))
            run = []
            for result in pending:
                if result.status is S.PENDING:
                    await tx.results.update(result.result_id, delivered_time=now, update_time=now)
                # a Running one is sent again: an agent that restarted answers "already ran" (-9)
                # or resumes its spool; our agent and the official one both refuse to run it twice
                if result.invoke_id in invocations:
                    run.append(Order(result, invocations[result.invoke_id]))
            stop = [Order(r, invocations[r.invoke_id]) for r in stopping if r.invoke_id in invocations]
        return TaskList(run, stop)

    async def report(self, instance_id: str, report: Report) -> bool:
        """Apply one report; False when it names no execution of this instance (still acknowledged)."""
        now = self.ctx.clock.now()
        limit = self.ctx.settings.output_limit_bytes
        async with self.ctx.store.write() as tx:
            result = await tx.results.current(report.task_id, instance_id)
            if result is None:
                return False
            if result.status.terminal:
                return True
            chunk = report.output
            if report.offset is not None:
                skip = result.received - report.offset
                chunk = chunk[skip:] if skip > 0 else chunk
            output, dropped = append(result.output, result.dropped, chunk, limit)
            changes: dict[str, Any] = {
                "output": output,
                "dropped": dropped + max(report.dropped, 0),
                "received": result.received + len(chunk),
                "update_time": now,
            }
            status = self._next_status(result, report)
            if status is not None and status is not result.status and can_transition(result.status, status):
                changes["status"] = status.value
                changes.update(self._times(result, report, status, now))
                if status.terminal:
                    changes["error_code"] = self._error_code(report, status).value
                    changes["exit_code"] = report.exit_code if report.exit_code is not None else result.exit_code
                    changes["repeats"] = result.repeats + (1 if result.start_time or report.start else 0)
            await tx.results.update(result.result_id, expect=result.status, **changes)
            if "status" in changes:
                await InvocationService.refresh_status(tx, result.invoke_id)
                if InvocationStatus(str(changes["status"])).terminal:
                    await tx.instances.count_invocation(instance_id, now)
        return True

    @staticmethod
    def _next_status(result: InvocationResult, report: Report) -> InvocationStatus | None:
        if report.kind == "running":
            return S.RUNNING if result.status is S.PENDING else None
        if report.kind == "finish":
            return S.SUCCESS if report.exit_code == 0 else S.FAILED
        if report.kind == "timeout":
            return S.TIMEOUT
        if report.kind == "invalid":
            return S.INVALID
        if report.kind == "stopped":
            if report.result == "completed":
                return S.SUCCESS
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
            return await tx.results.waiting_instances(instance_id)

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
            instances = {i: await tx.instances.get(i) for i in {r.instance_id for r in candidates}}
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
            elif r.status is S.RUNNING:
                if r.start_time is not None and now - r.start_time > timeout + grace:
                    code = ErrorCode.EXECUTION_TIMEOUT if online else ErrorCode.EXECUTION_INTERRUPTED
            else:
                status = S.TERMINATED if r.start_time is not None else S.CANCELLED
            if code is not None or status is not None:
                endings.append((r, status or ERROR_STATUS[code or ErrorCode.NONE], code or ErrorCode.NONE))
        ended = 0
        async with self.ctx.store.write() as tx:
            for r, status, code in endings:
                changed = await tx.results.update(
                    r.result_id,
                    expect=r.status,
                    status=status.value,
                    error_code=code.value,
                    update_time=now,
                    finished_time=now if r.start_time is not None else None,
                )
                if changed:
                    await InvocationService.refresh_status(tx, r.invoke_id)
                    ended += 1
        return ended
